"""Small stateless Flask functions, each one capability, served through the gateway."""

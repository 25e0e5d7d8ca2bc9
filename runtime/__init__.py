"""What every PCloud function runs on: settings, clients, identity, events, errors."""

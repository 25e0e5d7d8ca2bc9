"""Cross-cutting pieces the gateway composes: auth, rate limits, CORS, health, metrics."""

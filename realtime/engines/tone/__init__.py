"""The `tone` engine: deterministic synthetic speech for tests and load tests. `engine` is the
engine (and `tone_samples`, its exact output), `settings` its settings (pydantic only)."""

"""The `http` engine: any OpenAI-compatible `/v1/audio/speech` server as an upstream. `engine` is the
engine, `upstream` one server's client and the balancing between several, `pcm` the byte stream →
float32 conversion, `voices` the parsing of voice lists, `settings` its settings (pydantic only)."""

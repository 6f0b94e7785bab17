"""Piper (VITS, ONNX): the embedded default engine. `engine` is the engine, `settings` its settings
(pydantic only, imported when settings load), `..phoneme_runs` (shared with Kokoro) how a long sentence is cut; README.md
says what it can do and how to tune it."""

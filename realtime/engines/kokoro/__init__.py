"""Kokoro-82M (StyleTTS 2, ONNX): `engine` is the engine, `settings` its settings (pydantic only,
imported when settings load), `model` the ONNX session with its duration output, `voices` the style
vectors and blends, `g2p` text to phonemes per word, `alignment` phoneme durations to word timings;
README.md says what it can do and how to tune it. Importing this package loads nothing."""

"""Orpheus: an LLM that speaks in SNAC codec tokens, decoded to 24 kHz audio.

`codes` is the token format (pure), `llm_*` the token generators (in-process
llama.cpp, or a remote OpenAI-compatible completions server), `snac_model` the
SNAC codec (loading, positional noise, decoding windows), `snac_stream` an
utterance's frames cut into windows with clean seams, `snac_batcher` the decoder
shared and batched across sessions, `engine` the glue, and `settings` its
settings and their constants (pydantic only). README.md: how it works and why.
"""

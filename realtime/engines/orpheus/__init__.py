"""Orpheus: an LLM that speaks in SNAC codec tokens, decoded to 24 kHz audio.

`codes` is the token format (pure), `llm_*` the token generators (in-process
llama.cpp, or a remote OpenAI-compatible completions server), `snac_decoder`
the decoder shared and batched across sessions, and `engine` the glue.
"""

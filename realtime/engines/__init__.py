"""Engines and the kit they are built with.

`base` is the contract (`Engine`, `EngineInfo` with its capabilities and scheduling hints, jobs,
stats, errors), `admission` the deadline-ordered gate every engine admits jobs through,
`worker_pool` threads behind such a gate for blocking inference, `registry` the one line per
engine. Each engine is a folder of its own: `piper/`, `orpheus/`, `tone/`, `http/`. docs/ADDING_AN_ENGINE.md.
"""

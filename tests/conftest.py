from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.server import LiveServer

# Tests must never read a developer's own config file or keys.
for _name in list(os.environ):
    if _name.startswith("REALTIME_"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """Piper (the default) and a fast tone engine, as a user would run it."""
    with LiveServer(engines=["piper", "tone"]) as live:
        yield live


@pytest.fixture(scope="session")
def slow_server() -> Iterator[LiveServer]:
    """A tone engine only 3x faster than real time: synthesis visibly outlasts the first chunk."""
    with LiveServer(engines=["tone"], tone={"speed": 3.0, "workers": 2}) as live:
        yield live

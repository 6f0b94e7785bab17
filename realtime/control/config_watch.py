"""Watching the TOML settings file (`REALTIME_CONFIG`, with `watch_config`): a save applies its hot
settings as `PATCH /v1/config` would.

The file is polled (its modification time and size, once a second): no inotify dependency,
and an editor that replaces the file instead of writing it is seen the same way. Each save
is compared with the file's previous version, not with the running settings, so what the
command line or the admin API set at run time stays unless the file changes that very
setting. A change to a setting that is not hot is logged (it needs a restart); a file that
does not parse or validate is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .hot_config import hot_changes
from .settings import Settings, load_settings

log = logging.getLogger(__name__)

POLL_S = 1.0


class ConfigWatcher:
    def __init__(
        self, path: Path, apply: Callable[[dict[str, Any]], None], *, poll_s: float = POLL_S
    ) -> None:
        """`apply` gets the hot changes of each save as a patch (it may raise ValueError to refuse it)."""
        self.path = path
        self.apply = apply
        self.poll_s = poll_s
        self._stamp = self._read_stamp()
        self._last: Settings | None = self._load()

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> Settings | None:
        try:
            return load_settings()
        except Exception as exc:  # a half-written or invalid file: keep what runs
            log.warning("settings file not applied", extra={"path": str(self.path), "error": str(exc)})
            return None

    def check(self) -> bool:
        """Look once; True if a save was applied."""
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        new = self._load()
        if new is None:
            return False
        old, self._last = self._last, new
        if old is None:
            return False
        patch, cold = hot_changes(old, new)
        if cold:
            log.warning("settings changed in the file need a restart", extra={"fields": cold})
        if not patch:
            return False
        try:
            self.apply(patch)
        except ValueError as exc:
            log.warning("settings file change refused", extra={"error": str(exc)})
            return False
        log.info("settings file applied", extra={"fields": sorted(patch)})
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            self.check()


def watched_path() -> Path | None:
    """The settings file to watch, if one is configured."""
    path = os.environ.get("REALTIME_CONFIG")
    return Path(path) if path else None

"""API keys and per-key session limits.

Keys come from `Authorization: Bearer <key>` or, for browsers that cannot set
WebSocket headers, `?api_key=<key>`. With no keys configured every request is
allowed, and only the global session limit applies: without authentication a
"key" is whatever the client sends, so a per-key count would mean nothing.

Admin keys (`admin_keys`) open the admin routes (engines, configuration) and every
other route; once any key is configured, a regular key gets 403 on the admin routes.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

ANONYMOUS = ""


def extract_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return query.get("api_key") or headers.get("xi-api-key") or None


def _matches(key: str | None, keys: list[bytes]) -> bool:
    if key is None:
        return False
    given = key.encode()
    # Compare against every key so timing does not reveal which one nearly matched.
    return any([hmac.compare_digest(given, k) for k in keys])


class Authenticator:
    def __init__(self, keys: list[str], admin_keys: list[str] | None = None) -> None:
        self._keys = [k.encode() for k in keys if k]
        self._admin = [k.encode() for k in admin_keys or [] if k]

    @property
    def enabled(self) -> bool:
        """Regular routes need a key (`api_keys` is set; admin keys are accepted there too)."""
        return bool(self._keys)

    def check(self, key: str | None) -> bool:
        if not self.enabled:
            return True
        return _matches(key, self._keys + self._admin)

    def admin_status(self, key: str | None) -> int | None:
        """None when `key` may use the admin routes; else the HTTP status to refuse it with: 401 for
        no key or an unknown one, 403 for a regular key. With no keys configured at all, all may."""
        if not self._keys and not self._admin:
            return None
        if _matches(key, self._admin):
            return None
        return 403 if _matches(key, self._keys) else 401


class LimitExceeded(Exception):
    pass


class SessionLimiter:
    """Counts open sessions globally and per key; `acquire` refuses past the limits."""

    def __init__(self, max_total: int, max_per_key: int, *, per_key: bool = True) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.per_key = per_key
        """False when no keys are configured: the global limit alone applies."""
        self._per_key: Counter[str] = Counter()
        self.total = 0

    @contextmanager
    def acquire(self, key: str | None) -> Iterator[None]:
        k = (key or ANONYMOUS) if self.per_key else ANONYMOUS
        if self.total >= self.max_total:
            raise LimitExceeded(f"server is at its limit of {self.max_total} concurrent sessions")
        if self.per_key and self._per_key[k] >= self.max_per_key:
            raise LimitExceeded(f"this API key is at its limit of {self.max_per_key} concurrent sessions")
        self.total += 1
        self._per_key[k] += 1
        try:
            yield
        finally:
            self.total -= 1
            self._per_key[k] -= 1
            if not self._per_key[k]:
                del self._per_key[k]

"""Settings that change without a restart (`PATCH /v1/config`, a watched TOML file), and how.

A change is a partial settings document: `{"planner": {"first_max_chars": 20}}`. It is
merged into the current settings and validated by the same pydantic models as at start-up,
into a new `Settings` object; the gateway swaps that in with one assignment, so a new
context reads either the old settings or the new ones, never a mix, and a running context
keeps the objects it was built with. Only the fields below may change this way: the
others are read once (ports, limits of open sessions, the engines' own sections, which
`PUT /v1/engines/{name}` replaces instead).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from .settings import Settings

HOT_FIELDS = ("default_engine", "default_voice", "voice_map", "failover", "planner", "max_ahead_s", "text")
"""`default_engine` is not a setting of its own: it moves that engine to the front of `engines`."""
SECRET_FIELDS = ("api_keys", "admin_keys")


class ConfigPatchError(ValueError):
    """A change that cannot apply; `field` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SECTIONS = ("planner", "failover")


def _merge(field: str, base: Any, patch: Any) -> Any:
    """A section (`planner`, `failover`) is merged field by field; any other value, a map setting
    such as `voice_map` or `failover.fallbacks` included, is replaced whole (so a key can be removed)."""
    if field in SECTIONS and isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **patch}
    return patch


def apply_patch(settings: Settings, patch: Mapping[str, Any], engines: Collection[str]) -> Settings:
    """New settings: `settings` with the hot fields of `patch` changed; ConfigPatchError for a field
    that is not hot, a value the models refuse, or an engine (default or fallback) not in `engines`."""
    for field in patch:
        if field not in HOT_FIELDS:
            raise ConfigPatchError(
                field,
                f"'{field}' cannot change while the server runs (hot settings: {', '.join(HOT_FIELDS)})",
            )
    current = settings.model_dump()
    changes = {k: v for k, v in patch.items() if k != "default_engine"}
    merged = {k: _merge(k, current.get(k), v) for k, v in changes.items()}
    document = {**current, **merged}
    if "default_engine" in patch:
        default = patch["default_engine"]
        if not isinstance(default, str) or default not in engines:
            raise ConfigPatchError("default_engine", f"default_engine must be one of: {', '.join(engines)}")
        document["engines"] = [default, *(e for e in current["engines"] if e != default)]
    try:
        new = type(settings).model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigPatchError(where, f"{where}: {error['msg']}") from None
    for name, chain in new.failover.fallbacks.items():
        unknown = [n for n in (name, *chain) if n not in engines]
        if unknown:
            raise ConfigPatchError(
                "failover.fallbacks", f"unknown engine(s) in fallbacks: {', '.join(unknown)}"
            )
    return new


def hot_view(settings: Settings) -> dict[str, Any]:
    """The hot fields as `PATCH /v1/config` takes them."""
    dump = settings.model_dump(mode="json")
    view = {k: dump[k] for k in HOT_FIELDS if k in dump}
    view["default_engine"] = settings.default_engine
    return view


def public_view(settings: Settings) -> dict[str, Any]:
    """Every setting, for `GET /v1/config`, with keys and other secrets left out."""
    dump = settings.model_dump(mode="json")
    for field in SECRET_FIELDS:
        dump[field] = f"[{len(dump.get(field) or [])} configured]"
    for section in dump.values():
        if isinstance(section, dict):
            for key in section:
                if "key" in key.lower() and section[key]:
                    section[key] = "[redacted]"
    dump["default_engine"] = settings.default_engine
    return dump


def hot_changes(old: Settings, new: Settings) -> tuple[dict[str, Any], list[str]]:
    """What differs between two settings read from the same sources (a watched file saved): the hot
    fields as a patch, and the names of other fields that changed (they need a restart)."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    patch = {k: after[k] for k in HOT_FIELDS if k in after and after[k] != before[k]}
    if old.default_engine != new.default_engine:
        patch["default_engine"] = new.default_engine
    cold = [k for k in after if k not in HOT_FIELDS and k != "engines" and after[k] != before.get(k)]
    if before["engines"] != after["engines"] and set(before["engines"]) != set(after["engines"]):
        cold.append("engines")
    return patch, cold

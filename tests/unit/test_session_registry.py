"""Session ids are per API key when keys are on: no collision, no disclosure between tenants."""

from __future__ import annotations

from dataclasses import dataclass

from realtime.session.registry import SessionRegistry


@dataclass
class FakeSession:
    id: str
    api_key: str | None


def test_with_keys_the_same_id_lives_once_per_key_and_each_key_sees_only_its_own() -> None:
    registry = SessionRegistry(per_key=True)
    ours, theirs = FakeSession("call", "k1"), FakeSession("call", "k2")
    assert registry.add(ours) and registry.add(theirs)  # type: ignore[arg-type]
    assert not registry.add(FakeSession("call", "k1"))  # type: ignore[arg-type]
    assert registry.get("call", "k1") is ours and registry.get("call", "k2") is theirs
    assert registry.get("call", "k3") is None and registry.get("call", None) is None
    registry.remove(ours)  # type: ignore[arg-type]
    assert registry.get("call", "k1") is None and registry.get("call", "k2") is theirs
    assert len(registry) == 1 and "call" in registry and list(registry) == ["call"]


def test_without_keys_there_is_one_namespace() -> None:
    registry = SessionRegistry(per_key=False)
    first = FakeSession("s", "anything")
    assert registry.add(first)  # type: ignore[arg-type]
    assert not registry.add(FakeSession("s", "other"))  # type: ignore[arg-type]
    assert registry.get("s", None) is first and registry["s"] is first


def test_removing_a_session_that_lost_its_slot_leaves_the_holder() -> None:
    registry = SessionRegistry(per_key=False)
    holder, loser = FakeSession("s", None), FakeSession("s", None)
    registry.add(holder)  # type: ignore[arg-type]
    registry.remove(loser)  # type: ignore[arg-type]
    assert registry.get("s", None) is holder

"""Applies a parsed protocol command to a realtime session (shared by every text source)."""

from __future__ import annotations

from ..session.config import ConfigError
from ..session.errors import ClientError
from ..session.realtime import RealtimeSession
from .realtime_protocol import Command


def apply_command(session: RealtimeSession, command: Command) -> None:
    """Run one command; ClientError (recoverable) for client mistakes."""
    try:
        match command.type:
            case "text.append":
                session.append(command.text, command.context_id)
            case "text.flush":
                session.flush(command.context_id)
            case "text.done":
                session.done(command.context_id)
            case "context.cancel":
                session.interrupt("cancel", command.context_id)
            case "playback.position":
                session.playback_position(command.context_id, command.played_ms)
            case "session.update":
                session.update(command.patch or {})
            case "session.close":
                session.close_when_done()
            case "input_audio":
                session.feed_uplink(command.audio)
            case _:
                raise ClientError("unknown_type", f"unknown message type '{command.type}'")
    except ConfigError as exc:
        raise ClientError("invalid_config", str(exc)) from None

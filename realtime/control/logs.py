"""Structured logging: JSON lines (or plain text) carrying request and session ids.

Ids travel in context variables, so every log line emitted while serving a
request carries them without threading loggers through the call stack.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from urllib.parse import unquote_plus

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

SECRET_PARAMS = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "xi-api-key", "xi_api_key", "auth"}
)
"""Query parameters whose values never reach the log: `?api_key=` is how browsers and Twilio
authenticate, and uvicorn's access and WebSocket lines carry the query string. Names are compared
decoded (`api%5Fkey` authenticates as `api_key` does) and case-insensitively."""
_QUERY_PAIR = re.compile(r"([?&;])([^=&;?\s\"'#\\]+)=([^&;\s\"'#\\]*)")
_BEARER = re.compile(r"((?:bearer|basic)\s+)[^\s\"',;\\]+", re.I)
REDACTED = "[redacted]"


def _redact_pair(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    if unquote_plus(name).lower() in SECRET_PARAMS and value:
        return f"{separator}{name}={REDACTED}"
    return match.group(0)


def redact(line: str) -> str:
    """`line` with secret query values and bearer tokens replaced by `[redacted]`."""
    if "=" in line:
        line = _QUERY_PAIR.sub(_redact_pair, line)
    if "earer" in line or "asic" in line:
        line = _BEARER.sub(r"\1" + REDACTED, line)
    return line


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and v is not None)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact(line)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

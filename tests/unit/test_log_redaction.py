"""Secrets never reach the log: query keys and bearer tokens are redacted in every formatted line."""

from __future__ import annotations

import json
import logging

import pytest

from realtime.control.logs import JsonFormatter, TextFormatter, redact


@pytest.mark.parametrize(
    "line, kept, gone",
    [
        ('127.0.0.1:5 - "GET /v1/realtime?api_key=sk-1&voice=a HTTP/1.1" 101', "voice=a", "sk-1"),
        ('"WebSocket /v1/telephony/twilio?voice=a&API_KEY=sk-2" [accepted]', "voice=a", "sk-2"),
        ("/x?token=abc;key=def#frag", "#frag", "abc"),
        ("Authorization: Bearer sk-3 more", "more", "sk-3"),
        ("monkey=1&keyboard=2", "monkey=1&keyboard=2", "[redacted]"),
        ("/v1/realtime?api%5Fkey=sk-4&voice=b", "voice=b", "sk-4"),
        ("/v1/realtime?%61pi_key=sk-5", "%61pi_key=", "sk-5"),
        ("/v1/realtime?x=1&Api+Key=no&KEY=sk-6", "Api+Key=no", "sk-6"),
    ],
)
def test_redact(line: str, kept: str, gone: str) -> None:
    out = redact(line)
    assert kept in out and gone not in out


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_formatters_redact_messages_arguments_and_tracebacks(formatter: logging.Formatter) -> None:
    try:
        raise RuntimeError("failed for /v1/realtime?api_key=sk-in-exc")
    except RuntimeError:
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', None, None)
        import sys

        record.exc_info = sys.exc_info()
    record.args = ("127.0.0.1:1", "GET", "/v1/models?api_key=sk-in-args")
    out = formatter.format(record)
    assert "sk-in-args" not in out and "sk-in-exc" not in out
    if isinstance(formatter, JsonFormatter):
        assert "api_key=[redacted]" in json.loads(out)["msg"]

"""The robustness suite's server: `realtime serve` in a child process, as an attacker meets it.

One gateway for the whole suite (Piper and the tone engine, API keys on, JSON logs at INFO
so that uvicorn's access and WebSocket lines are written), its log captured to a file. When
the suite ends the server gets SIGINT, as a user's Ctrl-C, and the whole log is checked:
no traceback, no "Task exception was never retrieved", no API key (valid or wrong) anywhere.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtest.bench_memory import status_mb
from loadtest.common import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "sk-robust-" + secrets.token_hex(8)
OTHER_KEY = "sk-tenant-" + secrets.token_hex(8)
WRONG_KEYS = ["sk-wrong-" + secrets.token_hex(8) for _ in range(3)]
FORBIDDEN_IN_LOG = ("Traceback", "never retrieved", "KeyboardInterrupt", "Exception in ASGI application")


class GatewayProcess:
    """A gateway in a child process; `log` is everything it wrote to stderr so far."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
        full_env.update(REALTIME_LOG_LEVEL="INFO", REALTIME_LOG_FORMAT="json", **env)
        self._log_file = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", "serve", "--port", str(self.port)],
            env=full_env, cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if not wait_for_http(f"{self.url}/ready", self.proc, 120):
            self.proc.kill()
            raise RuntimeError(f"gateway did not become ready:\n{self.log}")

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        return status_mb(self.proc.pid)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus counter's samples whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", headers=auth(), timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def interrupt(self) -> int:
        """Ctrl-C: the exit status once it has shut down."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            self._log_file.close()


def auth(key: str = GOOD_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def problems_in(log: str) -> list[str]:
    """Log lines that must never be written: tracebacks, unretrieved task errors, any API key."""
    secrets_ = (GOOD_KEY, OTHER_KEY, *WRONG_KEYS)
    return [line for line in log.splitlines() if any(s in line for s in FORBIDDEN_IN_LOG + secrets_)]


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log_path = tmp_path_factory.mktemp("robustness") / "gateway.log"
    live = GatewayProcess(
        log_path,
        REALTIME_ENGINES='["piper", "tone"]',
        REALTIME_API_KEYS=f'["{GOOD_KEY}", "{OTHER_KEY}"]',
        REALTIME_HEADER_TIMEOUT_S="1.5",
        REALTIME_BODY_TIMEOUT_S="1.5",
        REALTIME_CONTEXT_TIMEOUT_S="1.0",
        REALTIME_PIPER__ARENA_TRIM_IDLE_S="1.0",
    )
    yield live
    status = live.interrupt()
    log = live.log
    assert status in (0, 130), f"the gateway exited with {status} on SIGINT:\n{log[-3000:]}"
    assert "Application shutdown complete" in log, "no graceful shutdown on SIGINT"
    bad = problems_in(log)
    assert not bad, "the gateway's log holds tracebacks or API keys:\n" + "\n".join(bad[:20])

"""`python -m loadtest`: concurrent native WebSocket, REST or Twilio load against a gateway.

    python -m loadtest --url ws://127.0.0.1:8000 --mode ws --sessions 8 --duration 30 \\
        --tokens-per-second 30 --engine piper --lead-ms 300 --json out.json

Prints one table (a row per session plus an aggregate row) and writes the full
per-session data to `--json`. Exits 1 if any session saw an error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import report
from .common import ServerProcess, run_client
from .rest_load import RestLoadResult, run_rest_load
from .sessions import WsLoadResult, run_ws_load
from .tokens import load_paragraphs, text_of_length
from .twilio_load import TwilioLoadResult, run_twilio_load

LoadResult = WsLoadResult | RestLoadResult | TwilioLoadResult

TITLES = {"ws": "Native WebSocket sessions (/v1/realtime)", "rest": "REST clients (POST /v1/audio/speech)",
          "twilio": "Twilio Media Streams calls (/v1/telephony/twilio)"}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--url", default="ws://127.0.0.1:8000", help="gateway base URL, ws:// or http://")
    p.add_argument("--mode", choices=("ws", "rest", "twilio"), default="ws")
    p.add_argument("--sessions", type=int, default=1, help="concurrent sessions, clients or calls")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load; the last turn then drains")
    p.add_argument("--tokens-per-second", type=float, default=30.0, help="ws: LLM token rate")
    p.add_argument("--token-jitter", type=float, default=0.2, help="ws: each token gap scaled by 1 ± this")
    p.add_argument("--engine", help="engine (ws/twilio) or model (rest); default: the server's default")
    p.add_argument("--voice")
    p.add_argument("--lead-ms", type=float, default=300.0, help="ws: output.lead_ms (0: as fast as possible)")
    p.add_argument(
        "--format", dest="encoding", choices=("pcm", "mulaw", "alaw"), default="pcm", help="ws output"
    )
    p.add_argument("--sample-rate", type=int, default=24000, help="ws output sample rate")
    p.add_argument("--chars", type=int, default=400, help="rest: characters per request")
    p.add_argument("--text-file", help="paragraphs separated by blank lines (default: built-in replies)")
    p.add_argument("--api-key")
    p.add_argument("--seed", type=int, default=0, help="ws: tokenization and timing jitter seed")
    p.add_argument(
        "--ramp-up", type=float, default=0.0, help="ws: spread session starts over this many seconds"
    )
    p.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for a turn or close")
    p.add_argument("--json", help="write the full per-session results here")
    s = p.add_argument_group("spawned server")
    s.add_argument(
        "--spawn-server", action="store_true", help="run `realtime serve` on a free port and use it"
    )
    s.add_argument("--server-engine", help="`--engine` for the spawned server, e.g. tone")
    s.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG", help="extra `realtime serve` argument"
    )
    s.add_argument(
        "--server-env", action="append", default=[], metavar="K=V", help="extra environment variable"
    )
    return p


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    if args.duration <= 0 or args.tokens_per_second <= 0 or args.drain_timeout <= 0:
        parser.error("--duration, --tokens-per-second and --drain-timeout must be positive")
    if not 0 <= args.token_jitter < 1:
        parser.error("--token-jitter must be in [0, 1)")
    if args.lead_ms < 0 or args.chars < 1:
        parser.error("--lead-ms must be >= 0 and --chars >= 1")
    if any("=" not in kv for kv in args.server_env):
        parser.error("--server-env takes KEY=VALUE")


async def run(args: argparse.Namespace, url: str) -> LoadResult:
    """Run the selected mode; returns its result object."""
    paragraphs = load_paragraphs(args.text_file)
    if args.mode == "ws":
        return await run_ws_load(
            url, sessions=args.sessions, duration_s=args.duration, paragraphs=paragraphs, seed=args.seed, ramp_up_s=args.ramp_up,
            tokens_per_second=args.tokens_per_second, token_jitter=args.token_jitter, engine=args.engine,
            voice=args.voice, lead_ms=args.lead_ms, encoding=args.encoding, sample_rate=args.sample_rate,
            api_key=args.api_key, drain_timeout_s=args.drain_timeout,
        )  # fmt: skip
    if args.mode == "rest":
        return await run_rest_load(
            url, clients=args.sessions, duration_s=args.duration, text=text_of_length(args.chars, paragraphs),
            engine=args.engine, voice=args.voice, api_key=args.api_key, request_timeout_s=args.drain_timeout,
        )  # fmt: skip
    return await run_twilio_load(
        url, calls=args.sessions, duration_s=args.duration, paragraphs=paragraphs, engine=args.engine,
        voice=args.voice, api_key=args.api_key, drain_timeout_s=args.drain_timeout,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    server: ServerProcess | None = None
    if args.spawn_server:
        serve_args = [*(["--engine", args.server_engine] if args.server_engine else []), *args.server_arg]
        env = dict(kv.split("=", 1) for kv in args.server_env)
        server = ServerProcess(*serve_args, env=env)
    try:
        result = run_client(run(args, server.url if server else args.url))
    finally:
        if server is not None:
            server.close()
    report.emit(report.render_table(TITLES[args.mode], result.rows(), result.aggregate()))
    if isinstance(result, WsLoadResult):
        p = result.phrasing()
        report.emit(f"mid-phrase cuts: {p.mid_phrase} of {p.segments} segments ({p.share:.1%}); "
                    f"e.g. {p.examples[:3]}")  # fmt: skip
    if args.json:
        report.write_json(args.json, result.to_json())
    return 1 if result.errors else 0

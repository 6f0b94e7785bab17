"""Command line: `realtime serve`, `realtime say`, `realtime voices`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from .audio.encoders import AUDIO_FORMATS

_EXT_FORMATS = {".wav": "wav", ".mp3": "mp3", ".ogg": "opus", ".opus": "opus", ".aac": "aac",
                ".flac": "flac", ".pcm": "pcm", ".raw": "pcm", ".ulaw": "mulaw", ".alaw": "alaw"}  # fmt: skip


def _engines(value: str | None) -> list[str] | None:
    return [e.strip() for e in value.split(",") if e.strip()] if value else None


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app, gateway_server
    from .control.logs import configure_logging
    from .control.settings import load_settings

    if args.config:
        os.environ["REALTIME_CONFIG"] = args.config
    settings = load_settings(
        host=args.host, port=args.port, engines=_engines(args.engine), default_voice=args.voice,
        log_level=args.log_level,
    )  # fmt: skip
    configure_logging(settings.log_level, settings.log_format)
    try:
        gateway_server(create_app(settings), settings).run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on SIGINT, then re-raises it for the process: not an error.
        return 130
    return 0


async def _say(args: argparse.Namespace) -> int:
    from .audio.output import AudioOutput
    from .control.settings import load_settings
    from .engines.base import UnsupportedRequest
    from .gateway import Gateway
    from .session.events import AudioOut, ContextError

    settings = load_settings(engines=_engines(args.engine))
    gateway = Gateway(settings)
    fmt = args.format or _EXT_FORMATS.get(Path(args.output).suffix.lower(), "wav")
    try:
        selection = gateway.voices.resolve(None, args.voice)
        try:
            selection.engine.info.check(selection.voice, args.speed)
        except UnsupportedRequest as exc:
            print(exc, file=sys.stderr)
            return 2
        await gateway.engines.start()
        if gateway.engines.load_errors:
            print(f"engine failed to load: {gateway.engines.load_errors}", file=sys.stderr)
            return 1
        rate = args.sample_rate or selection.engine.info.sample_rate
        output = AudioOutput(fmt, selection.engine.info.sample_rate, rate)
        context = gateway.new_context(selection, speed=args.speed, stretch_pauses=False)
        context.append(args.text)
        context.done()
        data = bytearray()
        async for event in context.events():
            if isinstance(event, AudioOut):
                data += output.write(event.samples)
            elif isinstance(event, ContextError):
                print(event.message, file=sys.stderr)
                return 1
        data += output.finish()
        if not output.samples_out:
            print(
                "the text has nothing this voice can speak (emoji and markup are not read)", file=sys.stderr
            )
            return 2
        await asyncio.to_thread(Path(args.output).write_bytes, bytes(data))
        print(f"wrote {output.duration_s:.2f} s of {fmt} at {rate} Hz to {args.output}", file=sys.stderr)
        return 0
    finally:
        await gateway.stop()


def _voices(args: argparse.Namespace) -> int:
    from .control.settings import load_settings
    from .engines.registry import EngineRegistry

    registry = EngineRegistry.from_settings(load_settings(engines=_engines(args.engine)))
    for entry in registry.entries():  # configured, not loaded: voices come from the settings
        for voice in entry.engine.info.voices:
            print(f"{entry.name}\t{voice.id}\t{voice.language or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime", description="Realtime Voice Gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="bind address (default 127.0.0.1; REALTIME_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000; REALTIME_PORT)")
    serve.add_argument("--engine", help="engines to load, comma separated; the first is the default")
    serve.add_argument("--voice", help="default voice for OpenAI voice names")
    serve.add_argument("--config", help="TOML settings file (REALTIME_CONFIG)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    say = sub.add_parser("say", help="synthesize text to a file through the same engine path")
    say.add_argument("text")
    say.add_argument("-o", "--output", required=True, help="output file; the extension picks the format")
    say.add_argument("--format", choices=AUDIO_FORMATS)
    say.add_argument("--engine")
    say.add_argument("--voice")
    say.add_argument("--speed", type=float, default=1.0)
    say.add_argument("--sample-rate", type=int)
    voices = sub.add_parser("voices", help="list the voices of the configured engines")
    voices.add_argument("--engine")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "say":
        if not 0.25 <= args.speed <= 4.0:
            print("--speed must be between 0.25 and 4.0", file=sys.stderr)
            return 2
        from .text.sanitize import InvalidText, clean_text, speakable

        try:
            args.text = clean_text(args.text)
        except InvalidText as exc:
            print(exc, file=sys.stderr)
            return 2
        if not speakable(args.text):
            print("the text has nothing to speak", file=sys.stderr)
            return 2
        return asyncio.run(_say(args))
    return _voices(args)


if __name__ == "__main__":
    sys.exit(main())

"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..engines.registry import EngineRegistry

TTFA_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


class _EngineCollector:
    """Reads engine counters at scrape time instead of duplicating them."""

    def __init__(self, engines: EngineRegistry) -> None:
        self._engines = engines

    def collect(self):  # type: ignore[no-untyped-def]
        jobs = CounterMetricFamily(
            "realtime_engine_jobs", "Engine jobs by outcome", labels=["engine", "outcome"]
        )
        audio = CounterMetricFamily("realtime_engine_audio_seconds", "Audio synthesized", labels=["engine"])
        chars = CounterMetricFamily("realtime_engine_chars", "Characters synthesized", labels=["engine"])
        busy = CounterMetricFamily("realtime_engine_busy_seconds", "Worker time spent", labels=["engine"])
        cpu = CounterMetricFamily(
            "realtime_engine_cpu_seconds", "CPU time of the worker threads running jobs", labels=["engine"]
        )
        depth = GaugeMetricFamily(
            "realtime_engine_queue_depth", "Jobs waiting for a worker", labels=["engine"]
        )
        ready = GaugeMetricFamily("realtime_engine_ready", "1 when loaded and warmed", labels=["engine"])
        degraded = GaugeMetricFamily(
            "realtime_engine_degraded", "1 while new contexts avoid it after it failed one", labels=["engine"]
        )
        for entry in self._engines.entries():
            degraded.add_metric([entry.name], 1.0 if entry.health.degraded else 0.0)
        for name, engine in self._engines.engines.items():
            s = engine.stats
            jobs.add_metric([name, "started"], s.jobs_started)
            jobs.add_metric([name, "completed"], s.jobs_completed)
            jobs.add_metric([name, "cancelled"], s.jobs_cancelled)
            jobs.add_metric([name, "failed"], s.jobs_failed)
            audio.add_metric([name], s.audio_seconds)
            chars.add_metric([name], s.chars)
            busy.add_metric([name], s.busy_seconds)
            cpu.add_metric([name], s.cpu_seconds)
            depth.add_metric([name], engine.queue_depth)
            ready.add_metric([name], 1.0 if engine.ready else 0.0)
        yield from (jobs, audio, chars, busy, cpu, depth, ready, degraded)


class Metrics:
    def __init__(self, engines: EngineRegistry) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "realtime_requests", "HTTP/WebSocket requests", ["endpoint", "status"], registry=r
        )
        self.errors = Counter("realtime_errors", "Errors returned to clients", ["code"], registry=r)
        self.ttfa = Histogram(
            "realtime_time_to_first_audio_seconds",
            "Request or text arrival to first audio byte",
            ["transport", "engine"],
            buckets=TTFA_BUCKETS,
            registry=r,
        )
        self.rtf = Histogram(
            "realtime_real_time_factor",
            "Synthesis wall time per second of audio (lower is faster)",
            ["engine"],
            buckets=RTF_BUCKETS,
            registry=r,
        )
        self.active_sessions = Gauge("realtime_active_sessions", "Open sessions", ["transport"], registry=r)
        self.underruns = Counter("realtime_underruns", "Playout underruns", ["transport"], registry=r)
        self.interruptions = Counter(
            "realtime_interruptions", "Contexts interrupted", ["transport", "reason"], registry=r
        )
        self.audio_seconds = Counter(
            "realtime_audio_sent_seconds", "Audio sent to clients", ["transport"], registry=r
        )
        self.segments = Counter(
            "realtime_segments", "Segments synthesized as separate utterances", ["transport"], registry=r
        )
        self.mid_phrase_cuts = Counter(
            "realtime_mid_phrase_cuts",
            "Segments that ended mid-phrase (in a letter or digit) with another segment after them",
            ["transport"],
            registry=r,
        )
        self.pause_stretch = Counter(
            "realtime_pause_stretch_seconds",
            "Silence added to pauses at clause and sentence ends while the next segment was synthesized",
            ["transport"],
            registry=r,
        )
        self.failovers = Counter(
            "realtime_engine_failovers",
            "Contexts that moved to a fallback engine mid-way, by reason (error, stall, not_ready, draining, "
            "degraded)",
            ["from", "to", "reason"],
            registry=r,
        )
        self.degraded_contexts = Counter(
            "realtime_degraded_contexts",
            "Contexts that started on a fallback because the engine asked for could not take work",
            ["engine", "fallback"],
            registry=r,
        )
        r.register(_EngineCollector(engines))

    def record_phrasing(self, transport: str, *, segments: int, mid_phrase_cuts: int, pause_s: float) -> None:
        """One finished context's phrasing: how many segments, how many ended mid-phrase."""
        self.segments.labels(transport).inc(segments)
        self.mid_phrase_cuts.labels(transport).inc(mid_phrase_cuts)
        self.pause_stretch.labels(transport).inc(pause_s)

    def session(self, transport: str) -> SessionCounters:
        return SessionCounters(self, transport)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SessionCounters:
    """A realtime session's counters for its transport (`session.deps.SessionMetrics`).

    The children for the per-frame counters are looked up once per session: `labels()` takes
    a lock and builds a key, and the writer counts 50 frames a second."""

    def __init__(self, metrics: Metrics, transport: str) -> None:
        self._metrics = metrics
        self._transport = transport
        self._audio = metrics.audio_seconds.labels(transport)
        self._underruns = metrics.underruns.labels(transport)

    def audio_sent(self, seconds: float) -> None:
        self._audio.inc(seconds)

    def underrun(self) -> None:
        self._underruns.inc()

    def first_audio(self, engine: str, seconds: float) -> None:
        self._metrics.ttfa.labels(self._transport, engine).observe(seconds)

    def interrupted(self, reason: str) -> None:
        self._metrics.interruptions.labels(self._transport, reason).inc()

    def phrasing(self, segments: int, mid_phrase_cuts: int, pause_s: float) -> None:
        self._metrics.record_phrasing(
            self._transport, segments=segments, mid_phrase_cuts=mid_phrase_cuts, pause_s=pause_s
        )

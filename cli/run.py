"""`codegen-metrics run`: the streaming pipeline, until Ctrl-C or SIGTERM.

With no bootstrap servers it starts the embedded Tansu broker on a free 127.0.0.1 port and a
local Ray; ``--ray-address auto`` (or an address) joins an existing cluster instead. ``--demo``
also produces a simulated fleet into the input topics, so metrics flow within seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cli.flags import FlagError, add_settings_arguments, describe_invalid, overrides_from_args
from models import Settings
from reducer.nodes.stats import CoordinatorStats, PipelineStats

log = logging.getLogger("codegen_metrics")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--demo", action="store_true", help="also produce a simulated fleet")
    parser.add_argument("--demo-rate", type=float, default=200.0, help="demo events per second")
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: run)"
    )
    parser.add_argument("--no-dashboard", action="store_true", help="don't start the Ray dashboard")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags override environment variables, which override defaults."""
    return Settings(**overrides_from_args(args))


def _init_ray(settings: Settings, dashboard: bool) -> None:
    """Ray with this instance's namespace; actor logs reach the driver (and so ``ray job
    logs``) in the format and level of ``settings.log``."""
    import ray

    from actors.names import namespace

    options: dict[str, Any] = {
        "namespace": namespace(settings.instance),
        "log_to_driver": True,
        "logging_config": ray.LoggingConfig(
            encoding="JSON" if settings.log.format == "json" else "TEXT",
            log_level=settings.log.level,
        ),
    }
    if settings.pipeline.ray_address == "local":
        ray.init(
            address="local",
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"),
            **options,
        )
    else:
        ray.init(address=settings.pipeline.ray_address, **options)


def _setup_logging(settings: Settings) -> logging.Handler:
    """The driver's own log handler: plain lines for text, Ray's JSON formatter for json
    (which Ray's ``LoggingConfig`` then uses for the driver and the actors alike)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if settings.log.format == "json":
        try:
            from ray._common.formatters import JSONFormatter

            handler.setFormatter(JSONFormatter())
        except ImportError:  # another Ray release moved it: plain lines until Ray is up
            pass
    root = logging.getLogger()
    root.setLevel(settings.log.level)
    root.addHandler(handler)
    return handler


def _keep_one_handler(early: logging.Handler, settings: Settings) -> None:
    """After ``ray.init``: json keeps Ray's handler (the driver's lines then match the actors');
    text keeps ours, since Ray's text lines carry job, worker and node ids on every line."""
    root = logging.getLogger()
    if settings.log.format == "json":
        root.removeHandler(early)
        return
    for handler in list(root.handlers):
        if handler is not early:
            root.removeHandler(handler)


class ProgressLine:
    """Events/s in, published updates/s, windows, in-flight batches, bad events: every 2 s on
    a terminal, once a minute into a log (``ray job logs``: 1,440 lines a day, not 43,200)."""

    def __init__(self, interactive: bool | None = None, log_every_s: float = 60.0) -> None:
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.every_s = 0.0 if self.interactive else log_every_s
        self.last: tuple[float, int, int] | None = None
        """(monotonic time, events in, published) at the last render."""

    def due(self) -> bool:
        return self.last is None or time.monotonic() - self.last[0] >= self.every_s

    def render(self, stats: PipelineStats) -> str:
        now = time.monotonic()
        events = stats.ingest_total("events_in")
        published = stats.intent_executor.published if stats.intent_executor else 0
        rate_in = rate_out = 0.0
        if self.last is not None:
            elapsed = max(now - self.last[0], 1e-6)
            rate_in = (events - self.last[1]) / elapsed
            rate_out = (published - self.last[2]) / elapsed
        self.last = (now, events, published)
        coordinator = stats.coordinator or CoordinatorStats()
        return (
            f"{datetime.now(UTC):%H:%M:%S} in {events:,} ({rate_in:,.0f}/s)  "
            f"published {published:,} ({rate_out:,.1f}/s)  "
            f"open windows {coordinator.open_windows}  "
            f"finals {coordinator.finals_published}  "
            f"in flight {stats.ingest_total('batches_in_flight')}  "
            f"bad {stats.ingest_total('events_rejected'):,}  "
            f"late {stats.ingest_total('events_late'):,}  "
            f"watermark {coordinator.watermark or '-'}"
        )


def first_applied(stats: PipelineStats) -> float | None:
    """When the pipeline first applied an event (wall clock), if it has."""
    moments = [w.first_applied_at for w in stats.windows if w and w.first_applied_at]
    return min(moments) if moments else None


def process_started_at() -> float:
    """Wall-clock start of this process (Linux: /proc, to 10 ms), else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def on_embedded_broker(settings: Settings, bootstrap_servers: str, storage_path: str) -> Settings:
    """``settings`` for a run on the embedded broker: its address, checkpoints in
    ``storage_path`` (the broker keeps nothing across runs, so neither may they), and, unless
    set, the consumer session timeout Tansu allows (``EMBEDDED_SESSION_TIMEOUT_MS``)."""
    from actors.kafka import EMBEDDED_SESSION_TIMEOUT_MS

    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "session_timeout_ms": settings.kafka.session_timeout_ms or EMBEDDED_SESSION_TIMEOUT_MS,
        }
    )
    pipeline = settings.pipeline.model_copy(update={"storage_path": storage_path})
    return settings.model_copy(update={"kafka": kafka, "pipeline": pipeline})


def run_pipeline(args: argparse.Namespace) -> int:
    launched_at = process_started_at()
    from actors.ray_env import apply_ray_environment

    apply_ray_environment()
    try:
        settings = settings_from_args(args)
    except FlagError as exc:
        print(f"codegen-metrics: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"codegen-metrics: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    early_handler = _setup_logging(settings)

    from actors.broker import EmbeddedBroker
    from actors.pipeline import Pipeline
    from reducer.nodes.resume import ResumeRefused

    broker: EmbeddedBroker | None = None
    if not settings.kafka.bootstrap_servers:
        broker = EmbeddedBroker().start()
        fresh = tempfile.mkdtemp(prefix="codegen-metrics-checkpoints-")
        settings = on_embedded_broker(settings, broker.bootstrap_servers, fresh)
        log.info("embedded Tansu broker on %s (memory only)", broker.bootstrap_servers)
    stopping = threading.Event()

    def stop_on_signals() -> None:
        """SIGTERM (``ray job stop``, systemd, Kubernetes) and SIGINT (Ctrl-C) both mean a clean
        stop. Installed again after ``ray.init``, which replaces the SIGTERM handler with an
        immediate ``sys.exit``."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())

    stop_on_signals()
    pipeline: Pipeline | None = None
    registrar: Any = None
    demo: threading.Thread | None = None
    try:
        if args.demo:  # produces while Ray, the actors and the HTTP API start (seconds)
            from actors import kafka

            # Here, not in the thread: the pipeline's start reads the topics' partitions, and a
            # produce to a missing topic would create it with the broker's default partitions.
            kafka.ensure_topics(settings.kafka, kafka.topic_configs(settings.kafka))
            demo = threading.Thread(
                target=_demo, args=(settings, args.demo_rate, stopping), daemon=True
            )
            demo.start()
        _init_ray(settings, dashboard=not args.no_dashboard)
        _keep_one_handler(early_handler, settings)
        stop_on_signals()
        ray_up = time.time()
        try:
            pipeline = Pipeline(settings).start()
        except ResumeRefused as refused:
            print(f"codegen-metrics: {refused}", file=sys.stderr)
            return 2
        pipeline_up = time.time()
        if settings.serve.enabled:
            from actors.serve_app import RouteTaken, start_api

            node_id = settings.serve.node_id or socket.gethostname()
            try:
                served = start_api(pipeline.settings, node_id)
            except RouteTaken as taken:
                print(f"codegen-metrics: {taken}", file=sys.stderr)
                return 2
            log.info("HTTP API on %s (dashboard /, health /health, docs /docs)", served.url)
            from actors.consul import ConsulRegistrar
            from models.version import VERSION

            registrar = ConsulRegistrar.from_settings(
                settings.consul,
                settings.serve,
                node_id=node_id,
                version=VERSION,
                window_type=settings.pipeline.windows[0].value,
                port=served.port,
                instance=settings.instance,
                route_prefix=served.route_prefix,
            ).start()
        log.info(
            "pipeline running: %d ingest, %d window actors; topics %s -> %s (Ctrl-C stops)",
            pipeline.settings.pipeline.ingest_actors,
            pipeline.settings.pipeline.window_actors,
            settings.kafka.topic_prefix + ".codegen.*.v1",
            settings.kafka.target_topic,
        )
        log.info(
            "started %.1f s after launch (Ray %.1f s, actors %.1f s)",
            pipeline_up - launched_at,
            ray_up - launched_at,
            pipeline_up - ray_up,
        )
        progress = ProgressLine()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        first_seen = False
        while not stopping.wait(2.0):
            stats = pipeline.stats()
            if not first_seen and (first := first_applied(stats)) is not None:
                log.info("first events applied %.1f s after launch", first - launched_at)
                first_seen = True
            action = pipeline.supervise(stats)
            if action:
                log.warning("recovery: %s", action)
            if progress.due():
                line = progress.render(stats)
                if progress.interactive:
                    print(line, file=sys.stderr, flush=True)
                else:
                    log.info("progress: %s", line)
            if deadline is not None and time.monotonic() >= deadline:
                break
        stopping.set()
        log.info("stopping: draining in-flight batches, final publish, commit")
        if demo is not None:
            demo.join(timeout=10)
        if registrar is not None:
            registrar.stop()  # deregister before the health check starts failing
            registrar = None
        final = pipeline.stop()
        pipeline = None
        log.info(
            "stopped cleanly: %d events in, %d intents, %d published",
            final.ingest_total("events_in"),
            final.coordinator.intents_published if final.coordinator else 0,
            final.intent_executor.published if final.intent_executor else 0,
        )
        return 0
    finally:
        stopping.set()
        if demo is not None:
            demo.join(timeout=10)  # before the broker it produces to stops
        if registrar is not None:
            registrar.stop()  # before the health check starts failing
        if pipeline is not None:
            pipeline.stop()
        import ray

        if ray.is_initialized() and settings.serve.enabled:
            from actors.serve_app import stop_api

            stop_api(settings)

        if ray.is_initialized():
            ray.shutdown()
        if broker is not None:
            broker.stop()


def _demo(settings: Settings, rate: float, stopping: threading.Event) -> None:
    from actors.fleet import produce_events
    from cli.simulator import simulate_fleet

    events = simulate_fleet(
        10**9, seed=int(time.time()), start=datetime.now(UTC), workflows_per_second=rate / 10
    )
    try:
        produce_events(settings.kafka, events, rate=rate, stop=stopping)
    except Exception:
        log.exception("demo producer stopped")

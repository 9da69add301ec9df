"""`codegen-metrics run`: the streaming pipeline, until Ctrl-C or SIGTERM.

With no bootstrap servers it starts the embedded Tansu broker on a free 127.0.0.1 port and a
local Ray; ``--ray-address auto`` (or an address) joins an existing cluster instead. ``--demo``
also produces a simulated fleet into the input topics, so metrics flow within seconds.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

from models import Settings
from reducer.nodes.stats import CoordinatorStats, PipelineStats

log = logging.getLogger("codegen_metrics")

#: flag -> (settings section, field, help). Each flag's env var is shown in its help.
FLAGS: dict[str, tuple[str, str, type, str]] = {
    "--bootstrap-servers": (
        "kafka",
        "bootstrap_servers",
        str,
        "Kafka bootstrap servers; empty starts the embedded Tansu broker",
    ),
    "--topic-prefix": ("kafka", "topic_prefix", str, "environment prefix of every topic name"),
    "--group-id": ("kafka", "group_id", str, "consumer group of the ingest actors"),
    "--auto-offset-reset": (
        "kafka",
        "auto_offset_reset",
        str,
        "where a new consumer group starts (earliest = backfill)",
    ),
    "--security-protocol": ("kafka", "security_protocol", str, "e.g. SASL_SSL"),
    "--sasl-mechanism": ("kafka", "sasl_mechanism", str, "e.g. SCRAM-SHA-512"),
    "--sasl-username": ("kafka", "sasl_username", str, "SASL user (password: env only)"),
    "--ssl-ca-location": ("kafka", "ssl_ca_location", str, "CA bundle path"),
    "--ingest-actors": ("pipeline", "ingest_actors", int, "Kafka consumers (one group)"),
    "--window-actors": ("pipeline", "window_actors", int, "stateful window actors"),
    "--batch-size": ("pipeline", "batch_size", int, "messages per consumed batch"),
    "--max-batches-in-flight": (
        "pipeline",
        "max_batches_in_flight",
        int,
        "per ingest actor, before backpressure",
    ),
    "--tick-seconds": ("pipeline", "tick_seconds", float, "coordinator publish interval"),
    "--allowed-lateness-seconds": (
        "pipeline",
        "allowed_lateness_seconds",
        float,
        "how far behind the watermark an event may be",
    ),
    "--idle-partition-timeout-seconds": (
        "pipeline",
        "idle_partition_timeout_seconds",
        float,
        "a silent partition stops holding the watermark",
    ),
    "--ray-address": (
        "pipeline",
        "ray_address",
        str,
        "'local' starts Ray; 'auto' or host:port joins a cluster",
    ),
    "--serve-host": ("serve", "host", str, "HTTP bind address"),
    "--serve-port": ("serve", "port", int, "HTTP port"),
}


def env_name(section: str, name: str) -> str:
    return f"CODEGEN_METRICS_{section.upper()}__{name.upper()}"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, (section, name, kind, text) in FLAGS.items():
        parser.add_argument(
            flag, type=kind, default=None, help=f"{text} [env: {env_name(section, name)}]"
        )
    parser.add_argument(
        "--windows",
        default=None,
        help="comma-separated window types to publish, e.g. hourly,daily "
        f"[env: {env_name('pipeline', 'windows')} as a JSON list]",
    )
    parser.add_argument(
        "--kafka-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any librdkafka property, repeatable [env: "
        f"{env_name('kafka', 'extra_config')} as a JSON object]",
    )
    parser.add_argument("--demo", action="store_true", help="also produce a simulated fleet")
    parser.add_argument("--demo-rate", type=float, default=200.0, help="demo events per second")
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: run)"
    )
    parser.add_argument("--no-dashboard", action="store_true", help="don't start the Ray dashboard")
    parser.add_argument("--no-serve", action="store_true", help="don't start the HTTP API")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags override environment variables, which override defaults."""
    overrides: dict[str, dict[str, Any]] = {}
    for flag, (section, name, _kind, _text) in FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            overrides.setdefault(section, {})[name] = value
    if args.windows:
        overrides.setdefault("pipeline", {})["windows"] = [
            w.strip() for w in args.windows.split(",") if w.strip()
        ]
    if getattr(args, "no_serve", False):
        overrides.setdefault("serve", {})["enabled"] = False
    if args.kafka_config:
        pairs = dict(item.split("=", 1) for item in args.kafka_config if "=" in item)
        overrides.setdefault("kafka", {})["extra_config"] = pairs
    return Settings(**overrides)


def _init_ray(settings: Settings, dashboard: bool) -> None:
    import ray

    from actors.names import namespace

    address = settings.pipeline.ray_address
    if address == "local":
        ray.init(
            address="local",
            namespace=namespace(settings.instance),
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"),
            log_to_driver=False,
        )
    else:
        ray.init(address=address, namespace=namespace(settings.instance), log_to_driver=False)


class ProgressLine:
    """Events/s in, published updates/s, windows, in-flight batches, bad events."""

    def __init__(self) -> None:
        self.last: tuple[float, int, int] | None = None
        """(monotonic time, events in, published) at the last render."""

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


def run_pipeline(args: argparse.Namespace) -> int:
    from actors.ray_env import apply_ray_environment

    apply_ray_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = settings_from_args(args)
    except Exception as exc:  # pydantic ValidationError: show it plainly
        print(f"codegen-metrics: invalid configuration: {exc}", file=sys.stderr)
        return 2

    from actors.broker import EmbeddedBroker
    from actors.pipeline import Pipeline
    from reducer.nodes.resume import ResumeRefused

    broker: EmbeddedBroker | None = None
    if not settings.kafka.bootstrap_servers:
        broker = EmbeddedBroker().start()
        settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap_servers": broker.bootstrap_servers}
                )
            }
        )
        # The embedded broker keeps nothing across runs, so neither may checkpoints.
        fresh = tempfile.mkdtemp(prefix="codegen-metrics-checkpoints-")
        settings = settings.model_copy(
            update={"pipeline": settings.pipeline.model_copy(update={"storage_path": fresh})}
        )
        log.info("embedded Tansu broker on %s (memory only)", broker.bootstrap_servers)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    pipeline: Pipeline | None = None
    registrar: Any = None
    demo: threading.Thread | None = None
    try:
        _init_ray(settings, dashboard=not args.no_dashboard)
        try:
            pipeline = Pipeline(settings).start()
        except ResumeRefused as refused:
            print(f"codegen-metrics: {refused}", file=sys.stderr)
            return 2
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
            from actors.serve_app import VERSION

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
        if args.demo:
            demo = threading.Thread(
                target=_demo, args=(settings, args.demo_rate, stopping), daemon=True
            )
            demo.start()
        progress = ProgressLine()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stopping.wait(2.0):
            stats = pipeline.stats()
            action = pipeline.supervise(stats)
            if action:
                log.warning("recovery: %s", action)
            print(progress.render(stats), file=sys.stderr, flush=True)
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

"""The ``codegen-metrics`` command: aggregate, simulate, schema, run."""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Sequence

from models import EnumMetricsWindow
from models.version import VERSION

WINDOW_CHOICES = [w.value for w in EnumMetricsWindow]


def _simulate_to_file(args: argparse.Namespace) -> int:
    from cli.simulator import fleet_json_lines

    opener = gzip.open if args.out.endswith(".gz") else open
    try:
        with opener(args.out, "wb") as out:
            count = 0
            for line in fleet_json_lines(args.workflows, args.seed):
                out.write(line + b"\n")
                count += 1
    except OSError as exc:
        print(f"codegen-metrics: cannot write {args.out!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {count:,} events of {args.workflows:,} workflows to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegen-metrics",
        description="Streaming metrics reducer for fleets of LLM code generators.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    aggregate = commands.add_parser(
        "aggregate", help="aggregate a JSON Lines file of events (no Kafka, no Ray)"
    )
    aggregate.add_argument("path", help="JSON Lines file; '-' for stdin; .gz is decompressed")
    aggregate.add_argument("--window", choices=WINDOW_CHOICES, default="hourly")
    aggregate.add_argument(
        "--per-window", action="store_true", help="one result per calendar window, oldest first"
    )
    aggregate.add_argument("--format", choices=["table", "json"], default="table")

    simulate = commands.add_parser(
        "simulate", help="generate a synthetic fleet's events into a file or into Kafka"
    )
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="output JSON Lines file (.gz compresses)")
    target.add_argument(
        "--bootstrap-servers", help="produce into the input topics of this Kafka cluster"
    )
    simulate.add_argument("--topic-prefix", default=None, help="input topic prefix (default dev)")
    simulate.add_argument("--workflows", type=int, default=1000)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--rate", type=float, default=None, help="events per second (Kafka)")
    simulate.add_argument(
        "--duration", type=float, default=None, help="stop after S seconds (Kafka, with --rate)"
    )

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the input events or of the published event"
    )
    schema.add_argument(
        "which",
        nargs="?",
        choices=["input", "output"],
        default="input",
        help="input: the four workflow events, bounds included (default); output: the "
        "published CODEGEN_METRICS_RECORDED event",
    )

    from cli.run import add_run_arguments

    run = commands.add_parser("run", help="run the streaming pipeline until Ctrl-C / SIGTERM")
    add_run_arguments(run)
    return parser


def _simulate_to_kafka(args: argparse.Namespace) -> int:
    import threading
    from datetime import UTC, datetime

    from actors.fleet import produce_events
    from cli.simulator import simulate_fleet
    from models import Settings

    kafka_settings = Settings().kafka.model_copy(
        update={"bootstrap_servers": args.bootstrap_servers}
        | ({"topic_prefix": args.topic_prefix} if args.topic_prefix is not None else {})
    )
    workflows = args.workflows if args.duration is None else 10**9
    stop = threading.Event()
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    start = datetime.now(UTC) if args.rate else None
    per_second = args.rate / 10 if args.rate else 2.0
    sent = produce_events(
        kafka_settings,
        simulate_fleet(workflows, args.seed, start=start, workflows_per_second=per_second),
        rate=args.rate,
        stop=stop,
    )
    stop.set()
    print(f"produced {sent:,} events to {kafka_settings.topic('codegen.*.v1')}", file=sys.stderr)
    return 0


def _print_schema(which: str) -> int:
    """The schema with the bounds of this environment's settings (as ``run`` would use)."""
    import json

    from pydantic import ValidationError

    from cli.flags import describe_invalid
    from models import Settings
    from models.bounds import EventBounds
    from models.schema import input_schema, output_schema

    if which == "output":
        print(json.dumps(output_schema(), indent=2))
        return 0
    try:
        bounds = EventBounds.of(Settings().pipeline)
    except ValidationError as exc:
        print(f"codegen-metrics: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(input_schema(bounds), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "aggregate":
        from cli.aggregate import run_aggregate

        return run_aggregate(args.path, args.window, args.per_window, args.format)
    if args.command == "simulate":
        return _simulate_to_kafka(args) if args.bootstrap_servers else _simulate_to_file(args)
    if args.command == "schema":
        return _print_schema(args.which)
    if args.command == "run":
        from cli.run import run_pipeline

        return run_pipeline(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

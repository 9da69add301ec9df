"""The ``codegen-metrics`` command: aggregate, simulate, run."""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Sequence

from models import EnumMetricsWindow

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

    simulate = commands.add_parser("simulate", help="generate a synthetic fleet's events")
    simulate.add_argument("--out", required=True, help="output JSON Lines file (.gz compresses)")
    simulate.add_argument("--workflows", type=int, default=1000)
    simulate.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "aggregate":
        from cli.aggregate import run_aggregate

        return run_aggregate(args.path, args.window, args.per_window, args.format)
    if args.command == "simulate":
        return _simulate_to_file(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""`codegen-metrics aggregate`: JSON Lines in, metrics out, bad lines counted and reported."""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, compress, islice
from typing import IO, BinaryIO

from pydantic import ValidationError

from cli.flags import describe_invalid
from models import EnumMetricsWindow, ModelMetricsState, Settings, decode_batch
from models.bounds import MIN_TIMESTAMP, EventBounds
from models.events import CodegenEvent
from reducer import MetricsAggregator

BATCH_LINES = 2000
REPORT_FIRST_BAD = 10


@dataclass
class LineReport:
    """Bad input seen while reading: counted by category, the first few kept with line numbers."""

    bad: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    first: list[tuple[int, str]] = field(default_factory=list)
    stamps: list[datetime] = field(default_factory=list)
    """Timestamps of the bad lines that carry a usable one (for ``--per-window``)."""

    def reject(self, line_number: int, category: str, reason: str, line: bytes = b"") -> None:
        self.bad += 1
        self.by_category[category] += 1
        if len(self.first) < REPORT_FIRST_BAD:
            self.first.append((line_number, reason))
        stamp = usable_timestamp(line)
        if stamp is not None:
            self.stamps.append(stamp)

    def charge(self, results: list[ModelMetricsState]) -> list[ModelMetricsState]:
        """Each window with the bad lines stamped inside it as ``events_invalid``."""
        charged = []
        for result in results:
            start, end = result.window_start, result.window_end
            invalid = sum(1 for t in self.stamps if start <= t < end)
            charged.append(result.model_copy(update={"events_invalid": invalid}))
        return charged


def usable_timestamp(line: bytes) -> datetime | None:
    """The ``timestamp`` of a bad line, if it is an ISO 8601 string within the domain bounds
    (models/bounds.py); a line without one cannot be placed in any window."""
    try:
        stamp = datetime.fromisoformat(json.loads(line)["timestamp"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    stamp = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return stamp if stamp >= MIN_TIMESTAMP else None


def open_input(path: str) -> BinaryIO:
    """The file at ``path`` (``-`` for stdin, ``.gz`` decompressed); raises OSError."""
    if path == "-":
        return sys.stdin.buffer
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total_bytes: int | None, stream: IO[str] | None = None) -> None:
        self.total = total_bytes
        self.stream = sys.stderr if stream is None else stream  # at call time: redirectable
        self.enabled = self.stream.isatty()
        self.last = 0.0

    def update(self, done_bytes: int, lines: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        if self.total:
            share = min(done_bytes / self.total, 1.0)
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {share:6.1%} {lines:,} lines")
        else:
            self.stream.write(f"\r{lines:,} lines")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def read_batches(
    stream: BinaryIO, report: LineReport, progress: Progress, bounds: EventBounds | None = None
) -> Iterator[list[CodegenEvent]]:
    """Decode JSON Lines ``BATCH_LINES`` lines at a time into lists of events; blank lines are
    skipped, bad ones (out of the domain bounds included) reported."""
    bounds = bounds or EventBounds()
    line_number = 0  # of the last line read
    done = 0
    while chunk := list(islice(stream, BATCH_LINES)):
        first = line_number + 1
        line_number += len(chunk)
        done += sum(map(len, chunk))
        lines = list(map(bytes.strip, chunk))
        numbers: Sequence[int] = range(first, line_number + 1)
        if not all(lines):  # blank lines: kept out of the batch, still counted
            numbers = list(compress(numbers, lines))
            lines = list(filter(None, lines))
            if not lines:
                continue
        decoded = decode_batch(lines, bounds, time.time())
        for reject in decoded.rejects:
            report.reject(
                numbers[reject.index], reject.category, reject.reason, lines[reject.index]
            )
        progress.update(done, line_number)
        events = decoded.events
        del decoded  # nothing keeps the batch alive past its fold (aggregate_batches)
        yield events
        del events
    progress.close()


@contextlib.contextmanager
def young_collections(threshold: int) -> Iterator[None]:
    """The actors' collector policy (actors/collector.py) while folding: a young-generation
    collection every ``threshold`` net new container objects instead of Python's 700, so a
    decoded batch's events die by reference counting before a collection walks them; Python's
    thresholds again afterwards. 0 leaves them alone."""
    before = gc.get_threshold()
    if threshold > 0:
        gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_aggregate(path: str, window: str, per_window: bool, output_format: str) -> int:
    """Aggregate a file with the ``CODEGEN_METRICS_REDUCER__*`` settings and the input bounds
    (``CODEGEN_METRICS_PIPELINE__MAX_COST_USD``, ...) of the environment, as ``run`` does."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"codegen-metrics: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    try:
        stream = open_input(path)
        size = os.path.getsize(path) if path != "-" and not path.endswith(".gz") else None
    except OSError as exc:
        print(f"codegen-metrics: cannot read {path!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    report = LineReport()
    window_type = EnumMetricsWindow(window)
    bounds = EventBounds.of(settings.pipeline)
    try:
        with stream, young_collections(settings.pipeline.gc_young_threshold):
            batches = read_batches(stream, report, Progress(size), bounds)
            if per_window:
                events = chain.from_iterable(batches)
                results = MetricsAggregator.aggregate_windows(events, window_type, settings.reducer)
            else:
                results = [
                    MetricsAggregator.aggregate_batches(batches, window_type, settings.reducer)
                ]
    except (OSError, EOFError) as exc:
        print(f"codegen-metrics: error reading {path!r}: {exc}", file=sys.stderr)
        return 2
    if per_window:  # each window counts the bad lines stamped inside it
        results = report.charge(results)
    else:
        results = [results[0].model_copy(update={"events_invalid": report.bad})]
    if report.bad:
        print(
            f"codegen-metrics: {report.bad} bad line(s) skipped and counted "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(report.by_category.items()))})",
            file=sys.stderr,
        )
        for number, reason in report.first:
            print(f"  line {number}: {reason}", file=sys.stderr)
        unplaced = report.bad - sum(r.events_invalid for r in results)
        if per_window and unplaced:
            print(
                f"  {unplaced} of them in no window (no usable timestamp, or none of the "
                "window's events valid)",
                file=sys.stderr,
            )
    if output_format == "json":
        if per_window:
            print(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
        else:
            print(results[0].model_dump_json(indent=2))
    else:
        print("\n\n".join(format_table(r) for r in results))
    return 0


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    body = [
        "  ".join(
            f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join([title, line, "-" * len(line), *body])


def format_table(m: ModelMetricsState) -> str:
    """A readable report of one window."""
    optional = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    head = [
        f"{m.window_type.value} window {m.window_start:%Y-%m-%d %H:%M} .. "
        f"{m.window_end:%Y-%m-%d %H:%M} UTC",
        f"  generations  {m.total_generations:,} finished ({m.successful_generations:,} ok, "
        f"{m.failed_generations:,} failed, {m.started_generations:,} started), "
        f"success rate {m.success_rate:.2%}",
        f"  duration s   avg {m.avg_duration_seconds:.3f}  p50 {m.p50_duration_seconds:.3f}  "
        f"p95 {m.p95_duration_seconds:.3f}  p99 {m.p99_duration_seconds:.3f}  "
        f"min {m.min_duration_seconds:.3f}  max {m.max_duration_seconds:.3f}"
        + ("" if m.percentiles_exact else "  (percentiles within 1%)"),
        f"  quality      avg {m.avg_quality_score:.3f}  "
        f"test coverage {optional(m.avg_test_coverage)}"
        f"  complexity {optional(m.avg_complexity_score)}",
        f"  cost         ${m.total_cost_usd:,.4f} total, ${m.avg_cost_per_generation:.4f} per "
        f"generation, {m.total_tokens:,} tokens",
        f"  intelligence {m.intelligence_enabled_count:,} generations used patterns, "
        f"{m.avg_patterns_applied:.2f} patterns on average",
        f"  workflows    {m.workflow_ids_tracked:,} distinct; events {m.events_processed:,} "
        f"aggregated, {m.events_invalid:,} invalid; {m.items_per_second:,.0f} events/s",
    ]
    sections = ["\n".join(head)]
    if m.model_metrics:
        sections.append(
            _table(
                "by model",
                ["model", "n", "avg s", "p95 s", "quality", "cost $", "$/gen"],
                [
                    [
                        k,
                        str(v["total_generations"]),
                        f"{v['avg_duration_seconds']:.2f}",
                        f"{v['p95_duration_seconds']:.2f}",
                        f"{v['avg_quality_score']:.3f}",
                        f"{v['total_cost_usd']:.4f}",
                        f"{v['avg_cost_per_generation']:.4f}",
                    ]
                    for k, v in m.model_metrics.items()
                ],
            )
        )
    if m.node_type_metrics:
        sections.append(
            _table(
                "by node type",
                ["node type", "n", "avg s", "p95 s", "quality"],
                [
                    [
                        k,
                        str(v["total_generations"]),
                        f"{v['avg_duration_seconds']:.2f}",
                        f"{v['p95_duration_seconds']:.2f}",
                        f"{v['avg_quality_score']:.3f}",
                    ]
                    for k, v in m.node_type_metrics.items()
                ],
            )
        )
    if m.stage_metrics:
        sections.append(
            _table(
                "by stage",
                ["stage", "n", "failures", "avg s", "p95 s"],
                [
                    [
                        k,
                        str(v["count"]),
                        str(v["failures"]),
                        f"{v['avg_duration_seconds']:.2f}",
                        f"{v['p95_duration_seconds']:.2f}",
                    ]
                    for k, v in m.stage_metrics.items()
                ],
            )
        )
    if m.failures_by_error_code:
        sections.append(
            _table(
                "failures by error code",
                ["error code", "n"],
                [[k, str(v)] for k, v in m.failures_by_error_code.items()],
            )
        )
    sections.append(
        _table(
            "quality buckets",
            ["bucket", "n"],
            [[k, str(v)] for k, v in m.quality_score_buckets.items()],
        )
    )
    sections.append(
        _table(
            "cost buckets (USD)",
            ["bucket", "n", "cost $"],
            [[k, str(v["count"]), f"{v['total_cost_usd']:.4f}"] for k, v in m.cost_buckets.items()],
        )
    )
    return "\n\n".join(sections)

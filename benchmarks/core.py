"""Core benchmark: the aggregation beside the original algorithm (baseline.py), in one run.

    python benchmarks/core.py --quick                          # about a minute
    python benchmarks/core.py                                  # full sizes, about 10 minutes
    python benchmarks/core.py --rows 2 --baseline 749d53a~1    # row 2, this tree against a commit

Rows (medians of interleaved repeats; the ratio divides ours by the baseline's number shown, so
above 1 is faster for rates and bigger for ms and MiB):
  1. parsed events -> AggregationState (fresh, and past its exact caps) vs ``aggregate_events``.
  2. raw JSON -> state on one core: ``decode_batch`` with the domain bounds + ``add_batch``, beside
     validation alone and ``json.loads`` alone (the ceiling); baseline: json.loads + Model(**d).
     Also the ``aggregate`` command (``run_aggregate`` on a file of the same lines) beside pydantic
     batch validation alone (``list[Json[event]]``, in the command's batches).
     ``--baseline REF`` also runs row 2 in fresh child processes for this tree and for REF's
     models/ reducer/ cli/ (``git archive``), alternating, to price a change in one run.
  3. peak RSS aggregating N events, each in a fresh child process.
  4. p50/p95/p99 relative error of the sketch beyond the exact cap, beside ``ddsketch``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import baseline
import common as c
import numpy as np
from pydantic import Json, TypeAdapter

from cli.aggregate import BATCH_LINES, run_aggregate
from models.decode import _Event, decode_batch
from models.events import EVENT_TYPES, CodegenEvent
from models.metrics import ModelMetricsState
from reducer import AggregationState, MetricsAggregator, nearest_rank
from reducer.sketch import QuantileStore

Row = tuple[str, str, str, str, str]
"""(row, measure, ours, baseline, ours / baseline)"""
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Plan:
    workflows: int  # rows 1 and 2: fleet size (about 9.7 events a workflow)
    repeats: int
    rounds: int  # --baseline: child processes per tree
    rss_sizes: tuple[int, int]
    pool_workflows: int  # row 3: the pool the events cycle through
    quantile_values: int
    quantile_seeds: tuple[int, ...]


FULL = Plan(10_000, 5, 7, (1_000_000, 10_000_000), 1_000, 1_000_000, (1, 2, 3))
QUICK = Plan(2_000, 5, 5, (100_000, 500_000), 300, 200_000, (1,))


def bounded_decoder() -> Any:
    """``decode_batch`` with the default domain bounds at the current time, as the window actors
    call it; plain ``decode_batch`` in a tree from before the bounds existed."""
    if "bounds" not in inspect.signature(decode_batch).parameters:
        return decode_batch
    from models.bounds import EventBounds

    bounds, now = EventBounds(), time.time()
    return lambda batch: decode_batch(batch, bounds, now)


# -- row 1: parsed events -> state ---------------------------------------------------------------


def fold(state: AggregationState, event_batches: list[list[CodegenEvent]]) -> ModelMetricsState:
    for batch in event_batches:
        state.add_batch(batch)
    return state.to_metrics()


def row_parsed(plan: Plan, events: list[CodegenEvent]) -> list[Row]:
    n = len(events)
    event_batches = c.batches(events)
    ours, base = fold(AggregationState(), event_batches), baseline.aggregate_events(events)
    fields = ("successful_generations", "p95_duration_seconds", "total_tokens")
    differ = [f for f in fields if getattr(ours, f) != getattr(base, f)]
    if differ or not math.isclose(ours.avg_duration_seconds, base.avg_duration_seconds):
        raise AssertionError(f"ours and the baseline disagree on {differ or 'avg_duration'}")

    # Steady state: the same events into a state already past every exact cap (sketch
    # percentiles, HyperLogLog ids, workflow cap), as a long-lived window's is. The baseline has
    # no state: its counterpart is one call over the prefill and the events together.
    prefill = list(c.cycle_copies(events, n + max(2 * n, 120_000)))[n:]  # cycle 0 is events
    warm = AggregationState()
    for batch in c.batches(prefill):
        warm.add_batch(batch)
    assert not warm.distinct_workflows.exact and not warm.duration_quantiles.exact
    warm_copies = [warm.merge(AggregationState()) for _ in range(plan.repeats + 1)]
    everything = prefill + events
    c.log(f"row 1: {n:,} parsed events; steady state after {len(prefill):,}")
    with c.frozen_inputs():
        t = c.time_interleaved(
            {
                "ours": lambda: fold(AggregationState(), event_batches),
                "baseline": lambda: baseline.aggregate_events(events),
                "ours_steady": lambda: fold(warm_copies.pop(), event_batches),
                "baseline_all": lambda: baseline.aggregate_events(everything),
                "ours_1k": lambda: fold(AggregationState(), event_batches[:1]),
                "baseline_1k": lambda: baseline.aggregate_events(event_batches[0]),
            },
            plan.repeats,
        )
    r = {k: c.rate(n, v) for k, v in t.items()}
    steady_base = c.rate(len(everything), t["baseline_all"])
    ms_1k = {k: t[k] * 1e3 for k in ("ours_1k", "baseline_1k")}
    return [
        (
            "1",
            f"parsed events -> state, {n:,} events",
            c.ev_s(r["ours"]),
            c.ev_s(r["baseline"]),
            c.ratio(r["ours"] / r["baseline"]),
        ),
        (
            "1",
            f"  steady state: into a state past its caps (baseline: one call on "
            f"{len(everything):,})",
            c.ev_s(r["ours_steady"]),
            c.ev_s(steady_base),
            c.ratio(r["ours_steady"] / steady_base),
        ),
        (
            "1",
            "  1000 events, fresh -> metrics (latency)",
            f"{ms_1k['ours_1k']:.2f} ms",
            f"{ms_1k['baseline_1k']:.2f} ms",
            c.ratio(ms_1k["ours_1k"] / ms_1k["baseline_1k"]),
        ),
    ]


# -- row 2: raw JSON -> state ----------------------------------------------------------------------


def parse_like_original(lines: list[bytes]) -> list[Any]:
    """The original's parsing: json.loads, then the event class's constructor, per message."""
    return [EVENT_TYPES[(d := json.loads(line))["event_type"]](**d) for line in lines]


def row2_functions(lines: list[bytes], path: str) -> dict[str, Any]:
    """Ours, in the tree on the path: decode + fold, decode alone (with and without the domain
    bounds: the same in a tree without them), json.loads alone; and the ``aggregate`` command on
    ``path`` (the same lines) beside pydantic batch validation alone, in the command's batches."""
    decode = bounded_decoder()
    line_batches = c.batches(lines)
    command_batches = c.batches(lines, BATCH_LINES)
    validator = TypeAdapter(list[Json[_Event]])  # the models' tagged union, nothing else

    def command() -> None:
        with (
            open(os.devnull, "w") as null,
            contextlib.redirect_stdout(null),
            contextlib.redirect_stderr(null),
        ):
            if run_aggregate(path, "hourly", False, "table") != 0:
                raise RuntimeError(f"aggregate {path} failed")

    def state() -> ModelMetricsState:
        aggregate = AggregationState()
        for batch in line_batches:
            aggregate.add_batch(decode(batch).events)
        return aggregate.to_metrics()

    def each(function: Any, batches: list[list[bytes]] = line_batches) -> Any:
        def run() -> None:  # results dropped at once, as in the pipeline
            for batch in batches:
                function(batch)

        return run

    return {
        "state": state,
        "validate": each(decode),
        "unbounded": each(decode_batch),
        "json_loads": each(lambda batch: [json.loads(line) for line in batch]),
        "command": command,
        "batch_validation": each(validator.validate_python, command_batches),
    }


def command_row(label: str, command: float, validation: float) -> Row:
    return (
        "2",
        label,
        f"{command * 1e3:.1f} ms",
        f"{validation * 1e3:.1f} ms",
        c.ratio(command / validation),
    )


def row_json(plan: Plan, lines: list[bytes]) -> list[Row]:
    n = len(lines)
    c.log(f"row 2: {n:,} raw JSON messages, {sum(map(len, lines)) / n:.0f} B on average")
    with tempfile.TemporaryDirectory(prefix="bench-lines-") as tmp:
        path = Path(tmp) / "fleet.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        ours = row2_functions(lines, str(path))
        del ours["unbounded"]  # only --baseline prices the bounds
        with c.frozen_inputs():
            t = c.time_interleaved(
                {
                    **ours,
                    "base_state": lambda: baseline.aggregate_events(parse_like_original(lines)),
                    "base_validate": lambda: parse_like_original(lines),
                },
                plan.repeats,
            )
    r = {k: c.rate(n, v) for k, v in t.items()}
    label = f"aggregate command on the file vs batch validation alone ({BATCH_LINES:,} lines)"
    return [
        (
            "2",
            "raw JSON -> state, one core (decode_batch + add_batch)",
            c.ev_s(r["state"]),
            c.ev_s(r["base_state"]),
            c.ratio(r["state"] / r["base_state"]),
        ),
        (
            "2",
            "  validation alone (baseline: Model(**json.loads(m)))",
            c.ev_s(r["validate"]),
            c.ev_s(r["base_validate"]),
            c.ratio(r["validate"] / r["base_validate"]),
        ),
        (
            "2",
            f"  json.loads alone (the ceiling; state at {r['state'] / r['json_loads']:.0%})",
            c.ev_s(r["json_loads"]),
            "same code",
            "",
        ),
        command_row(label, t["command"], t["batch_validation"]),
    ]


def tree_child(lines_path: str, repeats: int) -> dict[str, Any]:
    """Row 2 in a fresh process, for the tree first on PYTHONPATH. Refuses to report when any
    module of models/ reducer/ cli/ came from elsewhere (the venv's editable install)."""
    lines = Path(lines_path).read_bytes().splitlines()
    functions = row2_functions(lines, lines_path)
    with c.frozen_inputs():
        t = c.time_interleaved(functions, repeats)
    root = Path(os.environ["PYTHONPATH"]).resolve()
    stray = [
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in ("models", "reducer", "cli")
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(root)
    ]
    if stray:
        raise SystemExit(f"modules from outside {root}: {stray}")
    applied = functions["state"]().events_processed
    rates = {k: c.rate(len(lines), v) for k, v in t.items()}
    return {"rates": rates, "ratio": t["command"] / t["batch_validation"], "applied": applied}


def row_trees(plan: Plan, lines: list[bytes], ref: str) -> list[Row]:
    """Row 2, this tree against ``ref``: child processes alternate (ours, ref, ours, ...) so a
    change of load on the shared machine hits both trees alike. Cells: the median of the
    children's medians (the children's range)."""
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(c.REPO), "archive", ref, "models", "reducer", "cli"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        data = Path(tmp) / "lines.jsonl"
        data.write_bytes(b"\n".join(lines))
        args = [__file__, "--tree-child", str(data), "--repeats", str(plan.repeats)]
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "ref": []}
        for i in range(plan.rounds):
            for side, tree in (("ours", c.REPO), ("ref", Path(tmp))):
                result = c.run_child(args, pythonpath=tree)
                if result["applied"] != len(lines):
                    raise RuntimeError(f"{side} applied {result['applied']} of {len(lines)}")
                runs[side].append({**result["rates"], "ratio": result["ratio"]})
            c.log(f"row 2 vs {ref}: round {i + 1} of {plan.rounds}")
    rows: list[Row] = []
    for key, label in (
        ("state", f"raw JSON -> state, this tree vs {ref}"),
        ("validate", "  validation alone"),
        ("unbounded", "  validation without the bounds pass (decode_batch(m) both)"),
        ("json_loads", "  json.loads alone (same code: the noise)"),
        ("command", "aggregate command on the file"),
        ("batch_validation", "  batch validation alone (same code: the noise)"),
        ("ratio", "  aggregate time / batch validation time, per child"),
    ):
        got = {side: [r[key] for r in rs] for side, rs in runs.items()}
        ours, theirs = (statistics.median(got[side]) for side in ("ours", "ref"))
        if key == "ratio":  # a ratio in time, not in events/s
            cells = [
                f"{c.ratio(statistics.median(v))} ({min(v):.2f}-{max(v):.2f})" for v in got.values()
            ]
        else:
            cells = [
                f"{c.ev_s(statistics.median(v))} ({min(v):,.0f}-{max(v):,.0f})"
                for v in got.values()
            ]
        rows.append(("2", label, *cells, c.ratio(ours / theirs)))
    return rows


# -- row 3: peak RSS in fresh child processes ------------------------------------------------------


def rss_child(kind: str, n: int, pool_workflows: int) -> dict[str, Any]:
    """One measurement in its own process: ``ours`` streams copies of a decoded pool (cheap to
    make at 10M), ``ours-json`` decodes raw messages in the stream, ``baseline`` holds every
    decoded event in one list, as the original requires."""
    lines = c.fleet_lines(pool_workflows, seed=7)
    if kind == "ours":
        pool = c.parse_lines(lines)
        metrics = MetricsAggregator.aggregate_events(c.cycle_copies(pool, n))
    elif kind == "ours-json":
        metrics = MetricsAggregator.aggregate_events(c.decoded_stream(c.cycle_lines(lines, n)))
    else:
        metrics = baseline.aggregate_events(list(c.decoded_stream(c.cycle_lines(lines, n))))
    return {"peak_mib": c.peak_rss_mib(), "events": metrics.events_processed}


def row_rss(plan: Plan) -> list[Row]:
    small, large = plan.rss_sizes

    def peak(kind: str, n: int) -> float:
        c.log(f"row 3: {kind}, {n:,} events")
        args = [__file__, "--rss-child", kind, str(n), str(plan.pool_workflows)]
        result = c.run_child(args)
        if result["events"] != n:
            raise RuntimeError(f"{kind} processed {result['events']:,} of {n:,}")
        return result["peak_mib"]

    ours_small, ours_large = peak("ours", small), peak("ours", large)
    json_small, base_small = peak("ours-json", small), peak("baseline", small)
    estimate = base_small * large / small
    available = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) / 1024
    if estimate < available / 4:
        base_large = peak("baseline", large)
        shown = f"{base_large:,.0f} MiB"
    else:  # would not fit beside other work: scaled linearly from the small run
        base_large, shown = estimate, f"~{estimate:,.0f} MiB (scaled from {small:,})"
    return [
        (
            "3",
            f"peak RSS, {small:,} events",
            f"{ours_small:,.0f} MiB",
            f"{base_small:,.0f} MiB",
            c.ratio(ours_small / base_small),
        ),
        (
            "3",
            f"peak RSS, {large:,} events",
            f"{ours_large:,.0f} MiB",
            shown,
            c.ratio(ours_large / base_large),
        ),
        (
            "3",
            f"  ours decoding raw JSON in the stream, {small:,} events",
            f"{json_small:,.0f} MiB",
            f"{base_small:,.0f} MiB",
            c.ratio(json_small / base_small),
        ),
    ]


# -- row 4: percentile error in sketch mode --------------------------------------------------------


def row_quantiles(plan: Plan) -> list[Row]:
    from ddsketch import DDSketch

    n = plan.quantile_values
    errors: dict[str, dict[float, float]] = {"ours": {}, "ddsketch": {}}
    for seed in plan.quantile_seeds:
        c.log(f"row 4: {n:,} lognormal durations, seed {seed}")
        values = np.random.default_rng(seed).lognormal(math.log(40.0), 1.0, n)
        ordered = np.sort(values)
        store = QuantileStore(exact_cap=10_000, relative_accuracy=0.01)
        for i in range(0, n, c.BATCH):  # as add_batch feeds it: one list a batch
            store.extend(values[i : i + c.BATCH].tolist())
        assert not store.exact, "QuantileStore should be past its exact cap"
        sketch = DDSketch(relative_accuracy=0.01)
        for value in values.tolist():
            sketch.add(value)
        for p in QUANTILES:
            exact = float(ordered[nearest_rank(p, n) - 1])
            for name, got in (
                ("ours", store.quantile(p)),
                ("ddsketch", sketch.get_quantile_value(p)),
            ):
                error = abs(got - exact) / exact
                errors[name][p] = max(errors[name].get(p, 0.0), error)

    def cell(name: str) -> str:
        return " / ".join(f"{errors[name][p]:.3%}" for p in QUANTILES)

    label = f"max rel. error p50/p95/p99, {n:,} values x {len(plan.quantile_seeds)} seeds"
    return [("4", label, cell("ours"), "ddsketch " + cell("ddsketch"), "")]


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--rows", default="1234", help="rows to run, e.g. 12")
    parser.add_argument("--baseline", metavar="GIT_REF", help="also row 2 against this commit")
    parser.add_argument("--tree-child", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tree_child:
        print(json.dumps(tree_child(args.tree_child, args.repeats)))
        return 0
    if args.rss_child:
        kind, n, pool = args.rss_child
        print(json.dumps(rss_child(kind, int(n), int(pool))))
        return 0

    plan = QUICK if args.quick else FULL
    began = time.perf_counter()
    header = c.machine()
    rows: list[Row] = []
    if "1" in args.rows or "2" in args.rows:
        lines = c.fleet_lines(plan.workflows, seed=1)
        if "1" in args.rows:
            rows += row_parsed(plan, c.parse_lines(lines))
        if "2" in args.rows:
            rows += row_json(plan, lines)
            if args.baseline:
                rows += row_trees(plan, lines, args.baseline)
    if "3" in args.rows:
        rows += row_rss(plan)
    if "4" in args.rows:
        rows += row_quantiles(plan)
    print(c.table(["#", "measure", "ours", "baseline", "ours / baseline"], rows))
    mode = "quick" if args.quick else "full"
    print(f"\n{mode} run, {plan.repeats} repeats, {time.perf_counter() - began:.0f} s; {header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Core benchmark: this project's aggregation beside the original algorithm, in the same run.

    python benchmarks/core.py            # full run (about 9 min idle, 15 min on a loaded machine)
    python benchmarks/core.py --quick    # smoke run (under a minute)

Rows (each one ours beside the baseline of benchmarks/baseline.py, medians of N repeats):
  1. parsed events -> state: events/s and ms per 1000 events; plus the 1000-event latency.
  2. raw JSON bytes -> state on one core, with validation alone and json.loads alone (the ceiling).
  3. peak RSS aggregating 1M and 10M events, each in a fresh child process.
  4. p50/p95/p99 relative error beyond the exact threshold, ours and the ``ddsketch`` package.

The table goes to stdout, progress to stderr; ``--json PATH`` also writes every raw number.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import baseline
import common as c
import numpy as np
from ddsketch import DDSketch

from models.decode import decode_batch
from models.events import EVENT_TYPES
from models.metrics import ModelMetricsState
from reducer import AggregationState, MetricsAggregator, nearest_rank
from reducer.sketch import QuantileStore

STATE_TARGET = 100_000  # events/s, raw JSON -> state, one core
RSS_TARGET_MIB = 256
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Plan:
    workflows: int  # fleet size of rows 1 and 2 (about 9.7 events per workflow)
    repeats: int
    rss_sizes: tuple[int, int]  # row 3: a small and a large N
    pool_workflows: int  # row 3: workflows in the pool that the event generator cycles through
    quantile_values: int
    quantile_seeds: tuple[int, ...]


FULL = Plan(10_000, 5, (1_000_000, 10_000_000), 1_000, 1_000_000, (1, 2, 3))
QUICK = Plan(1_000, 3, (50_000, 200_000), 300, 100_000, (1,))

Row = dict[str, Any]


# -- row 1: parsed events -> state ---------------------------------------------------------------


def fold_ours(event_batches: list[list[Any]]) -> ModelMetricsState:
    state = AggregationState()
    for batch in event_batches:
        state.add_batch(batch)
    return state.to_metrics()


def check_agreement(ours: ModelMetricsState, base: ModelMetricsState) -> str:
    """Both sides computed the same thing (up to the original's known defects)."""
    problems = []
    if ours.successful_generations != base.successful_generations:
        problems.append("successful_generations")
    if ours.p95_duration_seconds != base.p95_duration_seconds:
        problems.append("p95")
    if not math.isclose(ours.avg_duration_seconds, base.avg_duration_seconds, rel_tol=1e-12):
        problems.append("avg_duration")
    if ours.total_tokens != base.total_tokens:
        problems.append("total_tokens")
    if ours.workflow_ids_tracked != base.workflow_ids_tracked:
        problems.append("workflow_ids_tracked")
    return "agree" if not problems else "DISAGREE on " + ", ".join(problems)


def row_parsed(plan: Plan, events: list[Any]) -> tuple[list[Row], dict[str, Any]]:
    n = len(events)
    event_batches = [list(b) for b in c.batches(events)]
    c.log(f"row 1: {n:,} parsed events, {plan.repeats} repeats")
    agreement = check_agreement(fold_ours(event_batches), baseline.aggregate_events(events))

    # Steady state: the same events folded into a state already past every exact cap (sketch
    # percentiles, HyperLogLog ids, workflow cap), as a long-lived window's state is. The
    # baseline's counterpart is one call over the prefill and the events together.
    prefill_n = max(2 * n, 120_000)
    prefill = list(c.cycle_copies(events, prefill_n, first_cycle=1))
    warm = AggregationState()
    for batch in c.batches(prefill):
        warm.add_batch(batch)
    assert not warm.distinct_workflows.exact and not warm.duration_quantiles.exact
    warm_copies = [warm.merge(AggregationState()) for _ in range(plan.repeats + 1)]
    everything = prefill + events
    del prefill
    c.freeze_inputs()

    def fold_warm() -> ModelMetricsState:
        state = warm_copies.pop()
        for batch in event_batches:
            state.add_batch(batch)
        return state.to_metrics()

    t = c.time_interleaved(
        {
            "ours": lambda: fold_ours(event_batches),
            "baseline": lambda: baseline.aggregate_events(events),
            "ours_steady": fold_warm,
            "baseline_all": lambda: baseline.aggregate_events(everything),
        },
        plan.repeats,
    )
    ours, base = t["ours"], t["baseline"]
    warm_rate = c.rate(n, t["ours_steady"].median)
    base_all_rate = c.rate(prefill_n + n, t["baseline_all"].median)

    # The original's own latency target: 1000 items, fresh aggregation to a result, < 100 ms.
    ours_1k, base_1k = [], []
    for batch in event_batches[1:-1] * 2:  # full batches only; first pass warms up
        gc.collect()
        began = time.perf_counter()
        AggregationState().add_batch(batch).to_metrics()
        ours_1k.append(time.perf_counter() - began)
        began = time.perf_counter()
        baseline.aggregate_events(batch)
        base_1k.append(time.perf_counter() - began)
    half = len(ours_1k) // 2
    lat_ours, lat_base = statistics.median(ours_1k[half:]), statistics.median(base_1k[half:])
    c.unfreeze_inputs()

    ours_rate, base_rate = c.rate(n, ours.median), c.rate(n, base.median)
    rows = [
        {
            "row": "1",
            "measure": f"parsed events -> state, {n:,} events in batches of {c.BATCH}",
            "ours": c.fmt_rate(ours_rate),
            "baseline": c.fmt_rate(base_rate),
            "ratio": c.fmt_ratio(ours_rate / base_rate),
            "target": "faster than baseline",
            "met": "yes" if ours_rate > base_rate else "NO",
        },
        {
            "row": "1",
            "measure": "  same, ms per 1000 events",
            "ours": f"{ours.median / n * 1e6:.2f} ms",
            "baseline": f"{base.median / n * 1e6:.2f} ms",
            "ratio": c.fmt_ratio(base.median / ours.median),
            "target": "",
            "met": "",
        },
        {
            "row": "1",
            "measure": f"  steady state: {n:,} events into a state past its exact caps"
            f" (baseline: one call on {prefill_n + n:,})",
            "ours": c.fmt_rate(warm_rate),
            "baseline": c.fmt_rate(base_all_rate),
            "ratio": c.fmt_ratio(warm_rate / base_all_rate),
            "target": "faster than baseline",
            "met": "yes" if warm_rate > base_all_rate else "NO",
        },
        {
            "row": "1",
            "measure": "  1000 events, fresh aggregation -> metrics (latency)",
            "ours": f"{lat_ours * 1e3:.2f} ms",
            "baseline": f"{lat_base * 1e3:.2f} ms",
            "ratio": c.fmt_ratio(lat_base / lat_ours),
            "target": "< 100 ms (original's)",
            "met": "yes" if lat_ours < 0.1 else "NO",
        },
    ]
    raw = {
        "events": n,
        "steady_prefill_events": prefill_n,
        "timings": {k: v.to_obj() for k, v in t.items()},
        "cpu_rates": {
            "ours": c.rate(n, ours.median_cpu),
            "baseline": c.rate(n, base.median_cpu),
            "ours_steady": c.rate(n, t["ours_steady"].median_cpu),
            "baseline_all": c.rate(prefill_n + n, t["baseline_all"].median_cpu),
        },
        "latency_1k_ours_s": lat_ours,
        "latency_1k_baseline_s": lat_base,
        "agreement": agreement,
    }
    return rows, raw


# -- row 2: raw JSON bytes -> state ----------------------------------------------------------------


def parse_like_original(lines: list[bytes]) -> list[Any]:
    """The original's parsing: json.loads, then the event class's constructor, per message."""
    events = []
    for line in lines:
        data = json.loads(line)
        events.append(EVENT_TYPES[data["event_type"]](**data))
    return events


def row_json(plan: Plan, lines: list[bytes]) -> tuple[list[Row], dict[str, Any]]:
    n = len(lines)
    line_batches = [list(b) for b in c.batches(lines)]
    c.log(f"row 2: {n:,} raw JSON messages ({sum(map(len, lines)) / n:.0f} B avg)")

    def ours_state() -> ModelMetricsState:
        state = AggregationState()
        for batch in line_batches:
            state.add_batch(decode_batch(batch).events)
        return state.to_metrics()

    def ours_validate() -> None:
        for batch in line_batches:
            decode_batch(batch)

    def json_only() -> None:
        for batch in line_batches:
            for line in batch:
                json.loads(line)

    c.freeze_inputs()

    t = c.time_interleaved(
        {
            "ours_state": ours_state,
            "baseline_state": lambda: baseline.aggregate_events(parse_like_original(lines)),
            "ours_validate": ours_validate,
            "baseline_validate": lambda: parse_like_original(lines),
            "json_loads": json_only,
        },
        plan.repeats,
    )
    c.unfreeze_inputs()
    r = {k: c.rate(n, v.median) for k, v in t.items()}
    cpu = {k: c.rate(n, v.median_cpu) for k, v in t.items()}
    rows = [
        {
            "row": "2",
            "measure": "raw JSON -> state, one core (decode_batch + add_batch)",
            "ours": c.fmt_rate(r["ours_state"]),
            "baseline": c.fmt_rate(r["baseline_state"]),
            "ratio": c.fmt_ratio(r["ours_state"] / r["baseline_state"]),
            "target": f">= {STATE_TARGET:,} ev/s",
            "met": ("yes" if r["ours_state"] >= STATE_TARGET else "NO")
            + f" ({r['ours_state'] / STATE_TARGET:.0%}; by CPU time"
            + f" {cpu['ours_state'] / STATE_TARGET:.0%})",
        },
        {
            "row": "2",
            "measure": "  validation alone (decode_batch; baseline: Model(**json.loads))",
            "ours": c.fmt_rate(r["ours_validate"]),
            "baseline": c.fmt_rate(r["baseline_validate"]),
            "ratio": c.fmt_ratio(r["ours_validate"] / r["baseline_validate"]),
            "target": "ceiling",
            "met": f"state at {r['ours_state'] / r['ours_validate']:.0%} of it",
        },
        {
            "row": "2",
            "measure": "  json.loads alone, per message (same code both sides)",
            "ours": c.fmt_rate(r["json_loads"]),
            "baseline": c.fmt_rate(r["json_loads"]),
            "ratio": "1.00x",
            "target": "parse ceiling",
            "met": f"state at {r['ours_state'] / r['json_loads']:.0%} of it",
        },
    ]
    raw = {
        "messages": n,
        "rates": r,
        "cpu_rates": {k: c.rate(n, v.median_cpu) for k, v in t.items()},
    }
    raw["timings"] = {k: v.to_obj() for k, v in t.items()}
    return rows, raw


# -- row 3: peak RSS in fresh child processes ----------------------------------------------------


def child_main(kind: str, n: int, pool_workflows: int) -> dict[str, Any]:
    """One memory measurement; runs in its own process (``--child``)."""
    rss_imports = c.current_rss_mib()
    pool_lines = c.fleet_lines(pool_workflows, seed=7)
    pool = c.parse_lines(pool_lines) if kind in ("ours", "baseline-light") else []
    if kind in ("ours", "baseline-light"):
        del pool_lines
    gc.collect()
    rss_setup, peak_setup = c.current_rss_mib(), c.peak_rss_mib()
    began = time.perf_counter()
    held = None
    if kind == "ours":
        metrics = MetricsAggregator.aggregate_events(c.cycle_copies(pool, n))
    elif kind == "ours-json":
        metrics = MetricsAggregator.aggregate_events(c.decoded_stream(c.cycle_lines(pool_lines, n)))
    elif kind == "baseline-parsed":
        events = list(c.decoded_stream(c.cycle_lines(pool_lines, n)))
        held = c.current_rss_mib()
        metrics = baseline.aggregate_events(events)
    elif kind == "baseline-light":
        events = list(c.cycle_copies(pool, n, baseline.light_copy))
        held = c.current_rss_mib()
        metrics = baseline.aggregate_events(events)
    else:
        raise SystemExit(f"unknown child kind {kind}")
    return {
        "kind": kind,
        "events": n,
        "pool_events": len(pool),
        "rss_after_imports_mib": rss_imports,
        "rss_after_setup_mib": rss_setup,
        "peak_after_setup_mib": peak_setup,
        "rss_holding_events_mib": held,
        "peak_rss_mib": c.peak_rss_mib(),
        "vm_hwm_mib": c.high_water_mib(),
        "seconds": time.perf_counter() - began,
        "events_processed": metrics.events_processed,
        "workflow_ids_tracked": metrics.workflow_ids_tracked,
        "p95_duration_seconds": metrics.p95_duration_seconds,
    }


def run_child(kind: str, n: int, plan: Plan) -> dict[str, Any]:
    c.log(f"row 3: child {kind} with {n:,} events ...")
    args = [__file__, "--child", kind, "--events", str(n), "--pool", str(plan.pool_workflows)]
    result = c.run_child(args, timeout=1800)
    c.log(f"        peak {result['peak_rss_mib']:.0f} MiB in {result['seconds']:.0f} s")
    if result["events_processed"] != n:
        raise RuntimeError(f"child {kind} processed {result['events_processed']} of {n}")
    return result


def row_rss(plan: Plan) -> tuple[list[Row], dict[str, Any]]:
    small, large = plan.rss_sizes
    runs = {
        "ours_small": run_child("ours", small, plan),
        "ours_large": run_child("ours", large, plan),
        "ours_json_small": run_child("ours-json", small, plan),
        "base_parsed_small": run_child("baseline-parsed", small, plan),
        "base_light_small": run_child("baseline-light", small, plan),
        "base_light_large": run_child("baseline-light", large, plan),
    }
    parsed = runs["base_parsed_small"]
    per_event = (parsed["peak_rss_mib"] - parsed["rss_after_setup_mib"]) / small
    parsed_large_est = parsed["rss_after_setup_mib"] + per_event * large
    peak = {k: v["peak_rss_mib"] for k, v in runs.items()}
    ours_max = max(peak["ours_small"], peak["ours_large"])
    growth = peak["ours_large"] - peak["ours_small"]

    def mib(value: float) -> str:
        return f"{value:,.0f} MiB"

    rows = [
        {
            "row": "3",
            "measure": f"peak RSS, {small:,} events (baseline: parsed pydantic events)",
            "ours": mib(peak["ours_small"]),
            "baseline": mib(peak["base_parsed_small"]),
            "ratio": c.fmt_ratio(peak["ours_small"] / peak["base_parsed_small"]),
            "target": f"<= {RSS_TARGET_MIB} MB",
            "met": "yes" if peak["ours_small"] <= RSS_TARGET_MIB else "NO",
        },
        {
            "row": "3",
            "measure": f"peak RSS, {large:,} events (baseline: extrapolated, see notes)",
            "ours": mib(peak["ours_large"]),
            "baseline": f"~{mib(parsed_large_est)}",
            "ratio": c.fmt_ratio(peak["ours_large"] / parsed_large_est),
            "target": f"<= {RSS_TARGET_MIB} MB, flat",
            "met": ("yes" if ours_max <= RSS_TARGET_MIB else "NO")
            + f" ({growth:+.0f} MiB from {small:,})",
        },
        {
            "row": "3",
            "measure": f"  baseline, light events (measured): {small:,} / {large:,}",
            "ours": f"{mib(peak['ours_small'])} / {mib(peak['ours_large'])}",
            "baseline": f"{mib(peak['base_light_small'])} / {mib(peak['base_light_large'])}",
            "ratio": c.fmt_ratio(peak["ours_large"] / peak["base_light_large"]),
            "target": "",
            "met": "",
        },
        {
            "row": "3",
            "measure": f"  ours from raw JSON (decode in the stream), {small:,} events",
            "ours": mib(peak["ours_json_small"]),
            "baseline": mib(peak["base_parsed_small"]),
            "ratio": c.fmt_ratio(peak["ours_json_small"] / peak["base_parsed_small"]),
            "target": f"<= {RSS_TARGET_MIB} MB",
            "met": "yes" if peak["ours_json_small"] <= RSS_TARGET_MIB else "NO",
        },
    ]
    raw = {
        "runs": runs,
        "baseline_parsed_mib_per_million_events": per_event * 1e6,
        "baseline_parsed_large_estimate_mib": parsed_large_est,
    }
    return rows, raw


# -- row 4: percentile error in sketch mode ------------------------------------------------------


def row_quantiles(plan: Plan) -> tuple[list[Row], dict[str, Any]]:
    n = plan.quantile_values
    errors: dict[str, dict[str, list[float]]] = {"ours": {}, "ddsketch": {}}
    add_seconds: dict[str, list[float]] = {"ours": [], "ddsketch": []}
    sizes: dict[str, int] = {}
    for seed in plan.quantile_seeds:
        c.log(f"row 4: {n:,} lognormal durations, seed {seed}")
        values = np.random.default_rng(seed).lognormal(math.log(40.0), 1.0, n)
        ordered = np.sort(values)
        exact = {p: float(ordered[nearest_rank(p, n) - 1]) for p in QUANTILES}
        chunks = [values[i : i + c.BATCH].tolist() for i in range(0, n, c.BATCH)]

        store = QuantileStore(exact_cap=10_000, relative_accuracy=0.01)
        began = time.perf_counter()
        for chunk in chunks:  # as add_batch feeds it: one list per batch
            store.extend(chunk)
        add_seconds["ours"].append(time.perf_counter() - began)
        assert not store.exact, "QuantileStore should be in sketch mode"
        sizes["ours_bytes"] = int(store.sketch.counts.nbytes)

        sketch = DDSketch(relative_accuracy=0.01)
        flat = values.tolist()
        began = time.perf_counter()
        for value in flat:
            sketch.add(value)
        add_seconds["ddsketch"].append(time.perf_counter() - began)
        sizes["ddsketch_bins"] = len(sketch._store.bins)

        for p in QUANTILES:
            key = f"p{round(p * 100)}"
            got = {"ours": store.quantile(p), "ddsketch": sketch.get_quantile_value(p)}
            for name, value in got.items():
                errors[name].setdefault(key, []).append(abs(value - exact[p]) / exact[p])

    worst = {name: max(max(v) for v in per.values()) for name, per in errors.items()}

    def detail(name: str) -> str:
        return ", ".join(f"{k} {max(v):.3%}" for k, v in errors[name].items())

    rows = [
        {
            "row": "4",
            "measure": f"max rel. error p50/p95/p99 vs exact nearest-rank, {n:,} lognormal"
            f" values x {len(plan.quantile_seeds)} seeds",
            "ours": f"{worst['ours']:.3%}",
            "baseline": f"ddsketch {worst['ddsketch']:.3%}",
            "ratio": "",
            "target": "<= 1%",
            "met": "yes" if worst["ours"] <= 0.01 else "NO",
        },
        {
            "row": "4",
            "measure": "  per quantile (worst seed)",
            "ours": detail("ours"),
            "baseline": detail("ddsketch"),
            "ratio": "",
            "target": "",
            "met": "",
        },
        {
            "row": "4",
            "measure": "  inserting the values (ours: lists of 1000; ddsketch: add per value)",
            "ours": c.fmt_rate(c.rate(n, statistics.median(add_seconds["ours"]))),
            "baseline": c.fmt_rate(c.rate(n, statistics.median(add_seconds["ddsketch"]))),
            "ratio": c.fmt_ratio(
                statistics.median(add_seconds["ddsketch"]) / statistics.median(add_seconds["ours"])
            ),
            "target": "",
            "met": "",
        },
    ]
    return rows, {"errors": errors, "add_seconds": add_seconds, "sizes": sizes}


# -- profile -------------------------------------------------------------------------------------


def profile(plan: Plan, top: int = 10) -> None:
    """cProfile of add_batch (fresh state, then past the exact caps) and of decode_batch."""
    lines = c.fleet_lines(plan.workflows, seed=1)
    events = c.parse_lines(lines)
    event_batches = [list(b) for b in c.batches(events)]
    line_batches = [list(b) for b in c.batches(lines)]
    warm = AggregationState()
    for batch in c.batches(list(c.cycle_copies(events, max(2 * len(events), 120_000), None, 1))):
        warm.add_batch(batch)

    def fresh() -> None:
        state = AggregationState()
        for batch in event_batches:
            state.add_batch(batch)

    def steady() -> None:
        for batch in event_batches:
            warm.add_batch(batch)

    def decode() -> None:
        for batch in line_batches:
            decode_batch(batch)

    c.freeze_inputs()

    for name, fn in (("add_batch, fresh state", fresh), ("add_batch, past caps", steady)):
        _print_profile(name, fn, len(events), top)
    _print_profile("decode_batch", decode, len(lines), top)
    c.unfreeze_inputs()


def _print_profile(name: str, fn: Callable[[], None], n: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    print(f"## {name}: {n:,} events, {stats.total_tt:.2f} s under cProfile")
    stats.sort_stats("tottime").print_stats(top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    print()


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 1 min)")
    parser.add_argument("--rows", default="1234", help="which rows to run, e.g. 12 (default all)")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    parser.add_argument(
        "--profile", action="store_true", help="only print cProfile top functions of the hot paths"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_main(args.child, args.events, args.pool)))
        return 0

    plan = QUICK if args.quick else FULL
    if args.profile:
        profile(plan)
        return 0
    began = time.perf_counter()
    info = c.machine_info()
    c.log(f"machine: {info}")
    rows: list[Row] = []
    code = c.code_info()
    c.log(f"code: {code}")
    raw: dict[str, Any] = {"machine": info, "code": code, "plan": plan.__dict__}
    raw["quick"] = args.quick
    if "1" in args.rows or "2" in args.rows:
        c.log(f"simulating {plan.workflows:,} workflows ...")
        lines = c.fleet_lines(plan.workflows, seed=1)
        events = c.parse_lines(lines)
        if "1" in args.rows:
            new, raw["row1"] = row_parsed(plan, events)
            rows += new
        del events  # row 2 starts from the raw messages alone
        gc.collect()
        if "2" in args.rows:
            new, raw["row2"] = row_json(plan, lines)
            rows += new
        del lines
        gc.collect()
    if "3" in args.rows:
        new, raw["row3"] = row_rss(plan)
        rows += new
    if "4" in args.rows:
        new, raw["row4"] = row_quantiles(plan)
        rows += new
    raw["seconds"] = time.perf_counter() - began
    raw["load_average_end"] = c.machine_info()["load_average"]

    headers = ["#", "measure", "ours (median)", "baseline (median)", "ours vs base", "target"]
    headers.append("met")
    keys = ["row", "measure", "ours", "baseline", "ratio", "target", "met"]
    print(c.markdown_table(headers, [[r[k] for k in keys] for r in rows]))
    print()
    cpu_rows = []
    if "row1" in raw:
        r1 = raw["row1"]["cpu_rates"]
        cpu_rows.append(
            ["1", "parsed -> state", c.fmt_rate(r1["ours"]), c.fmt_rate(r1["baseline"])]
        )
        cpu_rows.append(
            ["1", "steady state", c.fmt_rate(r1["ours_steady"]), c.fmt_rate(r1["baseline_all"])]
        )
    if "row2" in raw:
        r2 = raw["row2"]["cpu_rates"]
        for name, key in (("raw JSON -> state", "state"), ("validation alone", "validate")):
            cpu_rows.append(
                ["2", name, c.fmt_rate(r2[f"ours_{key}"]), c.fmt_rate(r2[f"baseline_{key}"])]
            )
        cpu_rows.append(["2", "json.loads alone", c.fmt_rate(r2["json_loads"]), ""])
    if cpu_rows:
        print("Same timings by process CPU time (less sensitive to a shared machine):")
        print(c.markdown_table(["#", "measure", "ours", "baseline"], cpu_rows))
        print()
    mode = "quick" if args.quick else "full"
    print(f"{mode} run, {plan.repeats} repeats per timing, {raw['seconds']:.0f} s total")
    print(f"code: commit {code['commit']}, uncommitted: {code['uncommitted'] or 'none'}")
    print(f"load average at start {info['load_average']}, at end {raw['load_average_end']}")
    if "row1" in raw:
        print(f"row 1 results: ours and baseline {raw['row1']['agreement']}")
    if "row3" in raw:
        est = raw["row3"]
        print(
            "row 3 baseline at the large N: parsed events cost "
            f"{est['baseline_parsed_mib_per_million_events']:.0f} MiB per million (measured at "
            f"{plan.rss_sizes[0]:,}), extrapolated linearly to {plan.rss_sizes[1]:,}"
        )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
        c.log(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the poison-proofing costs: checked state decoding, finite metrics, the size budget.

    python benchmarks/hardening_cost.py                      # baseline: commit b1a547d
    python benchmarks/hardening_cost.py --baseline <commit> --rounds 5

Side by side in one run, this tree against ``--baseline`` (its models/ and reducer/ extracted
with ``git archive`` to a temporary directory), each measured in a fresh child process, children
alternating (ours, baseline, ours, ...) so a shared machine's load hits both alike:

  - ``to_bytes`` and ``from_bytes`` of a tick's delta (300 events), an hour (20,000 events) and
    a flooded hour (1,000 names of 256 characters in every breakdown, 7,000 workflow ids);
  - ``to_metrics`` + ``ModelEventMetricsRecorded.from_state`` of the hour;
  - peak traced memory (tracemalloc) decoding a 423-byte body that shifts a sum by 2**31.

In this process only (the baseline has no budget): ``fit_to_budget`` on the events of 300 and
20,000 events (the check every publish pays: one JSON encoding) against ``build`` alone, and
``fit_to_budget`` on the flooded hour's 2 MB event at budgets of 1,000,000 and 100,000 bytes.

Timings are medians (milliseconds) of the rounds' medians of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # tests.datasets; a child finds the code under test first (PYTHONPATH)


def median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def flooded_events() -> list:
    from tests.datasets import completed, failed, stage, started

    def key(i: int, tag: str) -> str:
        return f"{tag}{i:04d}".ljust(256, "x")

    events = []
    for i in range(1000):
        events.append(completed(primary_model=key(i, "m"), node_type=key(i, "n")))
        events.append(stage(stage_name=key(i, "s")))
        events.append(failed(error_code=key(i, "e"), failed_stage=key(i, "f")))
    return events + [started() for _ in range(4000)]


def child(repeats: int) -> dict[str, float]:
    """Measured in a fresh process whose PYTHONPATH picks the code under test."""
    import contextlib
    import tracemalloc
    import zlib

    from models.metrics import ModelEventMetricsRecorded
    from reducer import AggregationState
    from reducer.codec import MAGIC, VERSION
    from tests.datasets import mixed_events

    states = {
        "delta": AggregationState().add_batch(mixed_events(300, seed=1)),
        "hour": AggregationState().add_batch(mixed_events(20_000, seed=2)),
        "flood": AggregationState().add_batch(flooded_events()),
    }
    out: dict[str, float] = {}
    for name, state in states.items():
        data = state.to_bytes()
        out[f"to_bytes {name}"] = median_ms(state.to_bytes, repeats)
        out[f"from_bytes {name}"] = median_ms(
            lambda data=data: AggregationState.from_bytes(data), repeats
        )
    hour = states["hour"]
    out["to_metrics + from_state, hour"] = median_ms(
        lambda: ModelEventMetricsRecorded.from_state(
            hour.to_metrics(), correlation_id=uuid.UUID(int=1)
        ),
        repeats,
    )
    body = AggregationState().to_obj()
    body["means"]["durations"] = [["1", 2**31], 1]
    payload = zlib.compress(json.dumps(body).encode(), 1)
    data = MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload
    tracemalloc.start()
    with contextlib.suppress(ValueError):
        AggregationState.from_bytes(data)
    out["peak MiB, 423-byte body shifting a sum by 2**31"] = (
        tracemalloc.get_traced_memory()[1] / 2**20
    )
    tracemalloc.stop()
    return out


def run_child(code: Path, repeats: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{REPO}")
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--repeats", str(repeats)],
        env=env,
        cwd=code,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def budget_rows(repeats: int) -> list[tuple[str, float]]:
    from models.metrics import ModelEventMetricsRecorded, ModelMetricsState
    from reducer import AggregationState
    from reducer.budget import event_size, fit_to_budget
    from tests.datasets import mixed_events

    def build(metrics: ModelMetricsState) -> ModelEventMetricsRecorded:
        return ModelEventMetricsRecorded.from_state(metrics, correlation_id=uuid.UUID(int=1))

    rows = []
    for name, events in (("tick", 300), ("hour", 20_000)):
        state = AggregationState().add_batch(mixed_events(events, seed=2))
        metrics = state.to_metrics()
        size = event_size(build(metrics))
        rows.append(
            (f"build, {name} event ({size} B)", median_ms(lambda m=metrics: build(m), repeats))
        )
        rows.append(
            (
                "fit_to_budget, same event (fits)",
                median_ms(
                    lambda s=state, m=metrics: fit_to_budget(s, m, build, 1_000_000), repeats
                ),
            )
        )
    flood = AggregationState().add_batch(flooded_events())
    flood_metrics = flood.to_metrics()
    full = event_size(build(flood_metrics))
    for budget in (1_000_000, 100_000):
        rows.append(
            (
                f"fit_to_budget, flooded event {full} B -> {budget}",
                median_ms(lambda b=budget: fit_to_budget(flood, flood_metrics, build, b), 3),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="b1a547d")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.repeats)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline, "models", "reducer"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        ours: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for _ in range(args.rounds):
            ours.append(run_child(REPO, args.repeats))
            theirs.append(run_child(Path(tmp), args.repeats))
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{'(ms unless stated)':52} {'this tree':>10} {args.baseline:>10}")
    for key in ours[0]:
        mine = statistics.median(r[key] for r in ours)
        base = statistics.median(r[key] for r in theirs)
        print(f"{key:52} {mine:10.3f} {base:10.3f}")
    for key, value in budget_rows(args.repeats):
        print(f"{key:52} {value:10.3f} {'-':>10}")


if __name__ == "__main__":
    main()

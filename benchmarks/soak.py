"""Soak: a paced live stream for M minutes, a window actor killed midway, then exactness checked.

    python benchmarks/soak.py --minutes 2 --rate 500             # a few minutes
    python benchmarks/soak.py --minutes 10 --rate 1000 --kill-at 0.5

An embedded broker and a local 2-CPU Ray, ``Pipeline(settings).start()`` with the production
defaults (tick 5 s, a checkpoint every 30 s), and a thread producing a live simulated fleet
(workflows start at the wall clock) at ``--rate`` events/s. The main loop plays ``codegen-metrics
run``: ``pipeline.supervise()`` every second. At ``--kill-at`` of the run window-0 is killed
(``ray.kill``, no restart), and supervise() rebuilds the graph from the latest checkpoint.

At the end the producer stops, the pipeline drains and stops, and the latest revision of every
hourly window on the target topic is compared field by field with ``MetricsAggregator`` over the
events produced: the exact answer, the baseline of this script. RSS of every process (summed by
title, as actors are replaced on a rebuild) is sampled every ``--sample-seconds``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import common as c

from actors import kafka
from actors.fleet import produce_events
from cli.simulator import simulate_fleet
from models import EnumMetricsWindow, ModelEventMetricsRecorded, decode_one
from models.metrics import MetricsBody
from models.settings import KafkaSettings
from reducer import MetricsAggregator, window_id

HOURLY = EnumMetricsWindow.HOURLY
COMPARED = set(MetricsBody.model_fields) - {"events_invalid", "late_events"}
"""As tests/integration/test_pipeline.py compares: late_events depends on arrival order."""
EVENTS_PER_WORKFLOW = 9.7  # the simulator's average: keeps event time at the wall clock's pace


class Producer(threading.Thread):
    """A live fleet at ``rate`` events/s until ``halt()``; keeps what it produced."""

    def __init__(self, settings: KafkaSettings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.events: list[dict[str, Any]] = []
        self.produced: int | None = None
        self.stop = threading.Event()

    def _fleet(self) -> Iterator[dict[str, Any]]:
        per_second = self.rate / EVENTS_PER_WORKFLOW
        start = datetime.now(UTC)
        for event in simulate_fleet(10**9, seed=3, start=start, workflows_per_second=per_second):
            self.events.append(event)
            yield event

    def run(self) -> None:
        self.produced = produce_events(self.settings, self._fleet(), rate=self.rate, stop=self.stop)

    def halt(self) -> list[dict[str, Any]]:
        self.stop.set()
        self.join(timeout=120)
        if self.produced is None:
            raise RuntimeError("the producer did not finish")
        return self.events[: self.produced]  # the last one drawn may not have been sent


def counts(pipeline: Any) -> tuple[int, int]:
    """(events applied, late + rejected) over the actors that answer."""
    stats = pipeline.stats()
    windows = [w for w in stats.windows if w is not None]
    late = sum(w.late_events for w in windows) + stats.ingest_total("events_rejected")
    return sum(w.events_applied for w in windows), late


def latest_hourly(ks: KafkaSettings) -> dict[str, dict[str, Any]]:
    """The highest revision of every hourly window on the target topic."""
    latest: dict[str, dict[str, Any]] = {}

    def keep(message: Any) -> None:
        payload = json.loads(message.value())
        old = latest.get(payload["window_id"])
        if payload["aggregation_type"] == HOURLY and (
            old is None or payload["revision"] > old["revision"]
        ):
            latest[payload["window_id"]] = payload

    if not kafka.read_to_end(ks, ks.target_topic, keep, timeout=120):
        raise TimeoutError("could not read the target topic to its end")
    return latest


def exactness(
    events: list[dict[str, Any]], published: dict[str, dict[str, Any]]
) -> tuple[int, list[str]]:
    """Hourly windows expected or published, and one line per window whose published metrics
    differ from the exact answer (or are missing)."""
    parsed = [decode_one(json.dumps(e)) for e in events]
    expected = {
        window_id(HOURLY, m.window_start): m.model_dump(mode="json", include=COMPARED)
        for m in MetricsAggregator.aggregate_windows(parsed, HOURLY)
    }
    problems = [f"{w}: never published" for w in sorted(set(expected) - set(published))]
    for key, payload in sorted(published.items()):
        got = ModelEventMetricsRecorded.model_validate(payload).model_dump(
            mode="json", include=COMPARED
        )
        differ = sorted(f for f in COMPARED if got[f] != expected.get(key, {}).get(f))
        if differ:
            problems.append(f"{key}: {', '.join(differ[:6])} differ")
    return len(set(expected) | set(published)), problems


def rss_by_title() -> dict[str, float]:
    summed: dict[str, float] = defaultdict(float)
    for title, _pid, rss, _peak in c.tree_memory():
        summed[title] += rss
    return summed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s produced")
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the run; 0: none")
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    args = parser.parse_args()
    from actors.pipeline import Pipeline

    header, seconds = c.machine(), args.minutes * 60
    samples: list[tuple[float, int, dict[str, float]]] = []
    notes: list[str] = []
    with c.local_cluster() as bootstrap:
        settings = c.pipeline_settings(bootstrap)
        ks = settings.kafka
        kafka.ensure_topics(ks, ks.input_topics)
        pipeline = Pipeline(settings).start()
        producer = Producer(ks, args.rate)
        producer.start()
        began, killed, next_sample = time.time(), 0.0, 0.0
        while (elapsed := time.time() - began) < seconds:
            done = pipeline.supervise()
            if done:
                after = f" ({time.time() - killed:.1f} s after the kill)" if killed else ""
                notes.append(f"{elapsed:.0f} s: {done}{after}")
                c.log(notes[-1])
            if args.kill_at and not killed and elapsed >= args.kill_at * seconds:
                import ray

                ray.kill(pipeline.windows[0], no_restart=True)
                killed = time.time()
                notes.append(f"{elapsed:.0f} s: killed window-0")
                c.log(notes[-1])
            if elapsed >= next_sample:
                samples.append((elapsed, counts(pipeline)[0], rss_by_title()))
                next_sample += args.sample_seconds
            time.sleep(1.0)
        events = producer.halt()
        c.log(f"produced {len(events):,}; draining")
        deadline = time.time() + 300
        while sum(counts(pipeline)) < len(events) and time.time() < deadline:
            pipeline.supervise()
            time.sleep(1.0)
        applied, late = counts(pipeline)
        samples.append((time.time() - began, applied, rss_by_title()))
        final = pipeline.stop()
        published = latest_hourly(ks)
        shutil.rmtree(settings.pipeline.storage_path, ignore_errors=True)

    windows, problems = exactness(events, published)
    coordinator, executor = final.coordinator, final.intent_executor
    print(f"{args.minutes:g} minutes at {args.rate:,.0f} events/s; " + "; ".join(notes) + "\n")
    rows = [
        ("events applied (+ late, rejected)", f"{applied:,} (+ {late:,})", f"{len(events):,}"),
        (
            "hourly windows equal to the exact answer",
            f"{windows - len(problems)} of {windows}",
            f"{windows}",
        ),
        ("metrics updates published, whole run", f"{executor.published if executor else '?'}", ""),
        (
            "coordinator since its last start: intents / checkpoints",
            f"{coordinator.intents_published} / {coordinator.checkpoints}" if coordinator else "?",
            "",
        ),
    ]
    print(c.table(["measure", "pipeline", "produced / exact"], rows))
    for problem in problems:
        print(f"  {problem}")
    titles = sorted({t for _, _, rss in samples for t in rss if rss[t] > 20})
    print("\nRSS over time, MiB (summed by process title):\n")
    print(
        c.table(
            ["s", "applied", *titles],
            [
                [f"{t:.0f}", f"{n:,}", *(f"{rss.get(title, 0):.0f}" for title in titles)]
                for t, n, rss in samples
            ],
        )
    )
    print(f"\n{header}")
    return 1 if problems or applied != len(events) else 0


if __name__ == "__main__":
    sys.exit(main())

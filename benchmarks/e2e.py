"""End to end: the whole pipeline on a backlog, beside a one-process floor consumer, in one run.

    python benchmarks/e2e.py                      # 200,000 events, a few minutes
    python benchmarks/e2e.py --events 1000000 --window-actors 2 --batch-size 1000

An embedded Tansu broker and a local 2-CPU Ray start (as the integration tests start them), and
N events of the simulated fleet (cli/simulator.py) are produced into the input topics
(actors/fleet.py) before anything consumes. Then, on that same backlog:

  floor     one fresh process: a confluent-kafka consumer assigned every input partition,
            ``json.loads`` per message, counts and sums in dicts. What one Python process does
            with no validation, no windows, no exactly-once and no Ray: the bar to compare to.
  pipeline  ``Pipeline(settings).start()`` with the production defaults except the tick (1 s,
            so the end is not rounded up to 5 s) and the batch size (1000).

Events/s runs from the first event applied to the final output covering the backlog: for the
pipeline, the target-topic message (its Kafka CreateTime) after which the latest revisions of
the hourly windows add up to every event applied; for the floor, its last event. Start-up runs
from process start (``Pipeline.start()`` spawning the actors; the floor's ``Popen``) to the first
event applied. Peak RSS is each process's VmHWM, read before stopping.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from itertools import islice
from typing import Any

import common as c

from actors import kafka
from actors.fleet import produce_events
from cli.simulator import simulate_fleet
from models.settings import KafkaSettings, Settings
from reducer.nodes.stats import PipelineStats

POLL_S = 0.02
"""Stats poll while waiting for the first event (its time is known to this much)."""


def floor_child(kafka_json: str, n: int, spawned: float) -> dict[str, Any]:
    """The floor consumer (runs in its own process): read ``n`` messages, json.loads, dicts."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    ks = KafkaSettings.model_validate_json(kafka_json)
    consumer = kafka.make_consumer(ks, group_id=f"{ks.group_id}-floor")
    metadata = consumer.list_topics(timeout=10).topics
    consumer.assign(
        [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in ks.input_topics
            for p in metadata[topic].partitions
        ]
    )
    by_type: Counter[str] = Counter()
    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    workflows: set[str] = set()
    seen, first = 0, 0.0
    while seen < n:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error() is not None:
                continue
            if not seen:
                first = time.time()
            event = json.loads(message.value())
            kind = event["event_type"]
            by_type[kind] += 1
            workflows.add(event["workflow_id"])
            hour = hours[event["timestamp"][:13]]
            hour["events"] += 1
            if kind == "CODEGEN_COMPLETED":
                hour["tokens"] += event["total_tokens"]
                hour["cost"] += event["total_cost_usd"]
                hour["duration"] += event["total_duration_seconds"]
            seen += 1
    output = json.dumps({"types": by_type, "hours": hours, "workflows": len(workflows)})
    done = time.time()
    consumer.close()
    return {
        "startup_s": first - spawned,
        "rate": c.rate(n, done - first),
        "peak_mib": c.peak_rss_mib(),
        "output_bytes": len(output),
    }


def accounted(stats: PipelineStats) -> tuple[int, int]:
    """(events applied, events the pipeline is done with: applied, late, duplicate, rejected)."""
    windows = [w for w in stats.windows if w is not None]
    applied = sum(w.events_applied for w in windows)
    others = sum(w.late_events + w.duplicates_dropped for w in windows)
    return applied, applied + others + stats.ingest_total("events_rejected")


def covering_time(ks: KafkaSettings, published: int, applied: int) -> float | None:
    """CreateTime of the first target message after which the latest revisions of the hourly
    windows add up to ``applied`` events."""
    messages = kafka.consume_all(ks, ks.target_topic, published, timeout=120)
    latest: dict[str, tuple[int, int]] = {}
    total = 0
    for message in sorted(messages, key=lambda m: (m.timestamp()[1], m.offset())):
        payload = json.loads(message.value())
        if payload["aggregation_type"] != "hourly":
            continue
        old = latest.get(payload["window_id"], (-1, 0))
        if payload["revision"] > old[0]:
            total += payload["events_processed"] - old[1]
            latest[payload["window_id"]] = (payload["revision"], payload["events_processed"])
        if total == applied:
            return message.timestamp()[1] / 1000
    return None


def run_pipeline(settings: Settings, n: int) -> dict[str, Any]:
    from actors.pipeline import Pipeline

    began = time.time()
    pipeline = Pipeline(settings).start()
    try:
        started = time.time()
        while accounted(stats := pipeline.stats())[0] == 0:
            if time.time() - began > 300:
                raise TimeoutError("no event applied within 300 s")
            time.sleep(POLL_S)
        first = time.time()
        c.log(f"pipeline: first event applied {first - began:.1f} s after start()")
        deadline = time.time() + max(600, n / 500)
        while (done := accounted(stats := pipeline.stats()))[1] < n:
            if time.time() > deadline:
                raise TimeoutError(f"only {done[1]:,} of {n:,} events accounted for")
            time.sleep(0.25)
        ticks = stats.coordinator.ticks if stats.coordinator else 0
        while True:  # a tick after the last apply, and every intent it made published
            stats = pipeline.stats()
            coordinator, executor = stats.coordinator, stats.intent_executor
            ticked = coordinator is not None and coordinator.ticks >= ticks + 2
            if ticked and executor and executor.published >= coordinator.intents_published:
                break
            time.sleep(0.25)
        applied = done[0]
        end = covering_time(settings.kafka, executor.published, applied)
        memory = c.tree_memory()
    finally:
        pipeline.stop()
    windows = [w for w in stats.windows if w is not None]
    return {
        "startup_s": first - began,
        "start_call_s": started - began,
        "rate": c.rate(n, end - first) if end else float("nan"),
        "applied": applied,
        "late": sum(w.late_events for w in windows),
        "rejected": stats.ingest_total("events_rejected"),
        "memory": memory,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--window-actors", type=int, default=2)
    parser.add_argument("--ingest-actors", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--tick-seconds", type=float, default=1.0)
    parser.add_argument("--floor-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        kafka_json, n, spawned = args.floor_child
        print(json.dumps(floor_child(kafka_json, int(n), float(spawned))))
        return 0

    n = args.events
    header = c.machine()
    with c.local_cluster() as bootstrap:
        settings = c.pipeline_settings(
            bootstrap,
            window_actors=args.window_actors,
            ingest_actors=args.ingest_actors,
            batch_size=args.batch_size,
            tick_seconds=args.tick_seconds,
        )
        ks = settings.kafka
        kafka.ensure_topics(ks, ks.input_topics)
        began = time.perf_counter()
        produce_events(ks, islice(simulate_fleet(10**9, seed=1), n))
        c.log(f"backlog: {n:,} events produced in {time.perf_counter() - began:.0f} s")
        floor = c.run_child(
            [__file__, "--floor-child", ks.model_dump_json(), str(n), str(time.time())]
        )
        c.log(f"floor: {c.ev_s(floor['rate'])}")
        ours = run_pipeline(settings, n)
        shutil.rmtree(settings.pipeline.storage_path, ignore_errors=True)

    ray_peak = sum(row[3] for row in ours["memory"] if row[0] not in ("this driver", "tansu"))
    p = settings.pipeline
    print(f"{n:,} events; {p.ingest_actors} ingest, {p.window_actors} window actors, batch "
          f"{p.batch_size}, tick {p.tick_seconds:g} s; applied {ours['applied']:,}, late "
          f"{ours['late']:,}, rejected {ours['rejected']:,}\n")  # fmt: skip
    rows = [
        ("events/s, first event applied -> final output", c.ev_s(ours["rate"]),
         c.ev_s(floor["rate"]), c.ratio(ours["rate"] / floor["rate"])),
        ("start-up, process start -> first event applied",
         f"{ours['startup_s']:.1f} s (start() {ours['start_call_s']:.1f} s)",
         f"{floor['startup_s']:.1f} s", c.ratio(ours["startup_s"] / floor["startup_s"])),
        ("peak RSS, summed over the Ray processes", f"{ray_peak:,.0f} MiB",
         f"{floor['peak_mib']:,.0f} MiB", c.ratio(ray_peak / floor["peak_mib"])),
    ]  # fmt: skip
    print(c.table(["measure", "pipeline", "floor", "pipeline / floor"], rows))
    print("\nPeak RSS per process of the pipeline's tree (VmHWM, before stopping):\n")
    memory = [(title, pid, f"{peak:,.0f}") for title, pid, _, peak in ours["memory"]]
    print(c.table(["process", "pid", "peak MiB"], memory))
    print(f"\n{header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end: the whole pipeline on a backlog, beside a one-process floor consumer, in one run.

    python benchmarks/e2e.py                      # 200,000 events, 3 runs, about 2 minutes
    python benchmarks/e2e.py --events 1000000 --runs 1 --window-actors 4 --batch-size 100

An embedded Tansu broker and a local 2-CPU Ray start (as the integration tests start them), and
N events of the simulated fleet (cli/simulator.py) are produced into the input topics
(actors/fleet.py) before anything consumes. Then, on that same backlog:

  floor     one fresh process: a confluent-kafka consumer assigned every input partition,
            ``json.loads`` per message, counts and sums in dicts. What one Python process does
            with no validation, no windows, no exactly-once and no Ray: the bar to compare to.
  pipeline  ``Pipeline(settings).start()`` with the production defaults (tick 5 s: the
            coordinator publishes as soon as the ingest actor has read the backlog).

Each run produces the backlog into fresh topics and runs the floor, then the pipeline, on it;
the numbers are medians over ``--runs``. Events/s runs from the first event applied to the final
output covering the backlog: for the pipeline, the target-topic message (its Kafka CreateTime)
after which the latest revisions of the hourly windows add up to every event applied; for the
floor, its last event. Start-up runs from process start (``Pipeline.start()`` spawning the
actors; the floor's ``Popen``) to the first event applied. Peak RSS is each process's VmHWM,
read before stopping.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import Counter, defaultdict
from itertools import islice
from typing import Any

import common as c

from actors import kafka
from actors.fleet import produce_events
from cli.simulator import simulate_fleet
from models.settings import KafkaSettings, PipelineSettings, Settings
from reducer.nodes.stats import PipelineStats

OUR_ACTORS = (
    "ray::KafkaIngestActor",
    "ray::WindowActor",
    "ray::CoordinatorActor",
    "ray::IntentExecutorActor",
)
"""Process titles of the pipeline's actors; every other Ray process is Ray's own floor."""
POLL_S = 0.02
"""Stats poll while waiting for the first event (its time is known to this much)."""


def floor_child(kafka_json: str, n: int, spawned: float, batch: int) -> dict[str, Any]:
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
    seen, first, cpu = 0, 0.0, 0.0
    while seen < n:
        for message in consumer.consume(num_messages=batch, timeout=1.0):
            if message.error() is not None:
                continue
            if not seen:
                first, cpu = time.time(), c.cpu_seconds(os.getpid())
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
    cpu = c.cpu_seconds(os.getpid()) - cpu
    consumer.close()
    return {
        "startup_s": first - spawned,
        "rate": c.rate(n, done - first),
        "peak_mib": c.peak_rss_mib(),
        "cpu_us": cpu / n * 1e6,
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
        first, cpu = time.time(), c.tree_cpu()
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
        used = {pid: seconds - cpu.get(pid, 0.0) for pid, seconds in c.tree_cpu().items()}
        end = covering_time(settings.kafka, executor.published, applied)
        memory = [(*m, used.get(m[1], 0.0)) for m in c.tree_memory()]
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
    defaults = PipelineSettings()
    parser.add_argument("--window-actors", type=int, default=defaults.window_actors)
    parser.add_argument("--ingest-actors", type=int, default=defaults.ingest_actors)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--tick-seconds", type=float, default=defaults.tick_seconds)
    parser.add_argument("--runs", type=int, default=3, help="floor + pipeline runs, alternating")
    parser.add_argument("--floor-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        kafka_json, n, spawned, batch = args.floor_child
        print(json.dumps(floor_child(kafka_json, int(n), float(spawned), int(batch))))
        return 0

    n, header = args.events, c.machine()
    runs: dict[str, list[dict[str, Any]]] = {"pipeline": [], "floor": []}
    with c.local_cluster() as bootstrap:
        for run in range(args.runs):  # fresh topics each run: the target topic starts empty
            settings = c.pipeline_settings(
                bootstrap,
                window_actors=args.window_actors,
                ingest_actors=args.ingest_actors,
                batch_size=args.batch_size,
                tick_seconds=args.tick_seconds,
            )
            ks = settings.kafka
            kafka.ensure_topics(ks, ks.input_topics)
            produce_events(ks, islice(simulate_fleet(10**9, seed=1), n))
            spawned = str(time.time())
            floor_args = [__file__, "--floor-child", ks.model_dump_json(), str(n), spawned,
                          str(args.batch_size)]  # fmt: skip
            runs["floor"].append(c.run_child(floor_args))
            runs["pipeline"].append(run_pipeline(settings, n))
            shutil.rmtree(settings.pipeline.storage_path, ignore_errors=True)
            rates = {k: c.ev_s(v[-1]["rate"]) for k, v in runs.items()}
            c.log(f"run {run + 1} of {args.runs}: {rates}")

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    def cell(side: str, key: str, unit: str, digits: int) -> str:
        values = [r[key] for r in runs[side]]
        spread = (
            f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})" if len(values) > 1 else ""
        )
        return f"{statistics.median(values):,.{digits}f}{unit}{spread}"

    for r in runs["pipeline"]:
        ray_processes = [m for m in r["memory"] if m[0] not in ("this driver", "tansu")]
        r["peak_mib"] = sum(m[3] for m in ray_processes)
        r["ours_mib"] = sum(m[3] for m in ray_processes if m[0] in OUR_ACTORS)
        r["cpu_us"] = sum(m[4] for m in ray_processes) / n * 1e6
    for r in runs["floor"]:
        r["ours_mib"] = r["peak_mib"]
    last, p = runs["pipeline"][-1], settings.pipeline
    print(f"{n:,} events, {args.runs} runs (median and range); {p.ingest_actors} ingest, "
          f"{p.window_actors} window actors, batch {p.batch_size}, tick {p.tick_seconds:g} s; "
          f"last run: applied {last['applied']:,}, late {last['late']:,}, rejected "
          f"{last['rejected']:,}\n")  # fmt: skip
    rows = []
    for label, key, unit in (
        ("events/s, first event applied -> final output", "rate", " ev/s"),
        ("start-up, process start -> first event applied", "startup_s", " s"),
        ("peak RSS, summed over the Ray processes", "peak_mib", " MiB"),
        ("peak RSS, of which our actors (floor: its process)", "ours_mib", " MiB"),
        ("CPU per event: Ray processes; floor process", "cpu_us", " us"),
    ):
        digits, ratio = int(unit in (" s", " us")), median("pipeline", key) / median("floor", key)
        rows.append((label, cell("pipeline", key, unit, digits), cell("floor", key, unit, digits),
                     c.ratio(ratio)))  # fmt: skip
    print(c.table(["measure", "pipeline", "floor", "pipeline / floor"], rows))
    print(f"\nPipeline.start() itself: {median('pipeline', 'start_call_s'):.1f} s. Per process of "
          "the last run: peak RSS (VmHWM, before stopping), CPU from the first event applied to "
          "the final output:\n")  # fmt: skip
    memory = [
        (title, pid, f"{peak:,.0f}", f"{cpu:.2f}") for title, pid, _, peak, cpu in last["memory"]
    ]
    print(c.table(["process", "pid", "peak MiB", "CPU s"], memory))
    print(f"\n{header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

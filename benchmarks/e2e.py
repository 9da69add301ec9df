"""End-to-end benchmark of the streaming pipeline (issue 3): embedded Tansu broker + local Ray.

    python benchmarks/e2e.py                      # 1,000,000 events, 2 window, 1 ingest, batch 1000
    python benchmarks/e2e.py --events 200000 --window-actors 4 --batch-size 100
    python benchmarks/e2e.py --matrix             # five shapes at 200,000 events each (scaling)
    python benchmarks/e2e.py --profile            # also py-spy ingest-0, window-0, coordinator

Per configuration (window actors J, ingest actors I, batch size B):
  1. backlog: N simulated events are produced into the four input topics BEFORE the pipeline
     starts (a pre-serialised pool cycled with fresh workflow/event ids and shifted timestamps).
  2. throughput: the pipeline starts (tick 1 s); sustained events/s is N over the time from the
     first consume (stats polled every 20 ms until then) to the target-topic publish after which
     the hourly windows' ``events_processed`` add up to every applied event (Kafka CreateTime of
     the intent executor's write, read back from the target topic).
  3. update delay: with the backlog drained, a paced stream (default 5,000 events/s) is produced;
     every CODEGEN_STARTED in it is a probe. Delay = CreateTime of the first target update of the
     probe's hourly window whose ``workflow_metrics`` holds the probe's workflow, minus the time
     the probe was handed to the producer (so it includes the Kafka hop and the consumer's poll;
     an upper bound of "applied -> published"). The stream's event time runs fast (0.2 workflows
     per event-time second) so an hourly window holds < 1,000 workflows and every workflow id is
     kept in ``workflow_metrics`` (bottom-k of 1,000): the identification is exact.
  4. memory: VmRSS/VmHWM and CPU seconds of every actor's worker process (pids from the GCS actor
     table), of the broker and of the rest of the Ray session, sampled every second.
Before the main run: the single-process ceiling (decode_batch + AggregationState.add_batch on
100,000 of the same messages), per-stage costs per event, and Ray actor round trips of a batch
as pydantic events vs raw JSON bytes.

Before each measurement it waits (up to 15 min) for the 1-minute load average to fall below 1.5
and reports the load it measured under. Tables go to stdout, progress to stderr; ``--json PATH``
writes every raw number. Ctrl-C stops everything (actors, Ray, broker, py-spy).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import common as c
import ray

from actors import kafka
from actors.broker import EmbeddedBroker
from actors.names import NAMESPACE
from actors.pipeline import Pipeline
from actors.ray_env import apply_ray_environment
from cli.simulator import simulate_fleet
from models.decode import decode_batch
from models.metrics import EnumMetricsWindow
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings, Settings
from reducer import AggregationState, nearest_rank, window_id
from reducer.groupings import key_hash
from reducer.nodes.messages import SourceRange, WindowBatch
from reducer.nodes.routing import owner, route_messages
from reducer.panes import PaneStore
from reducer.windows import hour_start

# Before Ray starts: the pipeline's own Ray environment (actors/ray_env.py).
apply_ray_environment()

TARGET_RATE = 50_000  # events/s sustained, on 2 cores
TARGET_DELAY_TICKS = 2.0  # p99
MATRIX = ((2, 1, 100), (2, 1, 1000), (1, 1, 1000), (4, 1, 1000), (2, 2, 1000))
BACKLOG_START = datetime(2026, 11, 2, tzinfo=UTC)
EVENTS_PER_WORKFLOW = 9.7  # the simulator's average
CEILING_EVENTS = 100_000


# -- the backlog: a pre-serialised pool, cycled ----------------------------------------------------


@dataclass
class Pool:
    """Pre-serialised simulated events, and what changes when the pool is cycled."""

    values: list[bytes]
    event_types: list[str]
    workflow_ids: list[bytes]  # 36-character text, as in the JSON
    event_ids: list[bytes]
    stamps: list[datetime]
    stamp_texts: list[bytes]
    span_s: int  # event-time length of the pool; cycle k is shifted by k * span_s
    seconds: float  # time taken to simulate and serialise it


def make_pool(events: int, seed: int = 1) -> Pool:
    began = time.perf_counter()
    dicts = list(
        simulate_fleet(max(1, math.ceil(events / EVENTS_PER_WORKFLOW)), seed, start=BACKLOG_START)
    )
    stamps = [datetime.fromisoformat(d["timestamp"]) for d in dicts]
    span = math.ceil((max(stamps) - min(stamps)).total_seconds()) + 120
    return Pool(
        values=[json.dumps(d, separators=(",", ":")).encode() for d in dicts],
        event_types=[d["event_type"] for d in dicts],
        workflow_ids=[d["workflow_id"].encode() for d in dicts],
        event_ids=[d["event_id"].encode() for d in dicts],
        stamps=stamps,
        stamp_texts=[d["timestamp"].encode() for d in dicts],
        span_s=span,
        seconds=time.perf_counter() - began,
    )


_SALT = 0x9E3779B97F4A7C15F39CC0605CEDC835
_MASK = (1 << 128) - 1


def _xor_id(text: bytes, salt: int) -> bytes:
    return str(UUID(int=UUID(text.decode()).int ^ salt)).encode()


def cycle_pool(pool: Pool, n: int) -> Iterator[tuple[str, bytes, bytes]]:
    """(event_type, key, value) of ``n`` events: the pool, then copies with fresh workflow and
    event ids (XOR with a per-cycle salt) and timestamps shifted past the previous copy, so
    event time keeps growing and windows keep closing. Correlation ids repeat (unused here)."""
    made = 0
    size = len(pool.values)
    for cycle in count():
        salt = (cycle * _SALT) & _MASK
        shift = timedelta(seconds=pool.span_s * cycle)
        fresh = {w: _xor_id(w, salt) for w in dict.fromkeys(pool.workflow_ids)} if cycle else {}
        for i in range(size):
            if made == n:
                return
            made += 1
            value, wid = pool.values[i], pool.workflow_ids[i]
            if cycle:
                new_wid = fresh[wid]
                value = (
                    value.replace(wid, new_wid)
                    .replace(pool.event_ids[i], _xor_id(pool.event_ids[i], salt))
                    .replace(pool.stamp_texts[i], (pool.stamps[i] + shift).isoformat().encode())
                )
                wid = new_wid
            yield pool.event_types[i], wid, value


def produce(
    ks: KafkaSettings, messages: Iterable[tuple[str, bytes, bytes]], **overrides: Any
) -> int:
    """Produce (event_type, key, value) to each type's input topic as fast as possible."""
    producer = kafka.make_producer(ks, **{"linger.ms": 20, **overrides})
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    topics: dict[str, str] = {}
    sent = 0
    for event_type, key, value in messages:
        topic = topics.get(event_type) or topics.setdefault(
            event_type, ks.input_topic_for(event_type)
        )
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or errors:
        raise RuntimeError(f"backlog produce failed: {errors[:3]}")
    return sent


# -- per-stage costs in one process ----------------------------------------------------------------


def stage_costs(pool: Pool, batch_size: int, window_actors: int, repeats: int = 3) -> dict:
    """Microseconds per event of each step an event takes, in one process, same messages."""
    lines = pool.values[:CEILING_EVENTS]
    line_batches = c.batches(lines, batch_size)
    decoded = [decode_batch(list(b)).events for b in line_batches]
    n = len(lines)
    settings = ReducerSettings()
    fake_sources = [SourceRange("t", p, 0, 1) for p in range(16)]
    assigned = [("t", p) for p in range(16)]
    window_batches = [  # what an ingest actor sends now: raw messages
        [
            WindowBatch((0, i), [batch[k] for k in part], [0] * len(part), fake_sources, assigned)
            for part in route_messages(batch, window_actors)
        ]
        for i, batch in enumerate(line_batches)
    ]
    event_parts = [  # what it sent before: decoded events, by owner
        [
            [e for e in events if owner(e.workflow_id, window_actors) == j]
            for j in range(window_actors)
        ]
        for events in decoded
    ]
    pickled = [[pickle.dumps(wb, protocol=5) for wb in wbs] for wbs in window_batches]

    def ceiling() -> None:
        state = AggregationState(settings)
        for batch in line_batches:
            state.add_batch(decode_batch(list(batch)).events)

    def decode() -> None:
        for batch in line_batches:
            decode_batch(list(batch))

    def add_batch() -> None:
        state = AggregationState(settings)
        for events in decoded:
            state.add_batch(events)

    def pane_apply() -> None:  # what a window actor does per batch: group by hour, add_batch
        store = PaneStore(settings, tuple(EnumMetricsWindow))
        for events in decoded:
            store.apply(events, None)

    def routing() -> None:
        for batch in line_batches:
            route_messages(batch, window_actors)

    def pickle_events() -> None:  # the previous design: decoded events crossed the Ray boundary
        for parts in event_parts:
            for part in parts:
                pickle.loads(ray.cloudpickle.dumps(part, protocol=5))

    def pickle_batches() -> None:  # what Ray does to each apply() argument, both ends
        for wbs in window_batches:
            for wb in wbs:
                pickle.loads(ray.cloudpickle.dumps(wb, protocol=5))

    def pickle_loads() -> None:  # Ray deserialises with the C unpickler
        for ps in pickled:
            for data in ps:
                pickle.loads(data)

    fns = {
        "ceiling: decode_batch + add_batch": ceiling,
        "decode_batch": decode,
        "AggregationState.add_batch": add_batch,
        "PaneStore.apply (hour split + add_batch)": pane_apply,
        f"route raw messages to {window_actors} actors": routing,
        "Ray serialise+deserialise WindowBatch (raw bytes)": pickle_batches,
        "pickle loads WindowBatch (receiver side)": pickle_loads,
        "before: Ray serialise+deserialise pydantic events": pickle_events,
    }
    c.freeze_inputs()  # the inputs stay out of the collector's way, as in benchmarks/core.py
    timings = c.time_interleaved(fns, repeats)
    c.unfreeze_inputs()
    out = {
        name: {
            "us_per_event": t.median / n * 1e6,
            "events_per_s": c.rate(n, t.median),
            "cpu_events_per_s": c.rate(n, t.median_cpu),
            "wall": t.wall,
        }
        for name, t in timings.items()
    }
    out["_bytes_per_event"] = {
        "pickled WindowBatch": sum(len(p) for ps in pickled for p in ps) / n,
        "pickled events (before)": sum(
            len(pickle.dumps(part, protocol=5)) for parts in event_parts for part in parts
        )
        / n,
        "JSON": sum(len(v) for v in lines) / n,
    }
    out["_events"] = n
    out["_batch_size"] = batch_size
    return out


@ray.remote(num_cpus=0)
class _Sink:
    """Stands in for a window actor: receives a batch and does nothing (or only decodes)."""

    def take(self, events: list[Any]) -> int:
        return len(events)

    def take_raw(self, lines: list[bytes]) -> int:
        return len(lines)

    def take_raw_decode(self, lines: list[bytes]) -> int:
        return len(decode_batch(lines).events)


def ray_round_trips(pool: Pool, batch_size: int, in_flight: int = 4) -> dict[str, float]:
    """Events/s through one Ray actor call per batch (``in_flight`` outstanding, as the ingest
    actor does), for decoded pydantic events (the previous design) vs the raw JSON bytes."""
    lines = pool.values[: max(batch_size * 100, 100_000)]
    line_batches = [list(b) for b in c.batches(lines, batch_size)]
    event_batches = [decode_batch(b).events for b in line_batches]
    sink = _Sink.remote()
    # Warm up every method (the first decode imports models.decode in the worker).
    ray.get(
        [
            sink.take.remote(event_batches[0]),
            sink.take_raw.remote(line_batches[0]),
            sink.take_raw_decode.remote(line_batches[0]),
        ]
    )
    out: dict[str, float] = {}
    cases = (
        ("pydantic events -> actor (before)", sink.take, event_batches),
        ("raw JSON bytes -> actor", sink.take_raw, line_batches),
        ("raw JSON bytes -> actor decodes", sink.take_raw_decode, line_batches),
    )
    for name, method, batches in cases:
        began = time.perf_counter()
        pending: list[Any] = []
        total = 0
        for batch in batches:
            pending.append(method.remote(batch))
            if len(pending) >= in_flight:
                total += ray.get(pending.pop(0))
        total += sum(ray.get(pending))
        out[name] = c.rate(total, time.perf_counter() - began)
    ray.kill(sink)
    return out


# -- watching the actors: pids, RSS, CPU ---------------------------------------------------------


def actor_pids() -> dict[str, int]:
    """Name -> worker pid of every live named actor of our namespace."""
    try:  # the state API needs the dashboard; fall back to the GCS actor table
        from ray.util.state import list_actors

        rows = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
        return {r.name: int(r.pid) for r in rows if r.name and r.pid}
    except Exception:
        from ray._private import state as ray_state

        table = ray_state.actors()
        return {
            a["Name"]: int(a["Pid"])
            for a in table.values()
            if a.get("Name") and a.get("State") == "ALIVE" and a.get("Pid")
        }


class Sampler(threading.Thread):
    """Every second: VmRSS/VmHWM and CPU seconds of each actor, the broker and the Ray session."""

    def __init__(self, broker_pid: int | None, interval: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.broker_pid = broker_pid
        self.interval = interval
        self.samples: list[tuple[float, dict[str, tuple[float, float, float]]]] = []
        self.pids: dict[str, int] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def refresh_pids(self) -> None:
        pids = {name: pid for name, pid in actor_pids().items() if not name.startswith("_")}
        if self.broker_pid:
            pids["tansu broker"] = self.broker_pid
        pids["driver (this script)"] = os.getpid()
        with self._lock:
            self.pids = pids

    def sample(self) -> None:
        with self._lock:
            pids = dict(self.pids)
        known = set(pids.values())
        row = {}
        for name, pid in pids.items():
            rss, hwm = c.proc_memory_mib(pid)
            row[name] = (rss, hwm, c.proc_cpu_seconds(pid))
        rest_rss, rest_cpu = c.rest_usage(known)
        row["rest of Ray (raylet, gcs, ...)"] = (rest_rss, float("nan"), rest_cpu)
        self.samples.append((time.time(), row))

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # never kill the run over a sample
                c.log(f"sampler: {exc}")

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def at(self, t: float) -> dict[str, tuple[float, float, float]]:
        """The first sample at or after ``t`` (else the last)."""
        for ts, row in self.samples:
            if ts >= t:
                return row
        return self.samples[-1][1] if self.samples else {}

    def cpu_between(self, t0: float, t1: float) -> dict[str, float]:
        """Cores used per process between two times (CPU seconds / wall seconds)."""
        first = [s for s in self.samples if s[0] >= t0]
        last = [s for s in self.samples if s[0] <= t1]
        if not first or not last or last[-1][0] <= first[0][0]:
            return {}
        (ta, a), (tb, b) = first[0], last[-1]
        return {name: (b[name][2] - a[name][2]) / (tb - ta) for name in b if name in a}


# -- the pipeline run ------------------------------------------------------------------------------


@dataclass
class Shape:
    window_actors: int
    ingest_actors: int
    batch_size: int

    @property
    def label(self) -> str:
        return f"J={self.window_actors} I={self.ingest_actors} B={self.batch_size}"


@dataclass
class Poll:
    t: float
    messages_in: int
    applied: int
    late: int  # behind a closed hour (window actors)
    duplicates: int  # event ids already applied (window actors)
    rejected: int  # dead-lettered by the ingest actors (undecodable, future, oversized)
    ticks: int
    checkpoints: int
    intents: int
    published: int
    in_flight: int

    @property
    def accounted(self) -> int:
        """Events the pipeline is done with: applied, or counted as late/duplicate/rejected."""
        return self.applied + self.late + self.duplicates + self.rejected


def poll(pipeline: Pipeline) -> Poll:
    s = pipeline.stats()
    windows, ingests, coordinator = s["windows"], s["ingest"], s["coordinator"]
    return Poll(
        t=time.time(),
        messages_in=sum(i.get("messages_in", 0) for i in ingests),
        applied=sum(w.get("events_applied", 0) for w in windows),
        late=sum(w.get("late_events", 0) for w in windows),
        duplicates=sum(w.get("duplicates_dropped", 0) for w in windows),
        rejected=sum(i.get("events_rejected", 0) for i in ingests),
        ticks=coordinator.get("ticks", 0),
        checkpoints=coordinator.get("checkpoints", 0),
        intents=coordinator.get("intents_published", 0),
        published=s["intent_executor"].get("published", 0),
        in_flight=sum(i.get("batches_in_flight", 0) for i in ingests),
    )


def wait_settled(pipeline: Pipeline, total: int, timeline: list[Poll], deadline: float) -> Poll:
    """Poll every 0.5 s until every event is applied (or late), then until a coordinator tick
    has started after that and the intent executor has published everything it was sent."""
    while True:
        p = poll(pipeline)
        timeline.append(p)
        if p.accounted >= total:
            break
        if time.time() > deadline:
            raise TimeoutError(f"only {p.accounted:,} of {total:,} events accounted for")
        time.sleep(0.5)
    done_at = p
    while True:
        p = poll(pipeline)
        timeline.append(p)
        if p.ticks >= done_at.ticks + 2 and p.published >= p.intents:
            return p
        if time.time() > deadline:
            raise TimeoutError("no coordinator tick / intent publish after the last apply")
        time.sleep(0.25)


def read_target(
    ks: KafkaSettings, expected: int | None, topic: str = ""
) -> list[tuple[float, int, dict]]:
    """(CreateTime seconds, offset, payload) of every message on the target topic (or
    ``topic``), oldest first."""
    timeout = 120 if expected is not None else 5
    messages = kafka.consume_all(ks, topic or ks.target_topic, expected, timeout=timeout)
    out = []
    for m in messages:
        ts_type, ts_ms = m.timestamp()
        out.append(
            (ts_ms / 1000 if ts_type != 0 else float("nan"), m.offset(), json.loads(m.value()))
        )
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def covering_publish(
    target: list[tuple[float, int, dict]], expected: int, windows: set[str] | None = None
) -> float | None:
    """Time of the first target message after which the latest revision of every hourly window
    (optionally only ``windows``) holds ``expected`` events in total."""
    latest: dict[str, tuple[int, int]] = {}
    total = 0
    for ts, _offset, payload in target:
        if payload.get("aggregation_type") != "hourly":
            continue
        wid = payload["window_id"]
        if windows is not None and wid not in windows:
            continue
        old = latest.get(wid)
        if old is None or payload["revision"] > old[0]:
            total += payload["events_processed"] - (old[1] if old else 0)
            latest[wid] = (payload["revision"], payload["events_processed"])
        if total == expected:
            return ts
    return None


def rate_between(timeline: list[Poll], lo: float, hi: float, total: int) -> float | None:
    """Applied events/s between lo*total and hi*total applied (linear between polls)."""

    def when(level: float) -> float | None:
        for a, b in pairwise(timeline):
            if a.applied <= level <= b.applied and b.applied > a.applied:
                return a.t + (b.t - a.t) * (level - a.applied) / (b.applied - a.applied)
        return None

    t_lo, t_hi = when(lo * total), when(hi * total)
    if t_lo is None or t_hi is None or t_hi <= t_lo:
        return None
    return (hi - lo) * total / (t_hi - t_lo)


def probe_keys(dicts: list[dict], keep: int) -> dict[str, set[str]]:
    """Per hourly window id, the workflow ids its published ``workflow_metrics`` will keep:
    the ``keep`` smallest key hashes among all workflows with an event in that hour (the
    breakdown's bottom-k, reducer.groupings). A kept id is kept in every revision from the
    first one after its arrival, whatever the arrival order, so it identifies that revision."""
    by_window: dict[str, set[str]] = defaultdict(set)
    for d in dicts:
        hour = hour_start(datetime.fromisoformat(d["timestamp"]))
        by_window[window_id(EnumMetricsWindow.HOURLY, hour)].add(d["workflow_id"])
    return {w: set(sorted(ids, key=key_hash)[:keep]) for w, ids in by_window.items()}


def delay_phase(
    ks: KafkaSettings,
    pipeline: Pipeline,
    rate: float,
    seconds: float,
    tick: float,
    already: int,
    timeline: list[Poll],
) -> dict[str, Any]:
    """Paced live stream (event time = wall clock); probes are the CODEGEN_STARTED events of
    the workflows each hourly window's bottom-k keeps. See the module docstring."""
    workflows = max(1, int(rate * seconds / EVENTS_PER_WORKFLOW))
    per_second = rate / EVENTS_PER_WORKFLOW
    dicts = list(
        simulate_fleet(
            workflows,
            seed=4242,
            start=datetime.now(UTC) + timedelta(seconds=5),
            workflows_per_second=per_second,
        )
    )
    messages = [
        (ks.input_topic_for(d["event_type"]), d["workflow_id"].encode(), json.dumps(d).encode())
        for d in dicts
    ]
    kept = probe_keys(dicts, ReducerSettings().max_workflows)
    probes: dict[str, tuple[str, int]] = {}  # workflow id -> (hourly window id, message index)
    for i, d in enumerate(dicts):
        if d["event_type"] == "CODEGEN_STARTED":
            hour = hour_start(datetime.fromisoformat(d["timestamp"]))
            wid = window_id(EnumMetricsWindow.HOURLY, hour)
            if d["workflow_id"] in kept[wid]:
                probes[d["workflow_id"]] = (wid, i)
    hourly_ids = {w for w, _ in probes.values()}
    producer = kafka.make_producer(ks, **{"linger.ms": 1})
    sent_at = [0.0] * len(messages)
    chunk = max(1, int(rate / 100))  # 100 chunks a second
    began = time.time()
    for k in range(0, len(messages), chunk):
        due = began + k / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        now = time.time()
        for i in range(k, min(k + chunk, len(messages))):
            topic, key, value = messages[i]
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.01)
            sent_at[i] = now
        producer.poll(0)
    producer.flush(60)
    produced_for = time.time() - began
    last = wait_settled(pipeline, already + len(messages), timeline, time.time() + 180)
    all_in = next(p.t for p in timeline if p.accounted >= already + len(messages))
    target = read_target(ks, last.published)
    coordinator = pipeline.stats()["coordinator"]
    # When the coordinator produced each update's intent: splits the delay into
    # "arrival -> intent" (consume, apply, wait for the tick, merge) and "intent -> target"
    # (the intent executor's consume and republish).
    intents: dict[tuple[str, int], float] = {}
    intent_times: list[float] = []
    for ts, _offset, intent in read_target(ks, None, ks.intent_topic):
        body = intent.get("target_event_payload", {})
        if body.get("window_id") in hourly_ids:
            intents.setdefault((body["window_id"], body["revision"]), ts)
            intent_times.append(ts)
    first_seen: dict[str, tuple[float, float]] = {}
    for ts, _offset, payload in target:
        if payload.get("window_id") not in hourly_ids:
            continue
        intent_at = intents.get((payload["window_id"], payload["revision"]), float("nan"))
        for wf in payload.get("workflow_metrics", {}):
            if wf in probes and wf not in first_seen and probes[wf][0] == payload["window_id"]:
                first_seen[wf] = (ts, intent_at)
    found = [(first_seen[wf], sent_at[i]) for wf, (_w, i) in probes.items() if wf in first_seen]
    delays = sorted(published - sent for (published, _), sent in found)
    to_intent = sorted(intent - sent for (_, intent), sent in found)
    to_target = sorted(published - intent for (published, intent), _ in found)
    # Coordinator tick period as seen from outside: gaps between bursts of intents.
    bursts = [t for i, t in enumerate(intent_times) if i == 0 or t - intent_times[i - 1] > 0.05]
    gaps = sorted(b - a for a, b in pairwise(bursts))

    def pct(p: float, values: list[float] | None = None) -> float:
        values = delays if values is None else values
        return values[nearest_rank(p, len(values)) - 1] if values else float("nan")

    return {
        "rate": rate,
        "achieved_rate": len(messages) / produced_for,
        "events": len(messages),
        "probes": len(probes),
        "probes_found": len(delays),
        "hourly_windows": len(hourly_ids),
        "applied_after_production_end_s": all_in - (began + produced_for),
        "late_events": last.late - timeline[0].late,
        "rejected_events": last.rejected - timeline[0].rejected,
        "checkpoints": last.checkpoints - timeline[0].checkpoints,
        "p50_s": pct(0.5),
        "p90_s": pct(0.9),
        "p50_to_intent_s": pct(0.5, to_intent),
        "p99_to_intent_s": pct(0.99, to_intent),
        "p50_intent_to_target_s": pct(0.5, to_target),
        "p99_intent_to_target_s": pct(0.99, to_target),
        "tick_period_p50_s": pct(0.5, gaps),
        "tick_period_max_s": gaps[-1] if gaps else float("nan"),
        # Over the whole run (backlog included): a tick also waits for a checkpoint.
        "slowest_tick_s": coordinator.get("slowest_tick_seconds", float("nan")),
        "slowest_checkpoint_s": coordinator.get("slowest_checkpoint_seconds", float("nan")),
        "slowest_tick_phases": coordinator.get("slowest_tick_phases", {}),
        "p99_s": pct(0.99),
        "max_s": delays[-1] if delays else float("nan"),
        "p50_ticks": pct(0.5) / tick,
        "p99_ticks": pct(0.99) / tick,
    }


@dataclass
class RunResult:
    shape: Shape
    events: int
    load_before: dict[str, float]
    load_before_delay: dict[str, float] | None = None
    produce: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    delay: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    gc: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per actor, its garbage collector's time and thresholds up to the settle."""
    profile: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def run_shape(
    shape: Shape, n: int, pool: Pool, args: argparse.Namespace, profile: bool
) -> RunResult:
    load = c.wait_for_load(args.max_load, 20, args.load_wait)
    c.log(f"[{shape.label}] N={n:,}, load {load['load_1min']:.2f}")
    result = RunResult(shape, n, load)
    broker = EmbeddedBroker().start()
    broker_pid = getattr(broker, "_proc").pid  # noqa: B009 - pid of our own child
    watch(broker_pid)
    tag = uuid.uuid4().hex[:6]
    checkpoints = tempfile.mkdtemp(prefix="e2e-ckpt-")
    ks = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"e2e{tag}", group_id=f"g{tag}"
    )
    settings = Settings(
        kafka=ks,
        pipeline=PipelineSettings(
            window_actors=shape.window_actors,
            ingest_actors=shape.ingest_actors,
            batch_size=shape.batch_size,
            tick_seconds=args.tick_seconds,
            checkpoint_dir=checkpoints,  # not the repo's ./checkpoints; default interval (30 s)
            **({"idle_partition_timeout_seconds": args.idle_timeout} if args.idle_timeout else {}),
            gc_young_threshold=args.gc_young_threshold,
        ),
    )
    pipeline: Pipeline | None = None
    sampler: Sampler | None = None
    spies: list[subprocess.Popen[bytes]] = []
    interrupted = False
    try:
        kafka.ensure_topics(ks, ks.input_topics)
        began = time.perf_counter()
        produced = produce(ks, cycle_pool(pool, n))
        seconds = time.perf_counter() - began
        result.produce = {"events": produced, "seconds": seconds, "rate": c.rate(produced, seconds)}
        c.log(f"  backlog: {produced:,} events produced in {seconds:.1f} s")

        sampler = Sampler(broker_pid)
        t_start = time.time()
        pipeline = Pipeline(settings).start()
        t_started = time.time()
        sampler.refresh_pids()
        sampler.sample()
        sampler.start()
        timeline: list[Poll] = []
        while True:  # fast polls until the first consume
            p = poll(pipeline)
            timeline.append(p)
            if p.messages_in > 0:
                break
            if time.time() - t_started > 120:
                raise TimeoutError("nothing consumed within 120 s")
            time.sleep(0.02)
        t_first = p.t
        t_first_low = timeline[-2].t if len(timeline) > 1 else t_started
        c.log(f"  first consume {t_first - t_start:.1f} s after Pipeline.start()")
        if profile:
            spies = start_spies(sampler.pids, args.profile_seconds)
        last = wait_settled(pipeline, n, timeline, time.time() + max(600, n / 500))
        t_settled = last.t
        stats = pipeline.stats()
        coordinator = stats["coordinator"]
        result.gc = {
            "coordinator": coordinator["gc"],
            **{f"ingest-{a['index']}": a["gc"] for a in stats["ingest"]},
            **{f"window-{a['index']}": a["gc"] for a in stats["windows"]},
        }
        target = read_target(ks, last.published)
        t_final = covering_publish(target, last.applied)
        end_source = "target CreateTime"
        if t_final is None or math.isnan(t_final):
            t_final, end_source = t_settled, "stats poll (target did not add up)"
        all_applied = next(x.t for x in timeline if x.accounted >= n)
        seconds = t_final - t_first
        result.throughput = {
            "first_consume_after_start_s": t_first - t_start,
            "first_consume_uncertainty_s": t_first - t_first_low,
            "seconds": seconds,
            "sustained_rate": c.rate(n, seconds),
            "apply_rate_10_90": rate_between(timeline, 0.1, 0.9, n),
            "all_applied_after_first_s": all_applied - t_first,
            "final_publish_after_all_applied_s": t_final - all_applied,
            "end_source": end_source,
            "late_events": last.late,
            "duplicates_dropped": last.duplicates,
            "rejected_events": last.rejected,
            "checkpoints": last.checkpoints,
            "last_checkpoint_seconds": coordinator.get("last_checkpoint_seconds"),
            "last_checkpoint_bytes": coordinator.get("last_checkpoint_bytes"),
            "applied": last.applied,
            "intents": last.intents,
            "target_messages": len(target),
            "max_in_flight_seen": max(x.in_flight for x in timeline),
        }
        c.log(
            f"  throughput: {n:,} events in {seconds:.1f} s = {c.fmt_rate(c.rate(n, seconds))}"
            f" (late {last.late:,})"
        )
        result.cpu = sampler.cpu_between(t_first, all_applied)
        fractions = {}
        for f in (0.25, 0.5, 0.75, 1.0):
            t_f = next((x.t for x in timeline if x.accounted >= f * n), all_applied)
            row = sampler.at(t_f)
            fractions[f"{int(f * 100)}%"] = {
                name: row[name][0] for name in row if name.startswith("window-")
            }
        result.rss["window_rss_by_progress"] = fractions
        result.rss["window_rss_by_tenth"] = {
            f"{tenth * 10}%": {
                name: v[0]
                for name, v in sampler.at(
                    next((x.t for x in timeline if x.accounted >= tenth * n / 10), all_applied)
                ).items()
                if name.startswith("window-")
            }
            for tenth in range(1, 11)
        }
        for spy in spies:
            spy.wait(timeout=args.profile_seconds + 30)
        if profile:
            result.profile = read_spies(spies)
        if args.probe_seconds > 0:
            result.load_before_delay = c.wait_for_load(args.max_load, 20, args.load_wait)
            c.log(f"  delay phase, load {result.load_before_delay['load_1min']:.2f}")
            delay_timeline = [poll(pipeline)]
            rate = args.probe_rate or min(5000.0, 0.3 * result.throughput["sustained_rate"])
            result.delay = delay_phase(
                ks,
                pipeline,
                rate,
                args.matrix_probe_seconds if args.matrix else args.probe_seconds,
                args.tick_seconds,
                n,
                delay_timeline,
            )
            d = result.delay
            c.log(
                f"  delay: p50 {d['p50_s']:.2f} s, p99 {d['p99_s']:.2f} s "
                f"({d['probes_found']}/{d['probes']} probes)"
            )
        sampler.sample()
        result.rss["peak_mib"] = {
            name: max(
                (row[name][1] if not math.isnan(row[name][1]) else row[name][0])
                for _t, row in sampler.samples
                if name in row
            )
            for name in sampler.samples[-1][1]
        }
        result.rss["pids"] = dict(sampler.pids)
    except KeyboardInterrupt:
        interrupted = True
        raise
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        c.log(f"  FAILED: {result.error}")
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        if sampler is not None:
            sampler.halt()
        if pipeline is not None and not interrupted:  # else ray.shutdown() kills the actors
            try:
                pipeline.stop()
            except Exception as exc:
                c.log(f"  pipeline.stop failed: {exc}")
            wait_names_free(shape)
        broker.stop()
        shutil.rmtree(checkpoints, ignore_errors=True)
    return result


def wait_names_free(shape: Shape, timeout: float = 30) -> None:
    """ray.kill is asynchronous: wait until the next pipeline can reuse the actor names."""
    names = [f"window-{j}" for j in range(shape.window_actors)]
    names += [f"ingest-{i}" for i in range(shape.ingest_actors)]
    names += ["coordinator", "intent-executor"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = set(actor_pids())
        if not alive & set(names):
            return
        time.sleep(0.2)


# -- py-spy ----------------------------------------------------------------------------------------


def start_spies(pids: dict[str, int], seconds: float) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = []
    for name in ("ingest-0", "window-0", "coordinator"):
        if name not in pids:
            continue
        out = Path(tempfile.gettempdir()) / f"e2e-pyspy-{name}-{os.getpid()}.txt"
        command = [spy, "record", "--nonblocking", "--format", "raw", "--rate", "100"]
        command += ["--duration", str(int(seconds)), "--pid", str(pids[name]), "-o", str(out)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc.name = name  # type: ignore[attr-defined]
        proc.out = out  # type: ignore[attr-defined]
        spies.append(proc)
    return spies


def _frame_name(frame: str) -> str:
    """'apply (actors/window.py:52)' -> 'window.py:apply'."""
    func, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{file}:{func}" if file else func


IDLE_LEAVES = ("worker.py:Worker.main_loop",)  # the main thread parked in Ray's C++ task loop
WRAPPERS = (
    "threading.py:",
    "tracing_helper.py:",
    "default_worker.py:",
    "worker.py:Worker.main_loop",
    "auto_init_hook.py:",
    "function_manager.py:",
    "<listcomp>",
    "<dictcomp>",
)


def read_spies(spies: list[Any], top: int = 16) -> dict[str, Any]:
    """Self and inclusive shares of py-spy's samples, without the idle main thread's samples
    (Worker.main_loop as the leaf) and without wrapper frames in the inclusive list."""
    out: dict[str, Any] = {}
    for spy in spies:
        path: Path = spy.out
        if not path.exists():
            out[spy.name] = {"error": (spy.stderr.read() or b"").decode()[-500:]}
            continue
        self_time: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = idle = 0
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            samples = int(n)
            frames = [_frame_name(f) for f in stack.split(";") if f]
            if not frames or frames[-1] in IDLE_LEAVES:
                idle += samples
                continue
            total += samples
            self_time[frames[-1]] += samples
            for name in set(frames):
                if not any(w in name for w in WRAPPERS):
                    inclusive[name] += samples
        path.unlink(missing_ok=True)
        out[spy.name] = {
            "samples": total,
            "idle_samples": idle,
            "self": [(k, v / total) for k, v in self_time.most_common(top)] if total else [],
            "inclusive": [(k, v / total) for k, v in inclusive.most_common(top * 2)]
            if total
            else [],
        }
    return out


# -- report ----------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f} s"


def report_main(r: RunResult, ceiling: dict | None, trips: dict | None, tick: float) -> None:
    t, d = r.throughput, r.delay
    print(f"## End to end, {r.events:,} events, {r.shape.label}, tick {tick:g} s\n")
    if r.error:
        print(f"**run failed: {r.error}**\n")
    rows = []
    if r.produce:
        rows.append(
            [
                "backlog produced (before start)",
                c.fmt_rate(r.produce["rate"]),
                f"{r.produce['events']:,} in {r.produce['seconds']:.1f} s",
                "",
            ]
        )
    if t:
        rate = t["sustained_rate"]
        rows.append(
            [
                "sustained, first consume -> final publish",
                c.fmt_rate(rate),
                f">= {TARGET_RATE:,} ev/s",
                "yes" if rate >= TARGET_RATE else "NO",
            ]
        )
        if t["apply_rate_10_90"]:
            rows.append(
                ["applied, 10% -> 90% of events", c.fmt_rate(t["apply_rate_10_90"]), "", ""]
            )
        rows.append(
            [
                "first consume after Pipeline.start()",
                fmt_s(t["first_consume_after_start_s"]),
                "",
                "",
            ]
        )
        rows.append(
            [
                "all applied -> covering publish",
                fmt_s(t["final_publish_after_all_applied_s"]),
                "",
                "",
            ]
        )
        rows.append(
            [
                "late / duplicate / rejected events",
                f"{t['late_events']:,} / {t['duplicates_dropped']:,} / {t['rejected_events']:,}",
                "0 / 0 / 0",
                "",
            ]
        )
        pause = t.get("last_checkpoint_seconds")
        rows.append(
            [
                "checkpoints while consuming (last one's barrier)",
                f"{t['checkpoints']} ({fmt_s(pause)})",
                "",
                "",
            ]
        )
    if ceiling:
        ce = ceiling["ceiling: decode_batch + add_batch"]["events_per_s"]
        rows.append(["single-process ceiling: decode_batch + add_batch", c.fmt_rate(ce), "", ""])
        if t:
            rows.append(["sustained / ceiling", c.fmt_ratio(t["sustained_rate"] / ce), "", ""])
    if d:
        ok = d["p99_ticks"] <= TARGET_DELAY_TICKS
        rows.append(
            ["update delay p50", f"{d['p50_s']:.2f} s = {d['p50_ticks']:.2f} ticks", "", ""]
        )
        rows.append(
            [
                "update delay p99",
                f"{d['p99_s']:.2f} s = {d['p99_ticks']:.2f} ticks",
                f"<= {TARGET_DELAY_TICKS:g} ticks",
                "yes" if ok else "NO",
            ]
        )
        rows.append(
            [
                "  arrival -> intent produced, p50 / p99",
                f"{fmt_s(d['p50_to_intent_s'])} / {fmt_s(d['p99_to_intent_s'])}",
                "",
                "",
            ]
        )
        rows.append(
            [
                "  intent -> target published, p50 / p99",
                f"{fmt_s(d['p50_intent_to_target_s'])} / {fmt_s(d['p99_intent_to_target_s'])}",
                "",
                "",
            ]
        )
        rows.append(
            [
                "  coordinator tick period seen, p50 / max",
                f"{fmt_s(d['tick_period_p50_s'])} / {fmt_s(d['tick_period_max_s'])}",
                "",
                "",
            ]
        )
        rows.append(
            [
                "  slowest tick / checkpoint in the whole run",
                f"{fmt_s(d.get('slowest_tick_s', float('nan')))} / "
                f"{fmt_s(d.get('slowest_checkpoint_s', float('nan')))}",
                "",
                "",
            ]
        )
        phases = d.get("slowest_tick_phases") or {}
        if phases:
            rows.append(
                [
                    "  slowest tick: gather / plan / publish (updates)",
                    " / ".join(fmt_s(phases[k]) for k in ("gather", "plan", "publish"))
                    + f" ({phases.get('updates', 0)})",
                    "",
                    "",
                ]
            )
        rows.append(
            [
                "  probes found / sent; stream; last applied after its end",
                f"{d['probes_found']} / {d['probes']}; {d['achieved_rate']:,.0f} ev/s for "
                f"{d['events'] / d['achieved_rate']:.0f} s; "
                f"{d['applied_after_production_end_s']:.1f} s; "
                f"{d.get('checkpoints', 0)} checkpoint(s) during it",
                "",
                "",
            ]
        )
    wr = r.rss.get("window_rss_by_progress", {})
    if wr:
        names = sorted({n for row in wr.values() for n in row})
        for name in names:
            values = " / ".join(f"{wr[k].get(name, float('nan')):.0f}" for k in wr)
            rows.append([f"{name} RSS MiB at 25/50/75/100%", values, "flat", ""])
    print(c.markdown_table(["measure", "value", "target", "met"], rows))
    print()
    load = f"load (1 min) before the run {r.load_before['load_1min']:.2f}"
    if r.load_before_delay:
        load += f", before the delay phase {r.load_before_delay['load_1min']:.2f}"
    print(load + "\n")
    peak = r.rss.get("peak_mib", {})
    if peak:
        rows = [
            [
                name,
                r.rss["pids"].get(name, ""),
                f"{mib:.0f}",
                f"{r.cpu.get(name, float('nan')):.2f}",
                gc_cell(r.gc.get(name)),
            ]
            for name, mib in sorted(peak.items())
        ]
        print("Peak RSS per process (VmHWM; 'rest of Ray' is the sum of current RSS), cores")
        print("used while the backlog was consumed (CPU seconds / wall seconds), and seconds in")
        print("Python's garbage collector from start to settle (collections):\n")
        print(c.markdown_table(["process", "pid", "peak RSS MiB", "cores", "GC s (n)"], rows))
        print()
    report_costs(ceiling, trips)
    report_profile(r)


def report_costs(ceiling: dict | None, trips: dict | None) -> None:
    if ceiling:
        rows = [
            [name, f"{v['us_per_event']:.2f}", c.fmt_rate(v["events_per_s"])]
            for name, v in ceiling.items()
            if not name.startswith("_")
        ]
        print(
            f"Per-stage cost in one process ({ceiling['_events']:,} events, batches of "
            f"{ceiling['_batch_size']}, median of 3):\n"
        )
        print(c.markdown_table(["step", "us/event", "rate"], rows))
        sizes = ceiling["_bytes_per_event"]
        print("\nbytes per event: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))
        print()
    if trips:
        print("Ray actor call per batch, 4 in flight, sink does nothing else:\n")
        print(c.markdown_table(["payload", "rate"], [[k, c.fmt_rate(v)] for k, v in trips.items()]))
        print()


def report_profile(r: RunResult) -> None:
    if r.profile:
        for name, prof in r.profile.items():
            print(
                f"py-spy on {name}: {prof.get('samples', 0)} busy samples at 100 Hz "
                f"({prof.get('idle_samples', 0)} idle main-loop samples left out)\n"
            )
            if "error" in prof:
                print(prof["error"])
                continue
            rows = [[k, f"{v:.1%}"] for k, v in prof["self"]]
            print(c.markdown_table(["self (leaf frame)", "share"], rows))
            print()
            rows = [[k, f"{v:.1%}"] for k, v in prof["inclusive"]]
            print(c.markdown_table(["inclusive", "share"], rows))
            print()


def report_matrix(results: list[RunResult], tick: float) -> None:
    print(f"## Configurations, {results[0].events:,} events each, tick {tick:g} s\n")
    rows = []
    for r in results:
        t, d, peak = r.throughput, r.delay, r.rss.get("peak_mib", {})
        windows = [v for k, v in peak.items() if k.startswith("window-")]
        ingests = [v for k, v in peak.items() if k.startswith("ingest-")]
        rows.append(
            [
                r.shape.window_actors,
                r.shape.ingest_actors,
                r.shape.batch_size,
                c.fmt_rate(t["sustained_rate"]) if t else f"failed: {r.error}",
                c.fmt_rate(t["apply_rate_10_90"]) if t.get("apply_rate_10_90") else "",
                f"{d['p50_ticks']:.2f} / {d['p99_ticks']:.2f}" if d else "",
                f"{max(windows):.0f}" if windows else "",
                f"{max(ingests):.0f}" if ingests else "",
                f"{t.get('late_events', '')}",
                f"{r.load_before['load_1min']:.2f}",
            ]
        )
    headers = ["J windows", "I ingest", "batch", "sustained", "applied 10-90%"]
    headers += ["delay p50/p99 ticks", "peak window MiB", "peak ingest MiB", "late", "load"]
    print(c.markdown_table(headers, rows))
    print()


def on_term(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # run the same cleanup as Ctrl-C


# If this process dies without cleaning up (Ray exits the driver at once when its raylet dies),
# the broker would outlive it holding every message in memory: a watchdog stops it then.
_WATCHDOG = """
import os, signal, sys, time
parent, child = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while alive(child):
    if not alive(parent):
        with open(f"/proc/{child}/comm") as comm:
            if comm.read().strip() == "tansu":
                os.kill(child, signal.SIGKILL)
        break
    time.sleep(1)
"""


def watch(child_pid: int) -> None:
    subprocess.Popen(
        [sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(child_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def gc_cell(stats: dict[str, Any] | None) -> str:
    return "" if stats is None else f"{stats['seconds']:.2f} ({stats['collections']:,})"


def save(path: Path | None, raw: dict[str, Any], results: list[RunResult]) -> None:
    """Write what is known so far (Ray exits the driver at once if its raylet dies)."""
    if path is not None:
        raw["runs"] = [r.__dict__ | {"shape": r.shape.__dict__} for r in results]
        path.write_text(json.dumps(raw, indent=2, default=str))


# -- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--window-actors", type=int, default=2)
    parser.add_argument("--ingest-actors", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--tick-seconds", type=float, default=1.0)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="pipeline.idle_partition_timeout_seconds (default: the setting's default)",
    )
    c.add_gc_young_threshold(parser)
    parser.add_argument("--matrix", action="store_true", help="run the five shapes instead")
    parser.add_argument("--matrix-events", type=int, default=200_000)
    parser.add_argument(
        "--probe-rate",
        type=float,
        default=0,
        help="delay stream, events/s (default: 30%% of the sustained rate measured, at most 5000)",
    )
    parser.add_argument("--probe-seconds", type=float, default=20, help="0 skips the delay phase")
    parser.add_argument("--matrix-probe-seconds", type=float, default=10)
    parser.add_argument("--pool", type=int, default=100_000, help="events in the cycled pool")
    parser.add_argument("--profile", action="store_true", help="py-spy three actors")
    parser.add_argument("--profile-seconds", type=float, default=15)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the one-process costs")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--load-wait", type=float, default=900, help="max seconds to wait")
    parser.add_argument("--json", type=Path, help="also write every raw number here")
    parser.add_argument("--child-costs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_costs:  # a fresh process with a small heap, like an actor's
        pool = make_pool(args.pool)
        print(json.dumps(stage_costs(pool, args.batch_size, args.window_actors)))
        return 0

    began = time.perf_counter()
    info, code = c.machine_info(), c.code_info(("actors", "models", "reducer", "cli", "benchmarks"))
    c.log(f"machine: {info}\ncode: {code}")
    raw: dict[str, Any] = {"machine": info, "code": code, "args": vars(args) | {"json": None}}
    c.log(f"building a pool of {args.pool:,} events ...")
    pool = make_pool(args.pool)
    c.log(f"  {len(pool.values):,} events in {pool.seconds:.1f} s, span {pool.span_s:,} s")
    probe = time.perf_counter()
    for _ in cycle_pool(pool, 2 * len(pool.values)):
        pass
    raw["cycle_rate"] = c.rate(2 * len(pool.values), time.perf_counter() - probe)
    c.log(f"  cycling: {raw['cycle_rate']:,.0f} events/s (fresh ids + timestamps)")
    raw["pool"] = {"events": len(pool.values), "seconds": pool.seconds, "span_s": pool.span_s}

    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    results: list[RunResult] = []
    ceiling = trips = None
    try:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            namespace=NAMESPACE,
            _temp_dir=temp_dir,
            log_to_driver=False,
        )
        signal.signal(signal.SIGTERM, on_term)  # after ray.init, which installs its own
        shape = Shape(args.window_actors, args.ingest_actors, args.batch_size)
        if not args.no_ceiling:
            raw["load_before_ceiling"] = c.wait_for_load(args.max_load, 20, args.load_wait)
            c.log(f"single-process costs, load {raw['load_before_ceiling']['load_1min']:.2f} ...")
            ceiling = raw["stage_costs"] = c.run_child(
                [
                    str(Path(__file__).resolve()),
                    "--child-costs",
                    f"--pool={args.pool}",
                    f"--batch-size={shape.batch_size}",
                    f"--window-actors={shape.window_actors}",
                ],
                timeout=900,
            )
            trips = raw["ray_round_trips"] = ray_round_trips(pool, shape.batch_size)
            save(args.json, raw, results)
            gc.collect()
        if args.matrix:
            for j, i, b in MATRIX:
                results.append(run_shape(Shape(j, i, b), args.matrix_events, pool, args, False))
                save(args.json, raw, results)
        else:
            results.append(run_shape(shape, args.events, pool, args, args.profile))
            save(args.json, raw, results)
    except KeyboardInterrupt:
        c.log("interrupted: shutting Ray down")
    finally:
        ray.shutdown()  # kills every actor still alive (the graceful stop ran in run_shape)
        shutil.rmtree(temp_dir, ignore_errors=True)

    raw["seconds"] = time.perf_counter() - began
    raw["load_average_end"] = os.getloadavg()
    save(args.json, raw, results)
    if results:
        if args.matrix:
            report_matrix(results, args.tick_seconds)
            report_costs(ceiling, trips)
        else:
            report_main(results[0], ceiling, trips, args.tick_seconds)
    print(
        f"pool {len(pool.values):,} events built in {pool.seconds:.1f} s; cycling "
        f"{raw['cycle_rate']:,.0f} ev/s; total {raw['seconds']:.0f} s"
    )
    print(f"code: commit {code['commit']}, uncommitted: {code['uncommitted'] or 'none'}")
    if args.json:
        c.log(f"raw numbers written to {args.json}")
    return 0 if results and not any(r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Soak benchmark (issue 5): the whole pipeline for N minutes at a paced live rate, checkpoints on.

    python benchmarks/soak.py                      # 10 minutes, 1,000 events/s, kill at 50%
    python benchmarks/soak.py --minutes 2 --rate 500 --kill-at 0.5
    python benchmarks/soak.py --kill-at 0          # no kill
    python benchmarks/soak.py --report benchmarks/results/soak-<timestamp>.json  # tables again

What it runs: the embedded Tansu broker, a local Ray (2 CPUs), and ``Pipeline(settings).start()``
with the default shape and pacing (1 ingest, 2 window actors, tick 5 s, checkpoint every 30 s into
a temporary directory). A background thread produces a live simulated fleet (workflows start at
the wall clock, paced at ``--rate`` events/s) for the whole run. The main loop plays
``codegen-metrics run``: ``pipeline.supervise()`` every second.

What it measures:
  - every second: the actors' stats (for checkpoints and recovery); every 10 s a sample of events
    produced, consumed (sum of ingest ``events_in``, carried across restores) and applied (sum of
    window ``events_applied``), the rates over the interval, the last checkpoint's duration and
    size, the 1-minute load, and VmRSS (and CPU seconds) of every actor's worker process (pids
    from Ray's actor table), the Tansu broker, this driver and the rest of the Ray session;
  - at ``--kill-at`` of the run: ``ray.kill(window-0, no_restart=True)``; recovery time = from the
    kill until ``supervise()`` has restored the graph from the latest checkpoint and events are
    applied again; also when the events rolled back to the checkpoint are re-applied and when
    everything produced before the kill has been applied;
  - at the end: the producer stops, the pipeline drains and stops cleanly (final publish and
    checkpoint), and the run checks exactly-once: the window actors' applied events, and the
    hourly windows' ``events_processed`` on the metrics topic (highest revision per window id),
    must both equal the number of events produced.

Before starting it waits (up to 20 minutes) for the 1-minute load average to fall below 2.0 (the
machine is shared) and reports the load it saw during the run. Tables go to stdout, progress to
stderr; the raw samples go to benchmarks/results/soak-<timestamp>.json. Exit status 1 when the
exactly-once check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common as c
import ray

from actors import kafka
from actors.broker import EmbeddedBroker
from actors.fleet import produce_events
from actors.names import NAMESPACE, window_name
from actors.pipeline import Pipeline
from actors.ray_env import apply_ray_environment
from cli.simulator import simulate_fleet
from models.metrics import EnumMetricsWindow
from models.settings import KafkaSettings, PipelineSettings, Settings

# Before Ray starts: the pipeline's own Ray environment (actors/ray_env.py).
apply_ray_environment()

RESULTS = c.REPO / "benchmarks" / "results"
SAMPLE_SECONDS = 10.0
SUPERVISE_SECONDS = 1.0
RECOVERY_POLL_SECONDS = 0.2
STATS_TIMEOUT_S = 10.0
EVENTS_PER_WORKFLOW = 9.7  # the simulator's average: workflows/s = rate / 9.7 keeps time real
FLAT = 0.10  # RSS growth below 10% first -> last counts as flat
DEDUP_BYTES_PER_ID = 8  # reducer/dedup.py: a uint64 in a sorted numpy array (was 70 in a set)
WARMUP_S = 60.0  # RSS growth is also reported from this long after a process's first sample
LOAD_BELOW = 2.0
LOAD_POLL_S = 20.0
LOAD_MAX_WAIT_S = 1200.0
BROKER = "tansu broker"
DRIVER = "driver"
REST = "rest of Ray"
ACTOR_ORDER = ("ingest-0", "window-0", "window-1", "coordinator", "intent-executor")


# -- the producer ----------------------------------------------------------------------------------


class FleetProducer(threading.Thread):
    """A live simulated fleet, paced at ``rate`` events/s, until ``halt()``."""

    def __init__(self, settings: KafkaSettings, rate: float, seed: int) -> None:
        super().__init__(name="fleet-producer", daemon=True)
        self.settings = settings
        self.rate = rate
        self.seed = seed
        self.drawn = 0  # events handed to produce_events so far (live, +- one unflushed chunk)
        self.produced: int | None = None  # the exact count, once finished
        self.error: str | None = None
        self._halt = threading.Event()

    def _events(self) -> Iterator[dict[str, Any]]:
        fleet = simulate_fleet(
            10**9,
            seed=self.seed,
            start=datetime.now(UTC),
            workflows_per_second=self.rate / EVENTS_PER_WORKFLOW,
        )
        for event in fleet:
            self.drawn += 1
            yield event

    def run(self) -> None:
        try:
            self.produced = produce_events(
                self.settings, self._events(), rate=self.rate, stop=self._halt
            )
        except Exception as exc:  # reported in the summary; the run goes on without input
            self.error = f"{type(exc).__name__}: {exc}"
            c.log(f"producer failed: {self.error}")

    def halt(self) -> int:
        self._halt.set()
        self.join(timeout=120)
        if self.produced is None:
            raise RuntimeError(f"the producer did not finish cleanly: {self.error}")
        return self.produced


# -- the pipeline, with its restores timed ---------------------------------------------------------


class TimedPipeline(Pipeline):
    """A Pipeline that remembers when each restore began and ended."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.restore_times: list[tuple[float, float]] = []

    def restore(self) -> None:
        began = time.monotonic()
        super().restore()
        self.restore_times.append((began, time.monotonic()))


def poll(pipeline: Pipeline) -> dict[str, Any] | None:
    """Stats of the graph (not the intent executor), or None while an actor is dead or stuck."""
    try:
        refs = [a.stats.remote() for a in (*pipeline.ingests, *pipeline.windows)]
        refs.append(pipeline.coordinator.stats.remote())
        got = ray.get(refs, timeout=STATS_TIMEOUT_S)
    except Exception:
        return None
    n = len(pipeline.ingests)
    return {"ingest": got[:n], "windows": got[n:-1], "coordinator": got[-1]}


def applied(stats: dict[str, Any]) -> int:
    return sum(w["events_applied"] for w in stats["windows"])


def consumed(stats: dict[str, Any]) -> int:
    return sum(i.get("events_in", 0) for i in stats["ingest"])


# -- processes and their memory --------------------------------------------------------------------


def actor_pids() -> dict[str, int]:
    """Name -> worker pid of every live named actor."""
    try:  # the state API goes through the dashboard; fall back to the GCS actor table
        from ray.util.state import list_actors

        rows = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
        return {r.name: int(r.pid) for r in rows if r.name and r.pid}
    except Exception:
        from ray._private import state as ray_state

        return {
            a["Name"]: int(a["Pid"])
            for a in ray_state.actors().values()
            if a.get("Name") and a.get("State") == "ALIVE" and a.get("Pid")
        }


def memory_row(broker_pid: int | None) -> dict[str, dict[str, float]]:
    """VmRSS (MiB), pid and CPU seconds of each actor, the broker, this driver and the rest."""
    pids = {name: pid for name, pid in actor_pids().items() if not name.startswith("_")}
    if broker_pid:
        pids[BROKER] = broker_pid
    pids[DRIVER] = os.getpid()
    row: dict[str, dict[str, float]] = {}
    for name, pid in pids.items():
        rss, _ = c.proc_memory_mib(pid)
        row[name] = {"pid": pid, "rss_mib": rss, "cpu_s": c.proc_cpu_seconds(pid)}
    rest_rss, rest_cpu = c.rest_usage(set(pids.values()))
    row[REST] = {"pid": 0, "rss_mib": rest_rss, "cpu_s": rest_cpu}
    return row


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Recovery:
    """What happened around the kill; times are seconds after the kill."""

    kill_t: float | None = None  # seconds into the run
    applied_before: int = 0
    produced_before: int = 0
    restore_began_s: float | None = None  # supervise() noticed and started restoring
    restored_s: float | None = None  # the new graph is up (supervise() returned)
    applied_at_restore: int | None = None
    resumed_s: float | None = None  # events applied again
    regained_s: float | None = None  # applied back to its value at the kill
    caught_up_s: float | None = None  # everything produced before the kill applied
    action: str | None = None

    @property
    def rolled_back(self) -> int | None:
        if self.applied_at_restore is None:
            return None
        return self.applied_before - self.applied_at_restore


@dataclass
class Run:
    args: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)
    verification: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)


class Soak:
    def __init__(
        self, pipeline: TimedPipeline, producer: FleetProducer, broker_pid: int | None, run: Run
    ) -> None:
        self.pipeline = pipeline
        self.producer = producer
        self.broker_pid = broker_pid
        self.run = run
        self.began = time.monotonic()
        self.stats: dict[str, Any] | None = None
        self.applied = 0
        self.in_base = 0  # events_in of the ingest actors before the last restore
        self.in_last = 0
        self.restores_seen = 0
        self.prev_sample: dict[str, Any] | None = None
        self._kill_mono = 0.0

    def t(self) -> float:
        return time.monotonic() - self.began

    @property
    def consumed(self) -> int:
        return self.in_base + self.in_last

    def refresh(self) -> None:
        """Poll the graph: applied, consumed (carried across restores), new checkpoints."""
        if self.pipeline.restores != self.restores_seen:
            self.in_base += self.in_last
            self.in_last = 0
            self.restores_seen = self.pipeline.restores
        stats = poll(self.pipeline)
        if stats is None:
            return
        self.stats = stats
        self.applied = applied(stats)
        self.in_last = consumed(stats)
        self.note_checkpoint(stats["coordinator"], final=False)

    def note_checkpoint(self, coordinator: dict[str, Any], final: bool) -> None:
        """Record each checkpoint once, identified by its duration (a float no two share).

        The coordinator bumps ``checkpoint_sequence`` before it resumes the ingest actors and sets
        ``last_checkpoint_seconds``/``_bytes`` only after, so a poll in between pairs the new
        sequence with the previous checkpoint's numbers: only a new duration makes a new record,
        and later polls of the same checkpoint refresh its size.
        """
        seconds = coordinator.get("last_checkpoint_seconds")
        since = coordinator.get("seconds_since_checkpoint")
        if seconds is None or since is None:
            return
        size = coordinator.get("last_checkpoint_bytes")
        last = self.run.checkpoints[-1] if self.run.checkpoints else None
        if last is not None and last["seconds"] == seconds:
            last["bytes"] = size
            last["final"] = last["final"] or final
            return
        self.run.checkpoints.append(
            {
                "t": round(self.t() - since, 2),  # when it ended, seconds into the run (+ latency)
                "sequence": coordinator.get("checkpoint_sequence"),
                "seconds": seconds,
                "bytes": size,
                "final": final,
                "epoch": coordinator.get("epoch"),
            }
        )

    def supervise(self) -> None:
        action = self.pipeline.supervise()
        if action:
            self.run.actions.append({"t": round(self.t(), 2), "action": action})
            c.log(f"supervise(): {action}")

    def sample(self) -> None:
        now = self.t()
        produced = self.producer.drawn
        windows = (self.stats or {}).get("windows", [])
        coordinator = (self.stats or {}).get("coordinator", {})
        last = self.run.checkpoints[-1] if self.run.checkpoints else {}
        row = {
            "t": round(now, 2),
            "wall": time.time(),
            "load_1min": os.getloadavg()[0],
            "produced": produced,
            "consumed": self.consumed,
            "applied": self.applied,
            "lag": produced - self.applied,
            "dedup_ids_tracked": sum(w.get("dedup_ids_tracked", 0) for w in windows),
            "open_panes": sum(w.get("open_panes", 0) for w in windows),
            "checkpoints": len(self.run.checkpoints),
            "last_checkpoint_s": last.get("seconds"),
            "last_checkpoint_bytes": last.get("bytes"),
            "coordinator_error": coordinator.get("error"),
            "watermark": coordinator.get("watermark"),
            "memory": memory_row(self.broker_pid),
        }
        prev = self.prev_sample or {"t": 0.0, "produced": 0, "consumed": 0, "applied": 0}
        dt = max(row["t"] - prev["t"], 1e-6)
        for key in ("produced", "consumed", "applied"):
            row[f"{key}_per_s"] = (row[key] - prev[key]) / dt
        self.run.samples.append(row)
        self.prev_sample = row
        mem = row["memory"]
        rss = " ".join(
            f"{name}={mem[name]['rss_mib']:.0f}"
            for name in (*ACTOR_ORDER, BROKER, DRIVER)
            if name in mem
        )
        c.log(
            f"t={now:5.0f}s produced {produced:,} ({row['produced_per_s']:,.0f}/s) "
            f"in {row['consumed']:,} ({row['consumed_per_s']:,.0f}/s) "
            f"applied {row['applied']:,} ({row['applied_per_s']:,.0f}/s) lag {row['lag']:,} "
            f"ckpt {len(self.run.checkpoints)} | RSS MiB {rss}"
        )

    def kill_window(self) -> None:
        rec = self.run.recovery
        self.refresh()
        rec.kill_t = self.t()
        rec.applied_before = self.applied
        rec.produced_before = self.producer.drawn
        c.log(f"killing {window_name(0)} (applied {self.applied:,})")
        ray.kill(ray.get_actor(window_name(0), namespace=NAMESPACE), no_restart=True)
        self._kill_mono = time.monotonic()

    def track_recovery(self) -> None:
        """Advance the recovery timeline from the latest poll."""
        rec = self.run.recovery
        if rec.kill_t is None or rec.caught_up_s is not None:
            return
        since = time.monotonic() - self._kill_mono
        if rec.restored_s is None and self.pipeline.restore_times:
            began, ended = self.pipeline.restore_times[0]
            rec.restore_began_s = began - self._kill_mono
            rec.restored_s = ended - self._kill_mono
            rec.action = self.run.actions[-1]["action"] if self.run.actions else None
            stats = poll(self.pipeline)
            rec.applied_at_restore = applied(stats) if stats else None
            c.log(
                f"restored {rec.restored_s:.1f} s after the kill "
                f"(applied rolled back to {rec.applied_at_restore})"
            )
            return
        if rec.restored_s is None or self.stats is None:
            return
        if rec.resumed_s is None and self.applied > (rec.applied_at_restore or 0):
            rec.resumed_s = since
            c.log(f"events applied again {since:.1f} s after the kill")
        if (
            rec.resumed_s is not None
            and rec.regained_s is None
            and self.applied >= rec.applied_before
        ):
            rec.regained_s = since
        if rec.regained_s is not None and self.applied >= rec.produced_before:
            rec.caught_up_s = since
            c.log(f"caught up {since:.1f} s after the kill")

    def loop(self, seconds: float, kill_at: float | None) -> None:
        end = self.began + seconds
        next_supervise = next_poll = time.monotonic()
        next_sample = self.began + SAMPLE_SECONDS
        killed = kill_at is None
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_supervise:
                self.supervise()
                next_supervise = max(next_supervise + SUPERVISE_SECONDS, time.monotonic())
            if not killed and self.t() >= kill_at:
                self.kill_window()
                killed = True
            now = time.monotonic()
            if now >= next_poll:
                self.refresh()
                self.track_recovery()
                rec = self.run.recovery
                recovering = rec.kill_t is not None and rec.resumed_s is None
                step = RECOVERY_POLL_SECONDS if recovering else SUPERVISE_SECONDS
                next_poll = max(next_poll + step, time.monotonic())
            if time.monotonic() >= next_sample:
                self.sample()
                next_sample += SAMPLE_SECONDS
            wake = min(next_supervise, next_poll, next_sample, end)
            time.sleep(max(0.0, wake - time.monotonic()))

    def drain(self, produced: int, timeout: float = 300.0, stall: float = 60.0) -> None:
        """Supervise until every produced event is applied, or progress stalls."""
        deadline = time.monotonic() + timeout
        progress_at, best = time.monotonic(), self.applied
        while time.monotonic() < deadline:
            self.supervise()
            self.refresh()
            self.track_recovery()
            if self.applied >= produced:
                return
            if self.applied > best:
                best, progress_at = self.applied, time.monotonic()
            elif time.monotonic() - progress_at > stall:
                break
            time.sleep(SUPERVISE_SECONDS)
        c.log(f"drain: applied {self.applied:,} of {produced:,} produced; stopping anyway")


def read_metrics(settings: KafkaSettings, expected: int | None) -> dict[str, dict[str, Any]]:
    """Highest-revision payload per window id on the metrics topic."""
    messages = kafka.consume_all(settings, settings.target_topic, expected, timeout=60.0)
    latest: dict[str, dict[str, Any]] = {}
    for message in messages:
        if not message.value():
            continue
        payload = json.loads(message.value())
        key = payload["window_id"]
        if payload["revision"] >= latest.get(key, {}).get("revision", -1):
            latest[key] = payload
    return latest


def verify(run: Run, soak: Soak, produced: int, settings: Settings) -> None:
    stats = soak.stats or {}
    windows, ingests = stats.get("windows", []), stats.get("ingest", [])
    final = soak.pipeline.stop()
    run.final = final
    soak.note_checkpoint(final.get("coordinator", {}), final=True)
    executor = final.get("intent_executor", {})
    latest = read_metrics(settings.kafka, executor.get("published") or None)
    by_type: dict[str, int] = {}
    for payload in latest.values():
        kind = payload.get("aggregation_type", "?")
        by_type[kind] = by_type.get(kind, 0) + int(payload.get("events_processed", 0))
    hourly = by_type.get(EnumMetricsWindow.HOURLY.value, 0)
    applied_total = sum(w["events_applied"] for w in windows)
    run.verification = {
        "produced": produced,
        "applied_total": applied_total,
        "published_events_processed_by_window_type": by_type,
        "published_window_ids": len(latest),
        "published_messages": executor.get("published"),
        "hourly_events_processed": hourly,
        "duplicates_dropped": sum(w.get("duplicates_dropped", 0) for w in windows),
        "late_events": sum(w.get("late_events", 0) for w in windows),
        "rejected_since_restore": sum(i.get("events_rejected", 0) for i in ingests),
        "applied_equals_produced": applied_total == produced,
        "hourly_equals_produced": hourly == produced,
    }
    run.verification["exactly_once"] = (
        run.verification["applied_equals_produced"] and run.verification["hourly_equals_produced"]
    )


# -- reporting -------------------------------------------------------------------------------------


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    if len(points) < 3:
        return float("nan")
    ts, ys = [p[0] / 60 for p in points], [p[1] for p in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


def _cpu_share(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """CPU used between two samples, as a percentage of one core."""
    return (b[2] - a[2]) / (b[0] - a[0]) * 100 if b[0] > a[0] else float("nan")


def growth(points: Sequence[tuple[float, float, float]]) -> dict[str, float]:
    """RSS of one process (points: seconds, MiB, CPU seconds): first -> last, and from the
    first sample WARMUP_S after its start -> last with the slope over that part; its CPU share
    in its first and last minute."""
    first, last = points[0], points[-1]
    settled = next((p for p in points if p[0] >= first[0] + WARMUP_S), last)
    late = next((p for p in points if p[0] >= last[0] - WARMUP_S), first)
    return {
        "first_t": first[0],
        "last_t": last[0],
        "first_mib": first[1],
        "settled_t": settled[0],
        "settled_mib": settled[1],
        "last_mib": last[1],
        "growth_mib": last[1] - first[1],
        "growth_pct": (last[1] - first[1]) / first[1] * 100 if first[1] else float("nan"),
        "settled_growth_pct": (
            (last[1] - settled[1]) / settled[1] * 100 if settled[1] else float("nan")
        ),
        "settled_slope_mib_per_min": _slope([(p[0], p[1]) for p in points if p[0] >= settled[0]]),
        "cpu_pct_first_min": _cpu_share(first, settled),
        "cpu_pct_last_min": _cpu_share(late, last),
        "samples": len(points),
    }


def rss_growth(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth per process incarnation (name, pid): a restored actor is a new process."""
    series: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for s in samples:
        for name, m in s["memory"].items():
            if not math.isnan(m["rss_mib"]):
                point = (s["t"], m["rss_mib"], m["cpu_s"])
                series.setdefault((name, int(m["pid"])), []).append(point)
    order = {n: i for i, n in enumerate((*ACTOR_ORDER, BROKER, DRIVER, REST))}
    rows = []
    for (name, pid), points in sorted(
        series.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[1][0][0])
    ):
        rows.append({"name": name, "pid": pid, **growth(points)})
    return rows


def distinct_checkpoints(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per checkpoint: repeated polls of one checkpoint (same duration) merged, the
    first time and the last size kept. (Results files of earlier versions hold such repeats.)"""
    out: list[dict[str, Any]] = []
    for record in records:
        if out and out[-1]["seconds"] == record["seconds"]:
            out[-1] = {
                **out[-1],
                "bytes": record["bytes"],
                "final": out[-1]["final"] or record["final"],
            }
        else:
            out.append(dict(record))
    return out


def fmt(value: float | None, spec: str = ".0f", none: str = "-") -> str:
    return (
        none
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def minute_table(run: Run) -> str:
    samples = [s for s in run.samples if not s.get("after_drain")]
    checkpoints = distinct_checkpoints(run.checkpoints)
    minutes = math.ceil((max((s["t"] for s in samples), default=0) - 0.5) / 60)
    names = [n for n in (*ACTOR_ORDER, BROKER, DRIVER) if any(n in s["memory"] for s in samples)]
    kill_t = run.recovery.kill_t
    headers = [
        "min",
        "load",
        "produced/s",
        "in/s",
        "applied/s",
        "lag",
        "dedup ids",
        *names,
        "ckpt ms",
        "ckpt KiB",
    ]
    rows = []
    prev = {"t": 0.0, "produced": 0, "consumed": 0, "applied": 0}
    for m in range(1, minutes + 1):
        inside = [s for s in samples if (m - 1) * 60 + 0.5 < s["t"] <= m * 60 + 0.5]
        if not inside:
            continue
        last = inside[-1]
        dt = max(last["t"] - prev["t"], 1e-6)
        ckpts = [
            k for k in checkpoints if (m - 1) * 60 + 0.5 < k["t"] <= m * 60 + 0.5 and not k["final"]
        ]
        rows.append(
            [
                f"{m}*" if kill_t is not None and (m - 1) * 60 < kill_t <= m * 60 else m,
                f"{max(s['load_1min'] for s in inside):.1f}",
                f"{(last['produced'] - prev['produced']) / dt:,.0f}",
                f"{(last['consumed'] - prev['consumed']) / dt:,.0f}",
                f"{(last['applied'] - prev['applied']) / dt:,.0f}",
                f"{last['lag']:,}",
                f"{last['dedup_ids_tracked']:,}",
                *[fmt(last["memory"].get(n, {}).get("rss_mib")) for n in names],
                "/".join(f"{k['seconds'] * 1000:.0f}" for k in ckpts) or "-",
                "/".join(f"{(k['bytes'] or 0) / 1024:.0f}" for k in ckpts) or "-",
            ]
        )
        prev = last
    note = (
        "RSS in MiB at the end of each minute; load = highest 1-minute load average seen; "
        "dedup ids = event ids the window actors hold for deduplication (1-hour horizon); "
        "ckpt = each checkpoint taken that minute; * = the minute window-0 was killed."
    )
    return c.markdown_table(headers, rows) + "\n\n" + note


def summarize(run: Run, seconds: float) -> dict[str, Any]:
    samples = [s for s in run.samples if not s.get("after_drain")]
    steady = [s for s in samples if s["t"] > SAMPLE_SECONDS + 1]  # skip the first interval
    drained = [s for s in run.samples if s.get("after_drain")]
    ckpts = [k for k in distinct_checkpoints(run.checkpoints) if not k["final"]]
    rec = run.recovery
    loads = [s["load_1min"] for s in samples]
    last = samples[-1] if samples else {}
    return {
        "duration_s": seconds,
        "produced_per_s_overall": (last.get("produced", 0) / last["t"]) if last else None,
        "applied_per_s_overall": (last.get("applied", 0) / last["t"]) if last else None,
        "median_produced_per_s": median([s["produced_per_s"] for s in steady]),
        "median_consumed_per_s": median([s["consumed_per_s"] for s in steady]),
        "median_applied_per_s": median([s["applied_per_s"] for s in steady]),
        "max_lag": max((s["lag"] for s in steady), default=None),
        "lag_at_end": last.get("lag"),
        "dedup_ids_at_end": last.get("dedup_ids_tracked"),
        "drain_s": drained[0]["t"] - last["t"] if drained and last else None,
        "checkpoints": len(ckpts),
        "checkpoint_ms_median": median([k["seconds"] * 1000 for k in ckpts]),
        "checkpoint_ms_max": max(k["seconds"] for k in ckpts) * 1000 if ckpts else None,
        "checkpoint_kib_first": ckpts[0]["bytes"] / 1024 if ckpts else None,
        "checkpoint_kib_last": ckpts[-1]["bytes"] / 1024 if ckpts else None,
        "checkpoint_kib_max": max(k["bytes"] for k in ckpts) / 1024 if ckpts else None,
        "recovery": {**rec.__dict__, "rolled_back": rec.rolled_back},
        "load_during_run": {
            "min": min(loads, default=None),
            "median": median(loads),
            "max": max(loads, default=None),
        },
        "rss_growth": rss_growth(samples),
    }


def report(run: Run, summary: dict[str, Any], command: str) -> None:
    a = run.args
    print(f"# Soak: {a['minutes']:g} min at {a['rate']:,.0f} events/s, kill at {a['kill_at']:g}\n")
    print(f"Command: `{command}`\n")
    print(minute_table(run))
    print()
    rec, v, load, s = summary["recovery"], run.verification, summary["load_during_run"], summary
    if rec["kill_t"] is None:
        recovery = "no kill"
    else:
        recovery = (
            f"killed at {rec['kill_t']:.0f} s; after the kill: restore began "
            f"{fmt(rec['restore_began_s'], '.1f')} s, graph restored "
            f"{fmt(rec['restored_s'], '.1f')} s, events applied again "
            f"{fmt(rec['resumed_s'], '.1f')} s, the {fmt(rec['rolled_back'], ',')} rolled-back "
            f"events re-applied {fmt(rec['regained_s'], '.1f')} s, everything produced before "
            f"the kill applied {fmt(rec['caught_up_s'], '.1f')} s"
        )
    verdict = "OK" if v.get("exactly_once") else "MISMATCH"
    lines = [
        (
            "load (1-min) during the run",
            f"min {fmt(load['min'], '.2f')}, median {fmt(load['median'], '.2f')}, "
            f"max {fmt(load['max'], '.2f')}",
        ),
        (
            "produced / applied overall",
            f"{fmt(s['produced_per_s_overall'], ',.0f')} / "
            f"{fmt(s['applied_per_s_overall'], ',.0f')} events/s",
        ),
        (
            "median over 10 s samples",
            f"produced {fmt(s['median_produced_per_s'], ',.0f')}, "
            f"consumed {fmt(s['median_consumed_per_s'], ',.0f')}, "
            f"applied {fmt(s['median_applied_per_s'], ',.0f')} events/s",
        ),
        (
            "lag (produced - applied)",
            f"max {fmt(s['max_lag'], ',')}, at the end of the run {fmt(s['lag_at_end'], ',')} "
            f"(then drained in {fmt(s['drain_s'], '.0f')} s)",
        ),
        (
            "checkpoints",
            f"{s['checkpoints']}: duration median {fmt(s['checkpoint_ms_median'])} ms, "
            f"max {fmt(s['checkpoint_ms_max'])} ms; size {fmt(s['checkpoint_kib_first'])} KiB "
            f"(first) -> {fmt(s['checkpoint_kib_last'])} KiB (last)",
        ),
        ("recovery after the kill", recovery),
        (
            "dedup ids held at the end",
            f"{s['dedup_ids_at_end'] or 0:,} across the window actors (about "
            f"{(s['dedup_ids_at_end'] or 0) * DEDUP_BYTES_PER_ID / c.MIB:.0f} MiB at "
            f"~{DEDUP_BYTES_PER_ID} bytes each; they grow until the 1-hour horizon)",
        ),
        (
            "exactly once",
            f"produced {v.get('produced', 0):,}; applied {v.get('applied_total', 0):,}; "
            f"hourly events_processed {v.get('hourly_events_processed', 0):,}; duplicates "
            f"dropped {v.get('duplicates_dropped', 0):,}, late {v.get('late_events', 0):,}: "
            f"{verdict}",
        ),
    ]
    print(c.markdown_table(["summary", "value"], lines))
    print()
    rows = []
    for g in summary["rss_growth"]:
        rows.append(
            [
                g["name"],
                g["pid"] or "-",
                f"{g['first_t']:.0f}-{g['last_t']:.0f}",
                f"{g['first_mib']:.0f} / {g['settled_mib']:.0f} / {g['last_mib']:.0f}",
                f"{g['growth_mib']:+.1f} ({g['growth_pct']:+.1f}%)",
                "flat" if abs(g["growth_pct"]) < FLAT * 100 else "GROWS",
                f"{g['settled_growth_pct']:+.1f}%",
                fmt(g["settled_slope_mib_per_min"], "+.2f"),
                f"{fmt(g['cpu_pct_first_min'])} -> {fmt(g['cpu_pct_last_min'])}",
            ]
        )
    headers = [
        "process",
        "pid",
        "seconds",
        f"MiB first / +{WARMUP_S:.0f} s / last",
        "growth first -> last",
        "< 10%",
        f"growth +{WARMUP_S:.0f} s -> last",
        "MiB/min after that",
        "CPU % of a core, first -> last min",
    ]
    print(c.markdown_table(headers, rows))
    print(
        "\nOne row per process: a restore replaces every graph actor (ingest, windows, "
        "coordinator) with a new process. The Tansu broker (memory://) keeps every message and "
        "never frees memory, so its RSS grows by design."
    )


# -- main ------------------------------------------------------------------------------------------


def load_run(path: Path) -> Run:
    """A run back from its results file."""
    raw = json.loads(path.read_text())
    saved = raw["run"]
    recovery = {
        k: v for k, v in raw["summary"]["recovery"].items() if k in Recovery.__dataclass_fields__
    }
    return Run(
        args=saved["args"],
        samples=saved["samples"],
        checkpoints=saved["checkpoints"],
        actions=saved["actions"],
        recovery=Recovery(**recovery),
        verification=raw["verification"],
        final=saved.get("final", {}),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=1000.0, help="events produced per second")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="fraction of the run at which window-0 is killed (0 or >= 1: no kill)",
    )
    parser.add_argument("--seed", type=int, default=None, help="fleet seed (default: the time)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    c.add_gc_young_threshold(parser)
    parser.add_argument(
        "--report", metavar="JSON", default=None, help="only print the tables of a saved run"
    )
    args = parser.parse_args(argv)
    if args.report:
        saved = load_run(Path(args.report))
        report(saved, summarize(saved, saved.args["minutes"] * 60), saved.args["command"])
        return 0
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv)
    seconds = args.minutes * 60
    kill_at = args.kill_at * seconds if 0 < args.kill_at < 1 else None
    seed = args.seed if args.seed is not None else int(time.time())

    load_wait = (
        {"load_1min": os.getloadavg()[0], "waited_s": 0.0, "met": None}
        if args.no_wait
        else c.wait_for_load(LOAD_BELOW, LOAD_POLL_S, LOAD_MAX_WAIT_S)
    )
    c.log(f"load wait: {load_wait}")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run = Run(args={**vars(args), "seed": seed, "command": command})
    raw: dict[str, Any] = {
        "benchmark": "soak",
        "started": stamp,
        "machine": c.machine_info(),
        "code": c.code_info(("actors", "models", "reducer", "cli", "benchmarks")),
        "load_wait": load_wait,
    }
    checkpoint_root = tempfile.mkdtemp(prefix="soak-ckpt-")
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix socket paths stay short
    broker = EmbeddedBroker()
    pipeline: TimedPipeline | None = None
    producer: FleetProducer | None = None
    status = 1
    try:
        broker.start()
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka=KafkaSettings(
                bootstrap_servers=broker.bootstrap_servers,
                topic_prefix=f"soak{tag}",
                group_id=f"soak-{tag}",
            ),
            pipeline=PipelineSettings(
                checkpoint_dir=checkpoint_root, gc_young_threshold=args.gc_young_threshold
            ),
        )
        raw["settings"] = json.loads(settings.pipeline.model_dump_json())
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            namespace=NAMESPACE,
            _temp_dir=ray_dir,
            log_to_driver=False,
        )
        pipeline = TimedPipeline(settings)
        pipeline.start()
        c.log(
            f"pipeline up (broker {broker.bootstrap_servers}); producing {args.rate:,.0f} "
            f"events/s for {args.minutes:g} min"
            + (f", killing {window_name(0)} at {kill_at:.0f} s" if kill_at else "")
        )
        producer = FleetProducer(settings.kafka, args.rate, seed)
        soak = Soak(pipeline, producer, broker.pid, run)
        producer.start()
        soak.loop(seconds, kill_at)
        produced = producer.halt()
        c.log(f"producer stopped after {produced:,} events; draining")
        soak.drain(produced)
        soak.sample()  # the state after the drain
        run.samples[-1]["after_drain"] = True
        verify(run, soak, produced, settings)
        pipeline = None  # stopped inside verify
        summary = summarize(run, seconds)
        report(run, summary, command)
        raw.update(
            {
                "run": {
                    "args": run.args,
                    "samples": run.samples,
                    "checkpoints": run.checkpoints,
                    "actions": run.actions,
                    "restore_times_s": [
                        [b - soak.began, e - soak.began] for b, e in soak.pipeline.restore_times
                    ],
                    "final": run.final,
                },
                "verification": run.verification,
                "summary": summary,
                "producer_error": producer.error,
            }
        )
        status = 0 if run.verification.get("exactly_once") else 1
    finally:
        if producer is not None and producer.is_alive():
            producer._halt.set()
        if pipeline is not None:
            try:
                pipeline.stop()
            except Exception as exc:  # already broken: still shut the rest down
                c.log(f"pipeline.stop failed: {exc}")
        if ray.is_initialized():
            ray.shutdown()
        broker.stop()
        shutil.rmtree(ray_dir, ignore_errors=True)
        shutil.rmtree(checkpoint_root, ignore_errors=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"soak-{stamp}.json"
        raw.setdefault("run", {"samples": run.samples, "checkpoints": run.checkpoints})
        raw["status"] = status
        out.write_text(json.dumps(raw, indent=1, default=str))
        c.log(f"raw samples: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())

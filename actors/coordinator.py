"""CoordinatorActor: the Ray and Kafka shell around a TickPlanner (reducer/nodes/coordinator.py).

It owns the tick thread, the intent producer, the checkpoint files and the Ray calls to the
window and ingest actors; what to publish, and what a checkpoint holds, is the planner's.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import ray

from actors import kafka
from actors.checkpoint import CheckpointStore
from actors.collector import collector_stats, settle_collector
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.nodes.checkpoint import Checkpoint, Source
from reducer.nodes.coordinator import Publication, TickPlanner, tick_wait
from reducer.nodes.history import HistoryView
from reducer.nodes.messages import Collected
from reducer.nodes.stats import CoordinatorStats, TickPhases

log = logging.getLogger(__name__)
# Rebuilding /history reads the metrics topic from its start; past this, start-up goes on with
# what was read (and says so) rather than wait on a huge uncompacted topic.
HISTORY_READ_TIMEOUT_S = 60.0


@ray.remote
class CoordinatorActor:
    def __init__(
        self,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        reducer: ReducerSettings,
        window_actors: list[Any],
        ingest_actors: list[Any],
        checkpoint_location: str,
        restored: Checkpoint | None = None,
        source: Source | None = None,
    ) -> None:
        self.kafka, self.pipeline = kafka_settings, pipeline
        self.windows, self.ingests = window_actors, ingest_actors
        self.store = CheckpointStore(checkpoint_location, pipeline.checkpoints_kept)
        self.planner = TickPlanner(kafka_settings, pipeline, reducer, restored, source)
        self.producer = kafka.make_producer(kafka_settings)
        self._releases: list[Any] = []
        """The last tick's release calls (see ``tick``)."""
        self.last_checkpoint: float | None = None
        self.last_tick: float | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        """Set by ``publish_soon`` (and ``stop``): tick now, not at the next period."""
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        if not self.planner.history:
            rebuild_history(self.kafka, self.planner.history)
        settle_collector(self.pipeline.gc_young_threshold)  # the history is long-lived
        self._thread = threading.Thread(target=self._run, name="coordinator", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        tick, counts = self.pipeline.tick_seconds, self.planner.counts
        last_checkpoint = began = time.monotonic()
        # Ticks start every tick_seconds (or back to back when one takes longer), not
        # tick_seconds after the previous one ended: ticks of 1-2.6 s at a 1 s tick would
        # otherwise make the period 2-3.6 s.
        while True:
            early = self._wake.wait(tick_wait(time.monotonic() - began, tick))
            if early:
                self._stop.wait(tick_wait(time.monotonic() - began, tick, early=True))
            if self._stop.is_set():
                break
            self._wake.clear()
            counts.early_ticks += early
            began = time.monotonic()
            try:
                self.tick()
                counts.error = None
            except Exception as exc:  # keep ticking: a broker blip must not stop publishing
                counts.error = f"{type(exc).__name__}: {exc}"
                counts.tick_errors += 1
                log.exception("coordinator tick failed")
            if time.monotonic() - last_checkpoint >= self.pipeline.checkpoint_interval_seconds:
                try:  # apart from the tick: a failing tick must not stop checkpoints
                    self.checkpoint()
                except Exception:
                    log.exception("coordinator checkpoint failed")
                last_checkpoint = time.monotonic()

    def publish_soon(self) -> None:
        """An ingest actor has read a backlog to its end and its batches are applied: tick now,
        so the output covers the backlog without waiting up to ``tick_seconds``."""
        self._wake.set()

    def checkpoint(self, final: bool = False) -> int:
        """A consistent cut: pause and drain every ingest actor, snapshot every window actor,
        write one file, then resume the ingest actors, which commit the checkpointed offsets.
        If anything fails before the write, they resume without committing. ``final`` (clean
        shutdown) publishes once more inside the cut and stops the ingest actors after commit."""
        with self._lock:
            began, counts = time.monotonic(), self.planner.counts
            written: Checkpoint | None = None
            try:
                positions = ray.get([ingest.barrier.remote() for ingest in self.ingests])
                if final:
                    self.tick()
                states = ray.get([window.checkpoint.remote() for window in self.windows])
                checkpoint = self.planner.checkpoint(positions, states, time.time())
                size = self.store.write(checkpoint)
                written = checkpoint
                self.planner.written(checkpoint)
                counts.checkpoint_error = None
                counts.last_checkpoint_bytes = size
            except Exception as exc:
                counts.checkpoint_failures += 1
                counts.checkpoint_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                commit = written.offsets if written is not None else None
                for ingest in self.ingests:
                    try:
                        ray.get(ingest.resume.remote(commit, final))
                    except Exception:  # a dead ingest actor: the supervisor restores
                        log.exception("could not resume an ingest actor")
            self.last_checkpoint = time.time()
            took = counts.last_checkpoint_seconds = time.monotonic() - began
            counts.slowest_checkpoint_seconds = max(counts.slowest_checkpoint_seconds, took)
            return written.sequence

    def tick(self) -> int:
        """Gather, merge, publish; returns how many intents were published."""
        with self._lock:
            began = time.monotonic()
            horizon = self._gather()
            gathered = time.monotonic()
            publications = self.planner.plan(horizon)
            planned = time.monotonic()
            published = publish(self.producer, self.kafka.intent_topic, self.planner, publications)
            self.planner.commit(published, horizon)
            if horizon is not None:
                # Not waited for: calls from this actor reach each window actor in order, so the
                # next collect or checkpoint runs after the release; errors surface there.
                self._releases = [window.release.remote(horizon) for window in self.windows]
            ended = time.monotonic()
            counts = self.planner.counts
            if ended - began > counts.slowest_tick_seconds:
                counts.slowest_tick_seconds = ended - began
                counts.slowest_tick_phases = TickPhases(
                    gathered - began, planned - gathered, ended - planned, len(publications)
                )
            self.last_tick = time.time()
            return len(published)

    def _gather(self) -> datetime | None:
        full = self.planner.begin()
        releases, self._releases = self._releases, []
        ray.get(releases)
        results: list[Collected] = ray.get([w.collect.remote(full) for w in self.windows])
        if self.planner.needs_full(results, full):
            results, full = ray.get([w.collect.remote(True) for w in self.windows]), True
        return self.planner.absorb(results, full)

    def recent(self, window: str, limit: int) -> list[dict[str, Any]]:
        """Most recent closed windows of a type, newest first."""
        return self.planner.history.recent(window, limit)

    def stop(self) -> CoordinatorStats:
        """Stop ticking, publish once more (the latest state of every window goes out), and take
        a final checkpoint so the ingest actors commit where they stopped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.checkpoint(final=True)
        return self.stats()

    def stats(self) -> CoordinatorStats:
        stats, now = self.planner.stats(), time.time()
        stats.seconds_since_checkpoint = _since(self.last_checkpoint, now)
        stats.seconds_since_tick = _since(self.last_tick, now)
        stats.node_id = ray.get_runtime_context().get_node_id()
        stats.gc = collector_stats()
        return stats


def _since(moment: float | None, now: float) -> float | None:
    return None if moment is None else now - moment


def publish(
    producer: Any, topic: str, planner: TickPlanner, publications: list[Publication]
) -> list[Publication]:
    """Produce the intents; those the broker acknowledged (the others are set aside by the
    planner and stay pending)."""
    records = [(topic, *p.record(), None) for p in publications]
    outcomes = kafka.produce_each(producer, records) if records else []
    published = []
    for publication, failure in zip(publications, outcomes, strict=True):
        if failure is None:
            published.append(publication)
        else:
            planner.set_aside(publication, failure)
    return published


def rebuild_history(kafka_settings: KafkaSettings, history: HistoryView) -> None:
    """Closed windows published before a restart, read back from the metrics topic."""
    topic = kafka_settings.target_topic
    try:
        complete = kafka.read_to_end(
            kafka_settings, topic, lambda m: history.absorb(m.value()), HISTORY_READ_TIMEOUT_S
        )
    except Exception:
        log.exception("could not rebuild history from %s", topic)
        return
    if not complete:
        log.warning(
            "history from %s: not read to its end within %.0f s; older windows only",
            topic,
            HISTORY_READ_TIMEOUT_S,
        )
    history.settle()

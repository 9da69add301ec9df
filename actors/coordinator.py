"""CoordinatorActor: every tick, merge window actors' partials and publish intents.

An intent (coordination topic) asks the intent executor to publish a ModelEventMetricsRecorded,
keyed by the stable window id. Finalised windows are released from the window actors only after
their intents are acknowledged by the broker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from datetime import datetime
from typing import Any

import ray

from actors import kafka
from actors.batches import Collected
from actors.checkpoint import Checkpoint, CheckpointStore
from actors.collector import collector_stats, settle_collector
from actors.names import COORDINATOR
from models.intents import ModelEventPublishIntent, ModelRetryPolicy
from models.metrics import ModelEventMetricsRecorded
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.publication import PublicationBook, WindowUpdate

log = logging.getLogger(__name__)
CORRELATION_NAMESPACE = uuid.UUID("5d0c6a43-8f0e-4d39-9a55-3f3f6c1de0a1")
# Rebuilding /history reads the metrics topic from its start; past this, start-up goes on with
# what was read (and says so) rather than wait on a huge uncompacted topic.
HISTORY_READ_TIMEOUT_S = 60.0


def correlation_id(window_id: str) -> uuid.UUID:
    """Every revision of a window shares one correlation id, so consumers can follow it."""
    return uuid.uuid5(CORRELATION_NAMESPACE, window_id)


def build_intent(
    update: WindowUpdate,
    kafka_settings: KafkaSettings,
    pipeline: PipelineSettings,
    watermark: datetime | None,
) -> ModelEventPublishIntent:
    correlation = correlation_id(update.window_id)
    event = ModelEventMetricsRecorded.from_state(
        update.metrics,
        correlation_id=correlation,
        window_id=update.window_id,
        revision=update.revision,
        is_final=update.is_final,
        watermark=watermark,
    )
    return ModelEventPublishIntent(
        correlation_id=correlation,
        created_by=COORDINATOR,
        target_topic=kafka_settings.target_topic,
        target_key=update.window_id,
        target_event_type=event.event_type,
        target_event_payload=event.model_dump(mode="json"),
        retry_policy=ModelRetryPolicy(
            max_attempts=pipeline.publish_max_attempts,
            initial_backoff_ms=int(pipeline.publish_backoff_seconds * 1000),
            backoff_multiplier=pipeline.publish_backoff_multiplier,
        ),
    )


@ray.remote
class CoordinatorActor:
    def __init__(
        self,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        reducer: ReducerSettings,
        window_actors: list[Any],
        ingest_actors: list[Any],
        checkpoint_dir: str,
        restored: Checkpoint | None = None,
    ) -> None:
        self.kafka = kafka_settings
        self.pipeline = pipeline
        self.windows = window_actors
        self.ingests = ingest_actors
        self.store = CheckpointStore(checkpoint_dir, pipeline.checkpoints_kept)
        self.book = PublicationBook(reducer, tuple(pipeline.windows))
        self._releases: list[Any] = []
        """The last tick's release calls (see ``tick``)."""
        self.synced = False
        """The book holds every window actor's changes so far (see ``_gather``)."""
        self.sequence = 0
        self.offsets: dict[tuple[str, int], int] = {}
        self.last_checkpoint: float | None = None
        self.producer = kafka.make_producer(kafka_settings)
        self.counters: Counter[str] = Counter()
        self.slowest: dict[str, float] = {"tick": 0.0, "checkpoint": 0.0}
        """Longest tick and checkpoint so far, in seconds (a tick waits for a checkpoint)."""
        self.slowest_tick_phases: dict[str, float] = {}
        """Where the longest tick spent its time: gather (collect and fold deltas), plan
        (metrics and intents), publish (produce and acknowledge)."""
        self.watermark: datetime | None = None
        self.last_tick: float | None = None
        self.error: str | None = None
        self.history: dict[str, deque[dict[str, Any]]] = {
            w.value: deque(maxlen=pipeline.history_size) for w in pipeline.windows
        }
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if restored is not None:
            # A new epoch: everything published from here ranks above what came before.
            self.book.restore(restored.revisions, restored.epoch + 1)
            self.sequence = restored.sequence
            self.offsets = dict(restored.offsets)
            for payload in restored.history:
                self._remember(payload)

    def start(self) -> bool:
        if not any(self.history.values()):
            self._rebuild_history()
        settle_collector(self.pipeline.gc_young_threshold)  # the history is long-lived
        self._thread = threading.Thread(target=self._run, name="coordinator", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        tick = self.pipeline.tick_seconds
        last_checkpoint = began = time.monotonic()
        # Ticks start every tick_seconds (or back to back when one takes longer), not
        # tick_seconds after the previous one ended: the e2e benchmark measured ticks of 1-2.6 s
        # at a 1 s tick, so sleeping a full tick afterwards made the period 2-3.6 s.
        while not self._stop.wait(max(0.0, tick - (time.monotonic() - began))):
            began = time.monotonic()
            try:
                self.tick()
                if time.monotonic() - last_checkpoint >= self.pipeline.checkpoint_interval_seconds:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
                self.error = None
            except Exception as exc:  # keep ticking: a broker blip must not stop publishing
                self.error = f"{type(exc).__name__}: {exc}"
                self.counters["tick_errors"] += 1
                log.exception("coordinator tick or checkpoint failed")

    def checkpoint(self, final: bool = False) -> int:
        """A consistent cut: pause and drain every ingest actor, snapshot every window actor,
        write one file, then resume the ingest actors, which commit the checkpointed offsets.
        If anything fails before the write, they resume without committing. ``final`` (clean
        shutdown) publishes once more inside the cut and stops the ingest actors after commit."""
        with self._lock:
            began = time.monotonic()
            written = False
            try:
                positions = ray.get([ingest.barrier.remote() for ingest in self.ingests])
                if final:
                    self.tick()
                states = ray.get([window.checkpoint.remote() for window in self.windows])
                offsets = dict(self.offsets)
                for position in positions:
                    offsets.update(position)
                history = [p for window in self.history.values() for p in window]
                checkpoint = Checkpoint(
                    sequence=self.sequence + 1,
                    epoch=self.book.epoch,
                    offsets=offsets,
                    windows=states,
                    revisions=self.book.revisions_by_id(),
                    history=history,
                    created_at=time.time(),
                )
                path = self.store.write(checkpoint)
                written = True
                self.sequence, self.offsets = checkpoint.sequence, offsets
            finally:
                commit = self.offsets if written else None
                for ingest in self.ingests:
                    try:
                        ray.get(ingest.resume.remote(commit, final))
                    except Exception:  # a dead ingest actor: the supervisor restores
                        log.exception("could not resume an ingest actor")
            self.counters["checkpoints"] += 1
            self.last_checkpoint = time.time()
            took = self.last_checkpoint_seconds = time.monotonic() - began
            self.slowest["checkpoint"] = max(self.slowest["checkpoint"], took)
            self.last_checkpoint_bytes = path.stat().st_size
            return self.sequence

    def tick(self) -> int:
        """Gather, merge, publish; returns how many intents were published."""
        with self._lock:
            began = time.monotonic()
            watermarks = self._gather()
            gathered = time.monotonic()
            horizon = None if any(w is None for w in watermarks) else min(watermarks)
            updates = self.book.plan(horizon)
            intents = [build_intent(u, self.kafka, self.pipeline, horizon) for u in updates]
            planned = time.monotonic()
            if intents:
                kafka.produce_batch(
                    self.producer,
                    self.kafka.intent_topic,
                    [(i.target_key.encode(), i.model_dump_json().encode()) for i in intents],
                )
            self.book.commit(updates)
            for update, intent in zip(updates, intents, strict=True):
                if update.is_final:
                    self._remember(intent.target_event_payload)
            if horizon is not None:
                # Not waited for: calls from this actor reach each window actor in order, so the
                # next collect or checkpoint runs after the release; errors surface there.
                self._releases = [window.release.remote(horizon) for window in self.windows]
            self.watermark = horizon
            ended = time.monotonic()
            if ended - began > self.slowest["tick"]:
                self.slowest["tick"] = ended - began
                self.slowest_tick_phases = {
                    "gather": gathered - began,
                    "plan": planned - gathered,
                    "publish": ended - planned,
                    "updates": len(updates),
                }
            self.counters["ticks"] += 1
            self.counters["intents_published"] += len(updates)
            self.counters["finals_published"] += sum(u.is_final for u in updates)
            self.last_tick = time.time()
            return len(updates)

    def _gather(self) -> list[datetime | None]:
        """Fold every window actor's changes into the book; returns their watermarks.

        Deltas after the first tick; every open window whole on the first tick, after an error
        (a collect whose answer was lost took its delta with it), or when an actor answers with
        its whole state because it started over."""
        full = not self.synced
        self.synced = False  # until this gather is folded in whole
        releases, self._releases = self._releases, []
        ray.get(releases)
        results: list[Collected] = ray.get([w.collect.remote(full) for w in self.windows])
        if not full and any(r.full is not None for r in results):
            results = ray.get([w.collect.remote(True) for w in self.windows])
            full = True
        if full:
            self.book.reset()
        for result in results:
            if result.full is not None:
                self.book.absorb_full(result.full)
            else:
                self.book.absorb_deltas(result.deltas)
        self.synced = True
        return [result.watermark for result in results]

    def _remember(self, payload: dict[str, Any]) -> None:
        history = self.history.get(payload.get("aggregation_type", ""))
        if history is not None and all(p["window_id"] != payload["window_id"] for p in history):
            history.append(payload)

    def _rebuild_history(self) -> None:
        """Closed windows published before a restart, read back from the metrics topic to its
        end (only finals are kept: one per window, the latest revision)."""
        finals: dict[str, dict[str, Any]] = {}

        def keep(message: Any) -> None:
            try:
                payload = json.loads(message.value() or b"null")
            except ValueError:  # not ours to judge here; the topic's consumers see it too
                return
            if isinstance(payload, dict) and payload.get("is_final") and "window_id" in payload:
                seen = finals.get(payload["window_id"])
                if seen is None or payload.get("revision", 0) >= seen.get("revision", 0):
                    finals[payload["window_id"]] = payload

        topic = self.kafka.target_topic
        try:
            complete = kafka.read_to_end(self.kafka, topic, keep, HISTORY_READ_TIMEOUT_S)
        except Exception:
            log.exception("could not rebuild history from %s", topic)
            return
        if not complete:
            log.warning(
                "history from %s: not read to its end within %.0f s; older windows only",
                topic,
                HISTORY_READ_TIMEOUT_S,
            )
        for payload in sorted(finals.values(), key=lambda p: p.get("window_start", "")):
            self._remember(payload)

    def recent(self, window: str, limit: int) -> list[dict[str, Any]]:
        """Most recent closed windows of a type, newest first."""
        return list(self.history.get(window, ()))[::-1][:limit]

    def stop(self) -> dict[str, Any]:
        """Stop ticking, publish once more (the latest state of every window goes out), and take
        a final checkpoint so the ingest actors commit where they stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.checkpoint(final=True)
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "open_windows": self.book.open_windows,
            "node_id": ray.get_runtime_context().get_node_id(),
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "epoch": self.book.epoch,
            "checkpoint_sequence": self.sequence,
            "seconds_since_checkpoint": (
                None if self.last_checkpoint is None else time.time() - self.last_checkpoint
            ),
            "last_checkpoint_seconds": getattr(self, "last_checkpoint_seconds", None),
            "last_checkpoint_bytes": getattr(self, "last_checkpoint_bytes", None),
            "slowest_tick_seconds": self.slowest["tick"],
            "slowest_checkpoint_seconds": self.slowest["checkpoint"],
            "slowest_tick_phases": self.slowest_tick_phases,
            "seconds_since_tick": None if self.last_tick is None else time.time() - self.last_tick,
            "gc": collector_stats(),
            "error": self.error,
        }

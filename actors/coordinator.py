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
from actors.names import COORDINATOR
from models.intents import ModelEventPublishIntent, ModelRetryPolicy
from models.metrics import ModelEventMetricsRecorded
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.publication import PublicationBook, WindowUpdate

log = logging.getLogger(__name__)
CORRELATION_NAMESPACE = uuid.UUID("5d0c6a43-8f0e-4d39-9a55-3f3f6c1de0a1")


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
    ) -> None:
        self.kafka = kafka_settings
        self.pipeline = pipeline
        self.windows = window_actors
        self.book = PublicationBook(reducer)
        self.producer = kafka.make_producer(kafka_settings)
        self.counters: Counter[str] = Counter()
        self.watermark: datetime | None = None
        self.last_tick: float | None = None
        self.error: str | None = None
        self.history: dict[str, deque[dict[str, Any]]] = {
            w.value: deque(maxlen=pipeline.history_size) for w in pipeline.windows
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        self._rebuild_history()
        self._thread = threading.Thread(target=self._run, name="coordinator", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.pipeline.tick_seconds):
            try:
                self.tick()
            except Exception as exc:  # keep ticking: a broker blip must not stop publishing
                self.error = f"{type(exc).__name__}: {exc}"
                self.counters["tick_errors"] += 1
                log.exception("coordinator tick failed")

    def tick(self) -> int:
        """Gather, merge, publish; returns how many intents were published."""
        with self._lock:
            results = ray.get([window.collect.remote() for window in self.windows])
            watermarks = []
            for index, (partials, watermark) in enumerate(results):
                self.book.absorb(index, partials)
                watermarks.append(watermark)
            horizon = None if any(w is None for w in watermarks) else min(watermarks)
            updates = self.book.plan(horizon)
            intents = [build_intent(u, self.kafka, self.pipeline, horizon) for u in updates]
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
                ray.get([window.release.remote(horizon) for window in self.windows])
            self.watermark = horizon
            self.counters["ticks"] += 1
            self.counters["intents_published"] += len(updates)
            self.counters["finals_published"] += sum(u.is_final for u in updates)
            self.last_tick = time.time()
            return len(updates)

    def _remember(self, payload: dict[str, Any]) -> None:
        history = self.history.get(payload.get("aggregation_type", ""))
        if history is not None and all(p["window_id"] != payload["window_id"] for p in history):
            history.append(payload)

    def _rebuild_history(self) -> None:
        """Closed windows published before a restart, read back from the metrics topic."""
        try:
            messages = kafka.consume_all(self.kafka, self.kafka.target_topic, None, timeout=2.0)
        except Exception:  # an empty or missing topic just means no history yet
            log.exception("could not rebuild history from %s", self.kafka.target_topic)
            return
        finals = [json.loads(m.value()) for m in messages if m.value()]
        finals = [p for p in finals if isinstance(p, dict) and p.get("is_final")]
        for payload in sorted(finals, key=lambda p: p.get("window_start", "")):
            self._remember(payload)

    def recent(self, window: str, limit: int) -> list[dict[str, Any]]:
        """Most recent closed windows of a type, newest first."""
        return list(self.history.get(window, ()))[::-1][:limit]

    def stop(self) -> dict[str, Any]:
        """Stop ticking and publish once more, so the latest state of every window goes out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.tick()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "open_windows": self.book.open_windows,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "seconds_since_tick": None if self.last_tick is None else time.time() - self.last_tick,
            "error": self.error,
        }

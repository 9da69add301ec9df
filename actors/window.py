"""WindowActor: holds hourly panes for the workflows routed to it, and event-time progress."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import ray

from actors.batches import WindowBatch
from models.settings import PipelineSettings, ReducerSettings
from reducer.panes import PaneStore, WindowKey
from reducer.watermark import WatermarkTracker


@ray.remote
class WindowActor:
    """Calls run one at a time, in the order each caller sent them, so a collect sees exactly
    the batches applied before it."""

    def __init__(self, index: int, reducer: ReducerSettings, pipeline: PipelineSettings) -> None:
        self.index = index
        self.store = PaneStore(reducer, pipeline.windows)
        self.tracker = WatermarkTracker(
            pipeline.allowed_lateness_seconds, pipeline.idle_partition_timeout_seconds
        )
        self.events_applied = 0
        self.batches_applied = 0
        self.last_batch_at: float | None = None

    def apply(self, batch: WindowBatch) -> int:
        """Fold one batch in; returns how many of its events were late (not applied)."""
        now = time.time()
        late = self.store.apply(batch.events, self.tracker.watermark(now))
        self.tracker.assign(batch.assigned, now)
        for source in batch.sources:
            self.tracker.observe((source.topic, source.partition), source.max_event_time, now)
        self.events_applied += len(batch.events) - len(late)
        self.batches_applied += 1
        self.last_batch_at = now
        return len(late)

    def collect(self) -> tuple[dict[WindowKey, bytes], datetime | None]:
        """Partials of windows changed since the last collect, and this actor's watermark."""
        return self.store.take_dirty(), self.tracker.watermark(time.time())

    def release(self, horizon: datetime) -> None:
        self.store.release(horizon)

    def snapshot(self, key: WindowKey) -> bytes:
        return self.store.partial(key).to_bytes()

    def stats(self) -> dict[str, Any]:
        watermark = self.tracker.watermark(time.time())
        return {
            "index": self.index,
            "events_applied": self.events_applied,
            "batches_applied": self.batches_applied,
            "late_events": self.store.late_events,
            "open_panes": len(self.store.panes),
            "open_rollups": len(self.store.rollups),
            "watermark": watermark.isoformat() if watermark else None,
            "last_batch_at": self.last_batch_at,
        }

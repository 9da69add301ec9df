"""WindowActor: holds hourly panes for the workflows routed to it, and event-time progress."""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import ray
from ray.util import metrics

from actors.allocator import fix_mmap_threshold
from actors.batches import Applied, Collected, WindowBatch
from actors.checkpoint import SECTION, split_sections
from actors.collector import collector_stats, settle_collector
from models.decode import decode_batch
from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow
from models.settings import PipelineSettings, ReducerSettings
from reducer.dedup import DedupFilter
from reducer.panes import PaneStore, WindowKey
from reducer.watermark import WatermarkTracker
from reducer.windows import hour_number, hour_start, window_id

HOUR = EnumMetricsWindow.HOURLY
LATE_WINDOWS_KEPT = 1000


SNAPSHOT_MAGIC = b"CMW2"


def encode_snapshot(body: dict[str, Any], dedup: DedupFilter) -> bytes:
    """A window actor's checkpoint blob: ``CMW2`` | u64 length + zlib(JSON body) | u64 length +
    the dedup ids (``DedupFilter.to_bytes``: raw uint64, random, so not compressed)."""
    header = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    ids = dedup.to_bytes()
    return b"".join(
        (SNAPSHOT_MAGIC, SECTION.pack(len(header)), header, SECTION.pack(len(ids)), ids)
    )


def decode_snapshot(blob: bytes, horizon_seconds: float) -> tuple[dict[str, Any], DedupFilter]:
    """The JSON body (store, tracker, counters) and the dedup filter of a snapshot. Also reads
    the version-1 blob (zlib JSON with base64 ids inside) of checkpoint files from before."""
    if blob[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        body = json.loads(zlib.decompress(blob))
        return body, DedupFilter.from_obj(body.pop("dedup"), horizon_seconds)
    sections = split_sections(memoryview(blob)[len(SNAPSHOT_MAGIC) :], "window snapshot")
    if len(sections) != 2:
        raise ValueError(f"window snapshot has {len(sections)} sections, not 2")
    body = json.loads(zlib.decompress(sections[0]))
    return body, DedupFilter.from_bytes(sections[1], horizon_seconds)


@ray.remote
class WindowActor:
    """Calls run one at a time, in the order each caller sent them, so a collect or a checkpoint
    sees exactly the batches applied before it."""

    def __init__(
        self,
        index: int,
        reducer: ReducerSettings,
        pipeline: PipelineSettings,
        restore: list[bytes] | None = None,
    ) -> None:
        fix_mmap_threshold()  # the dedup arrays would fragment the heap (actors/allocator.py)
        self.index = index
        self.max_future_skew_s = pipeline.max_future_skew_seconds
        self.store = PaneStore(reducer, pipeline.windows)
        self.tracker = WatermarkTracker(
            pipeline.allowed_lateness_seconds, pipeline.idle_partition_timeout_seconds
        )
        self.dedup = DedupFilter(pipeline.dedup_horizon_seconds)
        self.events_applied = 0
        self.late_by_window: Counter[str] = Counter()
        """Too-late events per hourly window id (the most recent LATE_WINDOWS_KEPT windows)."""
        self.batches_applied = 0
        self.last_batch_at: float | None = None
        self.collected = False
        for snapshot in restore or ():
            self._load(snapshot)
        settle_collector(pipeline.gc_young_threshold)  # after the restore: frozen with the rest
        # Exported to the Ray dashboard's metrics views (and Prometheus via Ray's exporter).
        self.metric_events = metrics.Counter(
            "codegen_metrics_window_events_applied", "Events folded into panes", ("actor",)
        )
        self.metric_apply_ms = metrics.Histogram(
            "codegen_metrics_window_apply_ms",
            "Time to fold one batch",
            [1, 5, 20, 100, 500],
            ("actor",),
        )
        self.metric_lag = metrics.Gauge(
            "codegen_metrics_window_lag_seconds",
            "Wall clock minus this actor's watermark",
            ("actor",),
        )
        for metric in (self.metric_events, self.metric_apply_ms, self.metric_lag):
            metric.set_default_tags({"actor": f"window-{index}"})

    def apply(self, batch: WindowBatch) -> Applied:
        """Decode and fold one batch in. Reports, by position in ``batch.values``, what could not
        be applied: messages that are not valid events (or are stamped too far in the future)
        and events too late for their window."""
        now = time.time()
        decoded = decode_batch(batch.values)
        rejects = [(r.index, r.category, r.reason) for r in decoded.rejects]
        horizon = datetime.fromtimestamp(now + self.max_future_skew_s, UTC)
        events: list[CodegenEvent] = []
        positions: dict[int, int] = {}
        progress: dict[int, datetime] = {}
        for event, index in zip(decoded.events, decoded.indices, strict=True):
            stamp = event.timestamp
            if stamp > horizon:
                reason = f"timestamp {stamp.isoformat()} is beyond the allowed skew"
                rejects.append((index, "future_timestamp", reason))
                continue
            events.append(event)
            positions[id(event)] = index
            source = batch.origins[index]
            if source not in progress or stamp > progress[source]:
                progress[source] = stamp
        hours = [hour_number(event.timestamp) for event in events]
        kept = self.dedup.admit_positions(events, hours)
        fresh = [events[i] for i in kept]
        late = self.store.apply(fresh, self.tracker.watermark(now), [hours[i] for i in kept])
        self.tracker.report(batch.assigned, batch.drained, now, batch.known, batch.batch_id[0])
        for source_index, source in enumerate(batch.sources):
            key = (source.topic, source.partition)
            self.tracker.observe(key, progress.get(source_index), now)
        self.tracker.heartbeat(now)
        applied = len(fresh) - len(late)
        self.events_applied += applied
        self.batches_applied += 1
        self.last_batch_at = now
        if applied:
            self.metric_events.inc(applied)
        self.metric_apply_ms.observe((time.time() - now) * 1000)
        for event in late:
            self.late_by_window[window_id(HOUR, hour_start(event.timestamp))] += 1
        if len(self.late_by_window) > LATE_WINDOWS_KEPT:
            for key in sorted(self.late_by_window)[: len(self.late_by_window) - LATE_WINDOWS_KEPT]:
                del self.late_by_window[key]
        too_late = [
            (positions[id(event)], f"hour {hour_start(event.timestamp).isoformat()} already closed")
            for event in late
        ]
        return Applied(
            rejects=rejects,
            late=too_late,
            duplicates=len(events) - len(fresh),
            events_by_type=dict(Counter(event.event_type for event in events)),
        )

    def collect(self, full: bool = False) -> Collected:
        """What changed since the last collect (every open window whole when ``full`` or on
        this actor's first collect), and this actor's watermark."""
        now = time.time()
        watermark = self.tracker.watermark(now)
        if watermark is not None:
            self.metric_lag.set(now - watermark.timestamp())
            self.dedup.forget_before(watermark)
        if full or not self.collected:
            self.collected = True
            return Collected(watermark, full=self.store.take_full())
        return Collected(watermark, deltas=self.store.take_deltas())

    def release(self, horizon: datetime) -> None:
        self.store.release(horizon)

    def snapshot(self, key: WindowKey) -> bytes:
        return self.store.partial(key).to_bytes()

    def checkpoint(self) -> bytes:
        """Everything this actor holds, for a consistent checkpoint (see actors/checkpoint.py)."""
        body = {
            "store": self.store.to_obj(),
            "tracker": self.tracker.to_obj(),
            "events_applied": self.events_applied,
        }
        return encode_snapshot(body, self.dedup)

    def _load(self, snapshot: bytes) -> None:
        body, restored = decode_snapshot(snapshot, self.dedup.horizon.total_seconds())
        self.store.load(body["store"])
        self.tracker.load(body["tracker"], time.time())
        self.dedup.merge(restored)
        self.events_applied += int(body["events_applied"])

    def stats(self) -> dict[str, Any]:
        watermark = self.tracker.watermark(time.time())
        return {
            "index": self.index,
            "node_id": ray.get_runtime_context().get_node_id(),
            "events_applied": self.events_applied,
            "batches_applied": self.batches_applied,
            "late_events": self.store.late_events,
            "late_by_window": dict(self.late_by_window),
            "duplicates_dropped": self.dedup.dropped,
            "dedup_ids_tracked": self.dedup.tracked,
            "open_panes": self.store.open_hours,
            "open_rollups": len(self.store.rollups),
            "watermark": watermark.isoformat() if watermark else None,
            "last_batch_at": self.last_batch_at,
            "gc": collector_stats(),
        }

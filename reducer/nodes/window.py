"""WindowNode: a window actor's state and decisions, without Ray.

Holds the hourly panes of the workflows routed to one window actor, the ids it has applied
(deduplication), and the event-time progress of every input partition (watermark). The actor
shell (actors/window.py) calls ``apply`` per batch, ``collect`` per coordinator tick and
``snapshot`` per checkpoint; ``now`` (wall-clock seconds) is always passed in.

Isolation: a batch whose fold raises is bisected (folding never changes the store until it
succeeds, see ``PaneStore.stage``), so each offending message is reported as a
``processing_error`` with the exception's type and message, and every other message is applied
exactly once. Finding k offending messages in a batch of n costs about 2k·log2(n) extra folds.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from models.bounds import EventBounds
from models.dead_letter import DeadLetterCategory, truncate_reason
from models.decode import DecodedBatch, decode_batch, unframe
from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow
from models.settings import PipelineSettings, ReducerSettings
from reducer.dedup import DedupFilter
from reducer.nodes.checkpoint import SECTION, split_sections
from reducer.nodes.messages import Applied, Collected, WindowBatch
from reducer.nodes.stats import WindowStats
from reducer.panes import PaneStore, WindowKey
from reducer.watermark import WatermarkTracker
from reducer.windows import hour_number, hour_numbers, hour_start, window_id

log = logging.getLogger(__name__)

HOUR = EnumMetricsWindow.HOURLY
LATE_WINDOWS_KEPT = 1000
"""Hourly windows whose too-late events are counted in ``WindowStats.late_by_window``."""
SNAPSHOT_MAGIC = b"CMW2"
_EVENT_TYPE = attrgetter("event_type")
Reject = tuple[int, str, str]
"""(position in the batch, dead-letter category, reason)."""


def describe(exc: BaseException) -> str:
    """An exception as a dead letter's reason: type and message, at most 1 KB."""
    return truncate_reason(f"{type(exc).__name__}: {exc}")


def encode_snapshot(body: dict[str, Any], dedup: DedupFilter) -> bytes:
    """A window node's checkpoint blob: ``CMW2`` | u64 length + zlib(JSON body) | u64 length +
    the dedup ids (``DedupFilter.to_bytes``: raw uint64, random, so not compressed)."""
    header = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    ids = dedup.to_bytes()
    return b"".join(
        (SNAPSHOT_MAGIC, SECTION.pack(len(header)), header, SECTION.pack(len(ids)), ids)
    )


def decode_snapshot(blob: bytes, horizon_seconds: float) -> tuple[dict[str, Any], DedupFilter]:
    """The JSON body (store, tracker, counters) and the dedup filter of a snapshot. Also reads
    the version-1 blob (zlib JSON with base64 ids inside) of older checkpoint files."""
    if blob[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        body = json.loads(zlib.decompress(blob))
        return body, DedupFilter.from_obj(body.pop("dedup"), horizon_seconds)
    sections = split_sections(memoryview(blob)[len(SNAPSHOT_MAGIC) :], "window snapshot")
    if len(sections) != 2:
        raise ValueError(f"window snapshot has {len(sections)} sections, not 2")
    body = json.loads(zlib.decompress(sections[0]))
    return body, DedupFilter.from_bytes(sections[1], horizon_seconds)


def isolate(
    items: Sequence[Any], attempt: Callable[[list[Any]], Any]
) -> tuple[list[Any], list[tuple[Any, BaseException]]]:
    """``[attempt(items)]``; if it raises, bisect to find the items it raises for, and return
    ``[attempt(others)]`` with those items and their exceptions.

    ``attempt`` must have no side effects when it raises. Should the others still fail
    together (a failure only some combination causes), they are tried one at a time, and the
    results are the single attempts' results."""
    try:
        return [attempt(list(items))], []
    except Exception:
        pass
    failed: list[tuple[Any, BaseException]] = []

    def search(part: list[Any]) -> None:
        try:
            attempt(part)
        except Exception as exc:
            if len(part) == 1:
                failed.append((part[0], exc))
                return
            middle = len(part) // 2
            search(part[:middle])
            search(part[middle:])

    search(list(items))
    bad = {id(item) for item, _ in failed}
    rest = [item for item in items if id(item) not in bad]
    try:
        return [attempt(rest)], failed
    except Exception:
        results = []
        for item in rest:
            try:
                results.append(attempt([item]))
            except Exception as exc:
                failed.append((item, exc))
        return results, failed


class WindowNode:
    """One window actor's panes, dedup ids and watermark. Not thread-safe: the actor runs one
    call at a time."""

    def __init__(
        self,
        index: int,
        reducer: ReducerSettings,
        pipeline: PipelineSettings,
        restore: Iterable[bytes] = (),
        now: float = 0.0,
    ) -> None:
        self.index = index
        self.bounds = EventBounds.of(pipeline)
        self.framed = pipeline.schema_registry_framing
        self.store = PaneStore(reducer, pipeline.windows)
        self.tracker = WatermarkTracker(
            pipeline.allowed_lateness_seconds, pipeline.idle_partition_timeout_seconds
        )
        self.dedup = DedupFilter(pipeline.dedup_horizon_seconds)
        self.events_applied = 0
        self.batches_applied = 0
        self.processing_errors = 0
        self.late_by_window: Counter[str] = Counter()
        self.last_batch_at: float | None = None
        self.first_applied_at: float | None = None
        self.collected = False
        self.error: str | None = None
        for blob in restore:
            self.restore(blob, now)

    # -- per batch -----------------------------------------------------------------------------

    def apply(self, batch: WindowBatch, now: float) -> Applied:
        """Decode and fold one batch in. Reports, by position in ``batch.values``, what could not
        be applied: messages that are not valid events (or are out of the domain bounds, such as
        stamped too far in the future), messages whose processing raised, and events too late
        for their window."""
        values = unframe(batch.values) if self.framed else batch.values
        decoded, rejects = self._decode(values, now)
        events = decoded.events
        progress: dict[int, datetime] = {}
        origins = batch.origins
        for event, index in zip(events, decoded.indices, strict=True):
            source, stamp = origins[index], event.timestamp
            if source not in progress or stamp > progress[source]:
                progress[source] = stamp
        events, hours, failed = self._hours(events)
        kept = self.dedup.admit_positions(events, hours)
        watermark = self.tracker.watermark(now)
        stages, failures = isolate(
            kept,
            lambda part: self.store.stage(
                [events[i] for i in part], watermark, [hours[i] for i in part]
            ),
        )
        late: list[CodegenEvent] = []
        for stage in stages:
            self.store.commit(stage)
            late += stage.late
        failed += [(events[i], exc) for i, exc in failures]
        position_of = (
            {id(event): at for event, at in zip(decoded.events, decoded.indices, strict=True)}
            if failed or late
            else {}
        )
        for event, exc in failed:
            self.processing_errors += 1
            rejects.append(
                (position_of[id(event)], DeadLetterCategory.PROCESSING_ERROR, describe(exc))
            )
        self.tracker.report(batch.assigned, batch.drained, now, batch.known, batch.batch_id[0])
        for source_index, source in enumerate(batch.sources):
            key = (source.topic, source.partition)
            self.tracker.observe(key, progress.get(source_index), now)
        self.tracker.heartbeat(now)
        applied = len(kept) - len(failures) - len(late)
        by_type = Counter(map(_EVENT_TYPE, events))
        by_type.subtract(events[i].event_type for i, _ in failures)
        self.events_applied += applied
        self.batches_applied += 1
        self.last_batch_at = now
        if applied and self.first_applied_at is None:
            self.first_applied_at = now
        self._count_late(late)
        return Applied(
            rejects=rejects,
            late=[
                (position_of[id(e)], f"hour {hour_start(e.timestamp).isoformat()} already closed")
                for e in late
            ],
            duplicates=len(events) - len(kept),
            events_by_type={t: n for t, n in by_type.items() if n},
            applied=applied,
        )

    def _decode(self, values: list[bytes], now: float) -> tuple[DecodedBatch, list[Reject]]:
        """The batch decoded, and its rejects as (position, category, reason). Decoding never
        raises by contract; should it all the same (a bug some message triggers), the messages
        are decoded one by one and each one that raises is a ``processing_error``, so the same
        message can never fail its batch again and again at the same offset."""
        try:
            decoded = decode_batch(values, self.bounds, now)
            return decoded, [(r.index, r.category, r.reason) for r in decoded.rejects]
        except Exception:
            log.exception("window-%d: a batch failed to decode; decoding one by one", self.index)
        events: list[CodegenEvent] = []
        indices: list[int] = []
        rejects: list[Reject] = []
        for index, value in enumerate(values):
            try:
                one = decode_batch([value], self.bounds, now)
            except Exception as exc:
                self.processing_errors += 1
                rejects.append((index, DeadLetterCategory.PROCESSING_ERROR, describe(exc)))
                continue
            events += one.events
            indices += [index] * len(one.events)
            rejects += [(index, r.category, r.reason) for r in one.rejects]
        return DecodedBatch(events, indices, []), rejects

    @staticmethod
    def _hours(
        events: list[CodegenEvent],
    ) -> tuple[list[CodegenEvent], list[int], list[tuple[CodegenEvent, Exception]]]:
        """The events whose hour number can be computed, their hour numbers, and the others."""
        try:
            return events, hour_numbers([e.timestamp for e in events]), []
        except Exception:
            pass
        kept, hours, failed = [], [], []
        for event in events:
            try:
                hours.append(hour_number(event.timestamp))
                kept.append(event)
            except Exception as exc:
                failed.append((event, exc))
        return kept, hours, failed

    def _count_late(self, late: list[CodegenEvent]) -> None:
        for event in late:
            self.late_by_window[window_id(HOUR, hour_start(event.timestamp))] += 1
        excess = len(self.late_by_window) - LATE_WINDOWS_KEPT
        if excess > 0:
            for key in sorted(self.late_by_window)[:excess]:
                del self.late_by_window[key]

    # -- per tick ------------------------------------------------------------------------------

    def collect(self, now: float, full: bool = False) -> Collected:
        """What changed since the last collect (every open window whole when ``full`` or on
        this node's first collect), and this node's watermark."""
        watermark = self.tracker.watermark(now)
        if watermark is not None:
            self.dedup.forget_before(watermark)
        if full or not self.collected:
            self.collected = True
            return Collected(watermark, full=self.store.take_whole())
        return Collected(watermark, deltas=self.store.take_deltas())

    def release(self, horizon: datetime) -> None:
        """Windows ending at or before ``horizon`` have been published as final."""
        self.store.release(horizon)

    def partial(self, key: WindowKey) -> bytes:
        """This node's share of one window, encoded (for /snapshot)."""
        return self.store.partial(key).to_bytes()

    # -- checkpoints ---------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything this node holds, for a consistent checkpoint."""
        body = {
            "store": self.store.to_obj(),
            "tracker": self.tracker.to_obj(),
            "events_applied": self.events_applied,
        }
        return encode_snapshot(body, self.dedup)

    def restore(self, blob: bytes, now: float) -> None:
        """Merge a snapshot in (one node may take several: states are mergeable partials)."""
        body, restored = decode_snapshot(blob, self.dedup.horizon.total_seconds())
        self.store.load(body["store"])
        self.tracker.load(body["tracker"], now)
        self.dedup.merge(restored)
        self.events_applied += int(body["events_applied"])

    def stats(self, now: float) -> WindowStats:
        watermark = self.tracker.watermark(now)
        return WindowStats(
            index=self.index,
            events_applied=self.events_applied,
            batches_applied=self.batches_applied,
            late_events=self.store.late_events,
            late_by_window=dict(self.late_by_window),
            processing_errors=self.processing_errors,
            duplicates_dropped=self.dedup.dropped,
            dedup_ids_tracked=self.dedup.tracked,
            open_panes=self.store.open_hours,
            open_rollups=len(self.store.rollups),
            watermark=watermark.isoformat() if watermark else None,
            last_batch_at=self.last_batch_at,
            first_applied_at=self.first_applied_at,
            error=self.error,
        )

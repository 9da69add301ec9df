"""Duplicate event ids within the horizon count once; memory is bounded by the horizon."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

from reducer.dedup import DedupFilter
from tests.datasets import completed, stage

HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)


def test_a_repeated_event_id_is_admitted_once_even_within_one_batch() -> None:
    first = stage(timestamp=HOUR0)
    again = first.model_copy()
    other = stage(timestamp=HOUR0)
    dedup = DedupFilter(3600)
    assert dedup.admit([first, again, other]) == [first, other]
    assert dedup.admit([first.model_copy()]) == []
    assert dedup.dropped == 2


def test_ids_older_than_the_horizon_behind_the_watermark_are_forgotten() -> None:
    dedup = DedupFilter(3600)
    old = completed(timestamp=HOUR0)
    dedup.admit([old, completed(timestamp=HOUR0 + timedelta(hours=3))])
    dedup.forget_before(HOUR0 + timedelta(hours=2))
    assert dedup.tracked == 1
    assert dedup.admit([old.model_copy()]) == [old]  # beyond the horizon: no longer known


def test_checkpointed_ids_round_trip() -> None:
    dedup = DedupFilter(3600)
    events = [stage(timestamp=HOUR0 + timedelta(minutes=i)) for i in range(50)]
    dedup.admit(events)
    restored = DedupFilter.from_obj(dedup.to_obj(), 3600)
    assert restored.admit([e.model_copy() for e in events]) == []
    assert restored.dropped == 50


def test_memory_is_bounded_by_the_horizon_and_measured_per_id() -> None:
    n = 100_000
    events = [
        stage(
            event_id=uuid.UUID(int=i * 2654435761 + 12345),
            timestamp=HOUR0 + timedelta(seconds=i % 3600),
        )
        for i in range(n)
    ]
    tracemalloc.start()
    dedup = DedupFilter(3600)
    for start in range(0, n, 1000):
        dedup.admit(events[start : start + 1000])
    held = tracemalloc.get_traced_memory()[0]
    dedup.forget_before(HOUR0 + timedelta(hours=3))
    released = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert dedup.tracked == 0
    per_id = held / n
    assert per_id < 120, f"{per_id:.0f} bytes per tracked id"
    assert released < held / 10

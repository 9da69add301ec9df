"""Duplicate event ids within the horizon count once; memory is bounded by the horizon."""

from __future__ import annotations

import base64
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reducer.dedup as dedup_module
from reducer.dedup import DedupFilter, id_key
from reducer.windows import hour_start
from tests.datasets import completed, stage

HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)
TEMPLATE = stage(timestamp=HOUR0)


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
    restored = DedupFilter.from_bytes(dedup.to_bytes(), 3600)
    assert restored.admit([e.model_copy() for e in events]) == []
    assert restored.dropped == 50


def test_the_version_1_form_still_loads() -> None:
    """Checkpoint version 1 held ``{"dropped", "hours": {iso hour: base64 native uint64}}``."""
    ids = [5, 1, 2**64 - 1]
    obj = {
        "dropped": 3,
        "hours": {
            HOUR0.isoformat(): base64.b64encode(np.array(ids, dtype=np.uint64).tobytes()).decode()
        },
    }
    dedup = DedupFilter.from_obj(obj, 3600)
    assert dedup.dropped == 3
    assert {h: a.tolist() for h, a in dedup.hours().items()} == {HOUR0: sorted(ids)}
    again = [TEMPLATE.model_copy(update={"event_id": uuid.UUID(int=i)}) for i in (*ids, 7)]
    assert [e.event_id.int for e in dedup.admit(again)] == [7]


def test_malformed_bytes_are_refused() -> None:
    dedup = DedupFilter(3600)
    dedup.admit_keys(np.array([3, 1, 2], dtype=np.uint64), [10, 10, 11])
    data = dedup.to_bytes()
    for bad in (data[:-1], data + b"\0", b"XXXX" + data[4:], data[:10]):
        with pytest.raises(ValueError):
            DedupFilter.from_bytes(bad, 3600)
    unsorted = bytearray(data)
    unsorted[-24:-8] = np.array([9, 4], dtype="<u8").tobytes()  # hour 10: two ids, swapped
    with pytest.raises(ValueError, match="sorted"):
        DedupFilter.from_bytes(bytes(unsorted), 3600)


# -- property: the same answers as a dict of sets ----------------------------------------------


class Reference:
    """The obvious implementation: a set of ids per hour."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon
        self.hours: dict[datetime, set[int]] = {}
        self.dropped = 0

    def admit(self, events: list) -> list:
        fresh = []
        for event in events:
            seen = self.hours.setdefault(hour_start(event.timestamp), set())
            if id_key(event) in seen:
                self.dropped += 1
            else:
                seen.add(id_key(event))
                fresh.append(event)
        return fresh

    def forget_before(self, watermark: datetime) -> None:
        cutoff = watermark - self.horizon
        for hour in [h for h in self.hours if h + timedelta(hours=1) <= cutoff]:
            del self.hours[hour]


@contextmanager
def fold_often(min_recent: int, factor: int) -> Iterator[None]:
    """Smaller recent-id thresholds, so a few ids exercise the merge into the big array."""
    saved = dedup_module.MIN_RECENT, dedup_module.RECENT_FACTOR
    dedup_module.MIN_RECENT, dedup_module.RECENT_FACTOR = min_recent, factor
    try:
        yield
    finally:
        dedup_module.MIN_RECENT, dedup_module.RECENT_FACTOR = saved


# Small id pools so batches repeat ids, also near the top of the 64-bit range (sign trouble).
ids = st.one_of(st.integers(0, 40), st.integers(2**64 - 8, 2**64 - 1), st.integers(0, 2**64 - 1))
offsets = st.integers(-90, 5 * 60 + 30)  # minutes from HOUR0: several hours, some before it
batch = st.lists(st.tuples(ids, offsets), max_size=30)
step = st.one_of(
    st.tuples(st.just("admit"), batch),
    st.tuples(st.just("forget"), st.integers(-60, 8 * 60)),
    st.tuples(st.just("round trip"), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step, max_size=25),
    horizon_minutes=st.sampled_from([0, 30, 60, 150]),
    thresholds=st.sampled_from([(4096, 128), (0, 0), (2, 1), (3, 0)]),
)
def test_matches_a_set_per_hour(steps: list, horizon_minutes: int, thresholds: tuple) -> None:
    horizon = horizon_minutes * 60
    with fold_often(*thresholds):
        dedup = DedupFilter(horizon)
        reference = Reference(timedelta(seconds=horizon))
        for kind, arg in steps:
            if kind == "admit":
                events = [
                    TEMPLATE.model_copy(
                        update={
                            "event_id": uuid.UUID(int=key),
                            "timestamp": HOUR0 + timedelta(minutes=minute, seconds=7),
                        }
                    )
                    for key, minute in arg
                ]
                got = dedup.admit(events)
                want = reference.admit(events)
                assert [id(e) for e in got] == [id(e) for e in want]
            elif kind == "forget":
                dedup.forget_before(HOUR0 + timedelta(minutes=arg))
                reference.forget_before(HOUR0 + timedelta(minutes=arg))
            else:
                dedup = DedupFilter.from_bytes(dedup.to_bytes(), horizon)
            assert dedup.dropped == reference.dropped
            assert dedup.tracked == sum(len(s) for s in reference.hours.values())
        held = {h: ids.tolist() for h, ids in dedup.hours().items() if len(ids)}
        assert held == {h: sorted(s) for h, s in reference.hours.items() if s}


@settings(max_examples=100, deadline=None)
@given(
    left=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2)), max_size=40),
    right=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2)), max_size=40),
)
def test_merging_filters_is_the_union(left: list, right: list) -> None:
    """Restoring several actors' checkpoints into one actor: the union of their ids."""
    a, b = DedupFilter(3600), DedupFilter(3600)
    for dedup, pairs in ((a, left), (b, right)):
        if pairs:
            keys, hours = zip(*pairs, strict=True)
            dedup.admit_keys(np.array(keys, dtype=np.uint64), list(hours))
    dropped = a.dropped + b.dropped
    a.merge(b)
    assert a.dropped == dropped
    union = {(k, h) for k, h in left} | {(k, h) for k, h in right}
    assert a.tracked == len(union)
    assert not a.admit_keys(
        np.array([k for k, _ in union], dtype=np.uint64), [h for _, h in union]
    ).any()


# -- memory --------------------------------------------------------------------------------------


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
    assert per_id < 20, f"{per_id:.1f} bytes per tracked id"
    assert released < held / 10


def test_a_million_ids_take_under_20_bytes_each() -> None:
    """1M random ids over two hours, in batches of 500; numpy's
    buffers are traced by tracemalloc, so ``held`` is the whole cost, arrays and objects."""
    n, size = 1_000_000, 500
    keys = np.random.default_rng(5).integers(0, 2**64, size=n, dtype=np.uint64)
    hours = [500_000 + (i * 2) // n for i in range(n)]
    tracemalloc.start()
    dedup = DedupFilter(3600)
    for start in range(0, n, size):
        dedup.admit_keys(keys[start : start + size], hours[start : start + size])
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert dedup.tracked == len(np.unique(keys))  # (a repeat among 1M random ids: ~3e-8)
    assert dedup.nbytes / n < 8.5
    assert held / n < 20, f"{held / n:.1f} bytes per id"
    assert peak / n < 40, f"peak {peak / n:.1f} bytes per id"

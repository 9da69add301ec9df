"""Checkpoint sections from hostile or damaged files: the dedup ids, the watermark and the panes.

``DedupFilter.from_bytes`` / ``from_obj``, ``WatermarkTracker.load`` and ``PaneStore.load`` must
raise ValueError, and nothing else, for anything their writers could not have produced; the
loads must leave the object as it was when they raise.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.metrics import EnumMetricsWindow
from models.settings import ReducerSettings
from reducer.dedup import DedupFilter
from reducer.panes import PaneStore
from reducer.state import AggregationState
from reducer.watermark import WatermarkTracker
from tests.datasets import mixed_events, stage
from tests.unit.reducer.test_codec_hostile import paths

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)
WINDOWS = tuple(EnumMetricsWindow)
SETTINGS = ReducerSettings()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        ["2026-10-01T00:00:00+00:00", "2026-10-01T00:00:00", "9999-12-31T23:00:00+00:00"]
    ),
)
json_ish = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["panes", "rollups", "late_events", "partitions", "current", "dropped"])
            | st.text(max_size=10),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def mutated(data: st.DataObject, original: Any) -> Any:
    """``original`` with one position replaced by a JSON-ish value, or dropped."""
    value = copy.deepcopy(original)
    path = data.draw(st.sampled_from(paths(original)))
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_ish)
    return value


# -- dedup ---------------------------------------------------------------------------------------


def dedup_with_ids() -> DedupFilter:
    dedup = DedupFilter(3600)
    dedup.admit([stage(timestamp=HOUR0 + timedelta(hours=h)) for h in range(3) for _ in range(5)])
    return dedup


@FUZZ
@given(data=st.binary(max_size=300))
def test_dedup_from_random_bytes_raises_only_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        DedupFilter.from_bytes(b"DDP1" + data, 3600)


@FUZZ
@given(data=st.data())
def test_dedup_from_bytes_with_one_changed_byte_raises_only_value_error_or_reads(
    data: st.DataObject,
) -> None:
    original = bytearray(dedup_with_ids().to_bytes())
    position = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    original[position] = data.draw(st.integers(min_value=0, max_value=255))

    try:
        dedup = DedupFilter.from_bytes(bytes(original), 3600)
    except ValueError:
        return
    dedup.hours()  # every hour is a datetime


@pytest.mark.parametrize(
    "hour",
    [-(2**63), 2**63 - 1, 10**12],
    ids=["min", "max", "beyond-9999"],
)
def test_dedup_hours_no_datetime_can_start_are_refused(hour: int) -> None:
    data = struct.pack("<4sQI", b"DDP1", 0, 1) + struct.pack("<qQ", hour, 1) + bytes(8)

    with pytest.raises(ValueError, match="outside the years"):
        DedupFilter.from_bytes(data, 3600)


def test_dedup_from_a_non_buffer_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not bytes"):
        DedupFilter.from_bytes("DDP1", 3600)  # type: ignore[arg-type]


def test_dedup_from_a_huge_declared_count_raises_before_allocating() -> None:
    data = struct.pack("<4sQI", b"DDP1", 0, 1) + struct.pack("<qQ", 0, 2**60)

    with pytest.raises(ValueError, match="wrong length"):
        DedupFilter.from_bytes(data, 3600)


def version_1_dedup() -> dict:
    ids = np.array([3, 1, 2], dtype="<u8").tobytes()
    return {"dropped": 4, "hours": {HOUR0.isoformat(): base64.b64encode(ids).decode()}}


@FUZZ
@given(data=st.data())
def test_dedup_from_a_mutated_version_1_object_raises_only_value_error_or_reads(
    data: st.DataObject,
) -> None:
    obj = mutated(data, version_1_dedup())

    try:
        dedup = DedupFilter.from_obj(obj, 3600)
    except ValueError:
        return
    assert dedup.tracked >= 0


@FUZZ
@given(obj=json_ish)
def test_dedup_from_any_json_ish_object_raises_only_value_error_or_reads(obj: Any) -> None:
    with contextlib.suppress(ValueError):
        DedupFilter.from_obj(obj, 3600)


def test_two_spellings_of_one_dedup_hour_keep_the_ids_of_both() -> None:
    def b64(*ids: int) -> str:
        return base64.b64encode(np.array(ids, dtype="<u8").tobytes()).decode()

    obj = {
        "dropped": 0,
        "hours": {"2026-10-01T00:00:00+00:00": b64(1, 2), "2026-10-01T02:00:00+02:00": b64(3)},
    }

    dedup = DedupFilter.from_obj(obj, 3600)

    assert dedup.hours()[HOUR0].tolist() == [1, 2, 3]


# -- watermark -----------------------------------------------------------------------------------


def loaded_tracker() -> WatermarkTracker:
    tracker = WatermarkTracker(allowed_lateness_s=60, idle_timeout_s=30)
    tracker.observe(("topic", 0), HOUR0, 100.0)
    tracker.observe(("topic", 1), HOUR0 + timedelta(minutes=5), 100.0)
    tracker.report([("topic", 0), ("topic", 1)], [("topic", 0), ("topic", 1)], 100.0)
    assert tracker.watermark(100.0) is not None
    return tracker


def assert_loads_or_leaves_unchanged(tracker: WatermarkTracker, obj: Any) -> None:
    before = json.dumps(tracker.to_obj())
    try:
        tracker.load(obj, 200.0)
    except ValueError:
        assert json.dumps(tracker.to_obj()) == before
        return
    tracker.watermark(200.0)  # a loaded tracker still works


@FUZZ
@given(data=st.data())
def test_a_mutated_watermark_state_loads_or_raises_value_error_changing_nothing(
    data: st.DataObject,
) -> None:
    obj = mutated(data, loaded_tracker().to_obj())

    assert_loads_or_leaves_unchanged(loaded_tracker(), obj)


@FUZZ
@given(obj=json_ish)
def test_any_json_ish_watermark_state_loads_or_raises_value_error(obj: Any) -> None:
    assert_loads_or_leaves_unchanged(loaded_tracker(), obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"partitions": [["t", 0, "2026-10-01T00:00:00"]], "current": None},
        {"partitions": [], "current": "2026-10-01T00:00:00"},
        {"partitions": [["t", True, None]], "current": None},
        {"partitions": [["t", 2**31, None]], "current": None},
        {"partitions": [["t", 0.0, None]], "current": None},
    ],
    ids=["naive-partition-time", "naive-current", "bool-partition", "huge-partition", "float"],
)
def test_watermark_states_our_writer_never_makes_are_refused(obj: dict) -> None:
    with pytest.raises(ValueError):
        loaded_tracker().load(obj, 200.0)


# -- panes ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_obj() -> dict:
    store = PaneStore(SETTINGS, WINDOWS)
    store.apply(mixed_events(60, seed=5, start=HOUR0), None)
    store.release(HOUR0 + timedelta(hours=2))
    obj = store.to_obj()
    assert obj["panes"] and obj["rollups"]
    return obj


def fresh_store() -> PaneStore:
    store = PaneStore(SETTINGS, WINDOWS)
    store.apply(mixed_events(20, seed=6, start=HOUR0), None)
    return store


def assert_store_loads_or_is_unchanged(obj: Any) -> None:
    store = fresh_store()
    before = json.dumps(store.to_obj(), sort_keys=True)
    try:
        store.load(obj)
    except ValueError:
        assert json.dumps(store.to_obj(), sort_keys=True) == before
        return
    store.take_whole()  # a loaded store still works


@FUZZ
@given(data=st.data())
def test_a_mutated_pane_store_loads_or_raises_value_error_changing_nothing(
    store_obj: dict, data: st.DataObject
) -> None:
    assert_store_loads_or_is_unchanged(mutated(data, store_obj))


@FUZZ
@given(obj=json_ish)
def test_any_json_ish_pane_store_loads_or_raises_value_error(obj: Any) -> None:
    assert_store_loads_or_is_unchanged(obj)


def test_a_pane_built_with_other_settings_is_refused_not_merged(store_obj: dict) -> None:
    other = AggregationState(ReducerSettings(max_workflows=3)).add_batch(
        mixed_events(10, seed=7, start=HOUR0)
    )
    obj = dict(store_obj)
    obj["panes"] = {HOUR0.isoformat(): base64.b64encode(other.to_bytes()).decode()}

    with pytest.raises(ValueError, match="other reducer settings"):
        fresh_store().load(obj)


@pytest.mark.parametrize(
    ("window", "start"),
    [
        ("hourly", "2026-10-01T00:30:00+00:00"),
        ("daily", "2026-10-01T05:00:00+00:00"),
        ("monthly", "2026-10-02T00:00:00+00:00"),
        ("hourly", "9999-12-31T23:00:00+00:00"),  # its end is past datetime.max
        ("monthly", "9999-12-01T00:00:00+00:00"),
        ([], "2026-10-01T00:00:00+00:00"),
        ("hourly", "2026-10-01T00:00:00"),
        ("yearly", "2026-01-01T00:00:00+00:00"),
    ],
)
def test_a_roll_up_that_does_not_start_a_window_is_refused(
    store_obj: dict, window: Any, start: str
) -> None:
    obj = dict(store_obj)
    obj["rollups"] = [[window, start, store_obj["rollups"][0][2]]]

    with pytest.raises(ValueError):
        fresh_store().load(obj)

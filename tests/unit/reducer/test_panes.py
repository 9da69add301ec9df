"""PaneStore: hourly panes rolled up into day, week and month by merging; late events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer.aggregator import MetricsAggregator
from reducer.panes import PaneStore, WindowKey
from reducer.publication import PublicationBook
from reducer.state import AggregationState
from reducer.windows import hour_number, hour_start, window_bounds
from tests.datasets import completed, failed, mixed_events, started

HOURLY, DAILY, WEEKLY, MONTHLY = (
    EnumMetricsWindow.HOURLY,
    EnumMetricsWindow.DAILY,
    EnumMetricsWindow.WEEKLY,
    EnumMetricsWindow.MONTHLY,
)
ALL_WINDOWS = (HOURLY, DAILY, WEEKLY, MONTHLY)
SETTINGS = ReducerSettings()
#: Run-dependent fields of a ModelMetricsState: identity, creation time and timing.
VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}
#: Sunday 22:00 -> Monday 03:00 crosses a day and an ISO week; 31 March 21:00 -> 1 April 02:00
#: crosses a day and a month.
SUNDAY_NIGHT = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
MONTH_END = datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
TEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def comparable(metrics: ModelMetricsState) -> dict[str, Any]:
    return metrics.model_dump(exclude=VOLATILE)


def key_of(timestamp: datetime, window: EnumMetricsWindow) -> WindowKey:
    return window, window_bounds(timestamp, window)[0]


def metrics_of(state: AggregationState, key: WindowKey) -> dict[str, Any]:
    window, start = key
    return comparable(state.to_metrics(window, *window_bounds(start, window)))


def whole_windows(panes: PaneStore) -> dict[WindowKey, AggregationState]:
    """The windows a coordinator that starts over rebuilds from the store's whole share."""
    book = PublicationBook(SETTINGS, panes.windows)
    book.absorb_whole(panes.take_whole())
    return book.states


def events_by_window(
    events: Iterable[CodegenEvent], windows: Iterable[EnumMetricsWindow]
) -> dict[WindowKey, list[CodegenEvent]]:
    grouped: dict[WindowKey, list[CodegenEvent]] = defaultdict(list)
    for event in events:
        for window in windows:
            grouped[key_of(event.timestamp, window)].append(event)
    return grouped


def one_pass(events: list[CodegenEvent], window: EnumMetricsWindow) -> dict[str, Any]:
    return comparable(MetricsAggregator.aggregate_events(events, window, SETTINGS))


def store(windows: Iterable[EnumMetricsWindow] = ALL_WINDOWS) -> PaneStore:
    return PaneStore(SETTINGS, windows)


@pytest.fixture(scope="module")
def events() -> list[CodegenEvent]:
    """Five hours across a day and week boundary, five more across a day and month boundary."""
    return mixed_events(240, seed=1, start=SUNDAY_NIGHT) + mixed_events(
        240, seed=2, start=MONTH_END
    )


def test_events_land_in_the_pane_of_their_hour() -> None:
    panes = store()
    panes.apply(
        [
            started(timestamp=TEN),
            completed(timestamp=TEN + timedelta(minutes=59, seconds=59)),
            failed(timestamp=TEN + timedelta(hours=1)),
        ],
        watermark=None,
    )

    assert sorted(panes.panes) == [TEN, TEN + timedelta(hours=1)]
    assert panes.panes[TEN].events_processed == 2
    assert panes.panes[TEN + timedelta(hours=1)].events_processed == 1
    assert panes.rollups == {}


def test_an_event_counts_in_one_window_per_configured_window_type() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN + timedelta(minutes=5))], watermark=None)

    assert set(whole_windows(panes)) == {
        (HOURLY, TEN),
        (DAILY, datetime(2026, 3, 2, tzinfo=UTC)),
        (WEEKLY, datetime(2026, 3, 2, tzinfo=UTC)),  # a Monday
        (MONTHLY, datetime(2026, 3, 1, tzinfo=UTC)),
    }


def test_only_the_configured_window_types_are_rebuilt_from_the_whole_share() -> None:
    panes = store([DAILY, MONTHLY])
    panes.apply([started(timestamp=TEN), started(timestamp=TEN + timedelta(hours=3))], None)

    assert set(whole_windows(panes)) == {
        (DAILY, datetime(2026, 3, 2, tzinfo=UTC)),
        (MONTHLY, datetime(2026, 3, 1, tzinfo=UTC)),
    }
    assert len(panes.panes) == 2  # events are still held per hour


def test_the_whole_state_holds_the_windows_of_every_event_applied(
    events: list[CodegenEvent],
) -> None:
    panes = store()
    panes.apply(events, watermark=None)

    full = whole_windows(panes)

    assert set(full) == set(events_by_window(events, ALL_WINDOWS))
    assert not any(state.is_empty for state in full.values())


def test_take_deltas_returns_each_changed_hour_once_and_then_only_new_changes() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)
    first = panes.take_deltas()

    assert panes.take_deltas() == {}

    panes.apply([started(timestamp=TEN + timedelta(hours=1))], None)
    second = panes.take_deltas()

    assert list(first) == [TEN]
    assert list(second) == [TEN + timedelta(hours=1)]


def test_a_delta_holds_only_the_events_applied_since_the_last_take() -> None:
    panes = store([DAILY])
    panes.apply([started(timestamp=TEN)], None)
    panes.take_deltas()
    panes.apply([started(timestamp=TEN), failed(timestamp=TEN)], None)
    panes.partial((DAILY, datetime(2026, 3, 2, tzinfo=UTC)))  # a read in between changes nothing

    (data,) = panes.take_deltas().values()

    assert AggregationState.from_bytes(data).events_processed == 2
    assert panes.panes[TEN].events_processed == 3


def test_deltas_continue_from_a_whole_take() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)
    panes.take_deltas()
    panes.apply([started(timestamp=TEN)], None)

    panes.take_whole()  # holds both events, so no delta may repeat the second
    assert panes.take_deltas() == {}

    panes.apply([failed(timestamp=TEN)], None)
    (data,) = panes.take_deltas().values()
    assert AggregationState.from_bytes(data).events_processed == 1


@pytest.mark.parametrize("window", ALL_WINDOWS, ids=lambda w: w.value)
def test_merged_deltas_equal_the_whole_window(
    events: list[CodegenEvent], window: EnumMetricsWindow
) -> None:
    """What the coordinator rebuilds from deltas, batch after batch, is the actor's partial."""
    panes = store([window])
    merged: dict[WindowKey, AggregationState] = defaultdict(lambda: AggregationState(SETTINGS))
    for start in range(0, len(events), 37):
        panes.apply(events[start : start + 37], watermark=None)
        for hour, data in panes.take_deltas().items():
            merged[key_of(hour, window)].merge_in(AggregationState.from_bytes(data))

    full = {key: panes.partial(key) for key in merged}

    assert set(merged) == set(events_by_window(events, [window]))
    for key, state in full.items():  # same metrics; bytes may differ with the merge order
        assert metrics_of(merged[key], key) == metrics_of(state, key)


@pytest.mark.parametrize("window", ALL_WINDOWS, ids=lambda w: w.value)
def test_the_partial_of_a_window_equals_aggregating_its_events_in_one_pass(
    events: list[CodegenEvent], window: EnumMetricsWindow
) -> None:
    panes = store([window])
    for start in range(0, len(events), 37):  # several batches, as the ingest sends them
        panes.apply(events[start : start + 37], watermark=None)

    full = whole_windows(panes)
    expected = events_by_window(events, [window])

    assert set(full) == set(expected)
    assert len(full) >= 2  # every window type spans a boundary in this data set
    for key, state in full.items():
        assert metrics_of(state, key) == one_pass(expected[key], window)
        assert metrics_of(panes.partial(key), key) == one_pass(expected[key], window)


def test_the_partial_of_a_day_is_the_merge_of_its_hours(events: list[CodegenEvent]) -> None:
    panes = store()
    panes.apply(events, None)
    day = key_of(SUNDAY_NIGHT + timedelta(hours=3), DAILY)  # Monday 00:00-03:00

    hours = [pane for hour, pane in panes.panes.items() if day[1] <= hour < day[1] + timedelta(1)]
    merged = AggregationState(SETTINGS)
    for pane in hours:
        merged.merge_in(pane)

    assert len(hours) == 3
    assert metrics_of(panes.partial(day), day) == metrics_of(merged, day)


def test_the_partial_of_a_window_without_events_is_empty() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)

    assert panes.partial((HOURLY, TEN + timedelta(hours=1))).is_empty
    assert panes.partial((DAILY, datetime(2026, 3, 3, tzinfo=UTC))).is_empty


def test_release_folds_closed_hours_into_rollups_and_open_partials_stay_identical(
    events: list[CodegenEvent],
) -> None:
    panes = store()
    panes.apply(events, None)
    keys = set(events_by_window(events, ALL_WINDOWS))
    before = {key: metrics_of(panes.partial(key), key) for key in keys}
    # Every hour end with events, and every window end: each step closes something.
    horizons = sorted(
        {hour + timedelta(hours=1) for hour in panes.panes}
        | {window_bounds(start, window)[1] for window, start in keys}
    )

    for horizon in horizons:
        panes.release(horizon)
        assert all(hour + timedelta(hours=1) > horizon for hour in panes.panes)
        for key in keys:
            window, start = key
            if window_bounds(start, window)[1] > horizon:  # still open: unchanged by release
                assert metrics_of(panes.partial(key), key) == before[key], (key, horizon)


def test_the_whole_share_after_releases_rebuilds_every_open_window_exactly(
    events: list[CodegenEvent],
) -> None:
    panes = store()
    panes.apply(events, watermark=None)
    hours = sorted({hour_start(e.timestamp) for e in events})
    panes.release(hours[len(hours) // 2])  # closed hours now live in roll-ups only
    assert panes.rollups

    rebuilt = whole_windows(panes)

    expected = {
        key: group
        for key, group in events_by_window(events, ALL_WINDOWS).items()
        if window_bounds(key[1], key[0])[1] > hours[len(hours) // 2]
    }
    assert set(rebuilt) == set(expected)
    for key, state in rebuilt.items():
        assert metrics_of(state, key) == one_pass(expected[key], key[0]), key


def test_release_moves_a_closed_hour_into_the_rollups_of_its_open_windows() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN), started(timestamp=TEN + timedelta(hours=1))], None)

    panes.release(TEN + timedelta(hours=1))

    assert list(panes.panes) == [TEN + timedelta(hours=1)]
    assert set(panes.rollups) == {
        (DAILY, datetime(2026, 3, 2, tzinfo=UTC)),
        (WEEKLY, datetime(2026, 3, 2, tzinfo=UTC)),
        (MONTHLY, datetime(2026, 3, 1, tzinfo=UTC)),
    }
    assert all(rollup.events_processed == 1 for rollup in panes.rollups.values())


def test_release_drops_the_rollups_of_closed_windows(events: list[CodegenEvent]) -> None:
    panes = store()
    panes.apply(events, None)
    monday = datetime(2026, 3, 2, tzinfo=UTC)

    panes.release(monday)  # Sunday and the week ending that Monday are closed

    assert not any(window_bounds(s, w)[1] <= monday for w, s in panes.rollups)
    assert (DAILY, monday - timedelta(days=1)) not in panes.rollups
    assert (WEEKLY, monday - timedelta(days=7)) not in panes.rollups
    assert (MONTHLY, datetime(2026, 3, 1, tzinfo=UTC)) in panes.rollups

    april = datetime(2026, 4, 1, tzinfo=UTC)
    panes.release(april)

    assert not any(window_bounds(s, w)[1] <= april for w, s in panes.rollups)
    assert (MONTHLY, datetime(2026, 3, 1, tzinfo=UTC)) not in panes.rollups


def test_releasing_past_every_window_leaves_no_panes_and_no_rollups(
    events: list[CodegenEvent],
) -> None:
    panes = store()
    panes.apply(events, None)

    panes.release(datetime(2026, 5, 1, tzinfo=UTC))

    assert panes.panes == {}
    assert panes.rollups == {}


def test_release_neither_makes_nor_forgets_a_delta() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)
    panes.take_deltas()
    panes.release(TEN + timedelta(hours=1))

    assert panes.take_deltas() == {}

    panes.apply([started(timestamp=TEN + timedelta(hours=1))], None)
    panes.release(TEN + timedelta(hours=2))

    assert list(panes.take_deltas()) == [TEN + timedelta(hours=1)]


def test_events_of_an_hour_that_ended_at_or_before_the_watermark_are_late_and_not_applied() -> None:
    panes = store()
    watermark = TEN + timedelta(hours=1)
    on_time = started(timestamp=TEN + timedelta(hours=1))
    late = [started(timestamp=TEN), completed(timestamp=TEN + timedelta(minutes=59, seconds=59))]

    returned = panes.apply([late[0], on_time, late[1]], watermark)

    assert returned == late
    assert panes.late_events == 2
    assert list(panes.panes) == [TEN + timedelta(hours=1)]
    assert panes.panes[TEN + timedelta(hours=1)].events_processed == 1
    assert list(panes.take_deltas()) == [TEN + timedelta(hours=1)]


def test_an_event_before_the_watermark_in_a_still_open_hour_is_on_time() -> None:
    panes = store()

    late = panes.apply(
        [started(timestamp=TEN + timedelta(minutes=10))], TEN + timedelta(minutes=30)
    )

    assert late == []
    assert panes.late_events == 0
    assert panes.panes[TEN].events_processed == 1


def test_without_a_watermark_no_event_is_late() -> None:
    panes = store()

    assert panes.apply([started(timestamp=datetime(2020, 1, 1, tzinfo=UTC))], None) == []
    assert panes.late_events == 0


def test_late_events_are_counted_across_batches() -> None:
    panes = store()
    watermark = TEN + timedelta(hours=5)
    panes.apply([started(timestamp=TEN)] * 3, watermark)
    panes.apply([failed(timestamp=TEN + timedelta(hours=2))], watermark)

    assert panes.late_events == 4
    assert panes.panes == {}


def test_a_late_event_never_changes_a_released_window() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)
    panes.take_deltas()
    day_end = datetime(2026, 3, 3, tzinfo=UTC)
    panes.release(day_end)

    late = panes.apply([completed(timestamp=TEN + timedelta(hours=3))], watermark=day_end)

    assert len(late) == 1
    day = (DAILY, datetime(2026, 3, 2, tzinfo=UTC))
    assert panes.partial(day).is_empty
    assert panes.take_deltas() == {}


def test_events_behind_the_watermark_in_an_open_hour_are_applied_and_counted_as_late_arrivals() -> (
    None
):
    from datetime import UTC, datetime, timedelta

    from models.metrics import EnumMetricsWindow
    from models.settings import ReducerSettings
    from reducer.panes import PaneStore
    from tests.datasets import completed

    hour = datetime(2026, 10, 1, 13, tzinfo=UTC)
    store = PaneStore(ReducerSettings(), [EnumMetricsWindow.HOURLY])
    watermark = hour + timedelta(minutes=30)
    early = completed(timestamp=hour + timedelta(minutes=10))
    on_time = completed(timestamp=hour + timedelta(minutes=40))
    assert store.apply([early, on_time], watermark) == []
    metrics = store.partial((EnumMetricsWindow.HOURLY, hour)).to_metrics()
    assert metrics.successful_generations == 2
    assert metrics.late_events == 1


@pytest.mark.parametrize("window", ALL_WINDOWS, ids=lambda w: w.value)
def test_deltas_past_every_key_cap_merge_into_the_one_pass_result(
    events: list[CodegenEvent], window: EnumMetricsWindow
) -> None:
    """Deltas start under their pane's bars (keys the pane would refuse fold up front); with
    caps this small most keys fold, and the coordinator's merge must still equal one pass."""
    tiny = ReducerSettings(max_workflows=4, max_keys_per_breakdown=2)
    panes = PaneStore(tiny, [window])
    merged: dict[WindowKey, AggregationState] = defaultdict(lambda: AggregationState(tiny))
    for start in range(0, len(events), 23):
        panes.apply(events[start : start + 23], watermark=None)
        for hour, data in panes.take_deltas().items():
            merged[key_of(hour, window)].merge_in(AggregationState.from_bytes(data))

    expected = events_by_window(events, [window])
    assert set(merged) == set(expected)
    for key, state in merged.items():
        one = comparable(MetricsAggregator.aggregate_events(expected[key], window, tiny))
        assert metrics_of(state, key) == one, key
        assert metrics_of(panes.partial(key), key) == one, key


def test_counting_open_hours_neither_folds_nor_changes_the_next_delta() -> None:
    panes = store()
    panes.apply([started(timestamp=TEN)], None)
    panes.take_deltas()
    panes.apply([started(timestamp=TEN), started(timestamp=TEN + timedelta(hours=1))], None)

    assert panes.open_hours == 2
    assert panes._fresh  # still pending: counting did not fold them
    assert sorted(panes.take_deltas()) == [TEN, TEN + timedelta(hours=1)]


def test_hours_given_by_the_caller_place_events_as_their_timestamps_do(
    events: list[CodegenEvent],
) -> None:
    computed, given = store(), store()
    computed.apply(events, watermark=None)
    given.apply(events, None, [hour_number(e.timestamp) for e in events])

    assert sorted(given.panes) == sorted({hour_start(e.timestamp) for e in events})
    assert {h: p.to_bytes() for h, p in given.panes.items()} == {
        h: p.to_bytes() for h, p in computed.panes.items()
    }
    with pytest.raises(ValueError):
        store().apply(events, None, [hour_number(events[0].timestamp)])


def test_only_events_before_the_watermark_count_as_late_arrivals_across_hours() -> None:
    watermark = TEN + timedelta(minutes=30)
    panes = store([EnumMetricsWindow.HOURLY])
    panes.apply(
        [
            completed(timestamp=TEN + timedelta(minutes=10)),  # behind it: a late arrival
            completed(timestamp=TEN + timedelta(minutes=30)),  # at it: on time
            completed(timestamp=TEN + timedelta(hours=1, minutes=5)),  # next hour
        ],
        watermark,
    )

    assert panes.panes[TEN].late_arrivals == 1
    assert panes.panes[TEN + timedelta(hours=1)].late_arrivals == 0

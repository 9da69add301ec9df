"""Calendar-aligned UTC windows, and hourly panes rolled up by merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from models import EnumMetricsWindow
from reducer import AggregationState, MetricsAggregator, window_bounds, window_id
from reducer.windows import (
    hour_number,
    hour_numbers,
    hour_of_number,
    hour_start,
    parse_window_id,
)
from tests.datasets import mixed_events

H, D, W, M = (
    EnumMetricsWindow.HOURLY,
    EnumMetricsWindow.DAILY,
    EnumMetricsWindow.WEEKLY,
    EnumMetricsWindow.MONTHLY,
)
VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "timestamp", "start", "end"),
    [
        (H, utc(2026, 3, 2, 10, 15, 30, 5), utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)),
        (H, utc(2026, 3, 2, 10), utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)),
        (H, utc(2026, 3, 2, 23, 59, 59, 999999), utc(2026, 3, 2, 23), utc(2026, 3, 3)),
        (D, utc(2026, 3, 2, 10, 15), utc(2026, 3, 2), utc(2026, 3, 3)),
        (D, utc(2026, 12, 31, 23, 59), utc(2026, 12, 31), utc(2027, 1, 1)),
        (W, utc(2026, 3, 2, 0, 0), utc(2026, 3, 2), utc(2026, 3, 9)),  # a Monday
        (W, utc(2026, 3, 8, 23, 59), utc(2026, 3, 2), utc(2026, 3, 9)),  # its Sunday
        (W, utc(2026, 3, 4, 12), utc(2026, 3, 2), utc(2026, 3, 9)),  # Wednesday
        (W, utc(2027, 1, 1, 12), utc(2026, 12, 28), utc(2027, 1, 4)),  # across the year
        (M, utc(2026, 3, 17, 8), utc(2026, 3, 1), utc(2026, 4, 1)),
        (M, utc(2026, 3, 1), utc(2026, 3, 1), utc(2026, 4, 1)),
        (M, utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1)),  # December
        (M, utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),  # leap February
        (M, utc(2026, 2, 28, 12), utc(2026, 2, 1), utc(2026, 3, 1)),  # common February
        (M, utc(2026, 1, 31, 12), utc(2026, 1, 1), utc(2026, 2, 1)),
    ],
)
def test_window_bounds_are_calendar_aligned(
    window: EnumMetricsWindow, timestamp: datetime, start: datetime, end: datetime
) -> None:
    assert window_bounds(timestamp, window) == (start, end)


@pytest.mark.parametrize("window", list(EnumMetricsWindow))
def test_a_timestamp_lies_in_its_half_open_window(window: EnumMetricsWindow) -> None:
    moment = utc(2026, 7, 15, 13, 45)

    start, end = window_bounds(moment, window)

    assert start <= moment < end
    assert window_bounds(start, window) == (start, end)
    assert window_bounds(end, window)[0] == end
    assert window_bounds(end - timedelta(microseconds=1), window) == (start, end)


def test_weekly_windows_start_on_the_iso_monday() -> None:
    for day in range(1, 32):
        start, end = window_bounds(utc(2026, 1, day, 6), W)
        assert start.isoweekday() == 1
        assert (start.hour, start.minute) == (0, 0)
        assert end - start == timedelta(days=7)
        assert start.isocalendar()[:2] == utc(2026, 1, day, 6).isocalendar()[:2]


def test_naive_timestamps_are_taken_as_utc() -> None:
    assert window_bounds(datetime(2026, 3, 2, 10, 15), H) == (
        utc(2026, 3, 2, 10),
        utc(2026, 3, 2, 11),
    )


def test_offset_timestamps_are_placed_by_their_utc_instant() -> None:
    moment = datetime(2026, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 22:30 UTC on 1st

    start, end = window_bounds(moment, D)

    assert (start, end) == (utc(2026, 3, 1), utc(2026, 3, 2))
    assert start.tzinfo == UTC


def test_window_ids_name_the_type_and_the_utc_start() -> None:
    assert window_id(H, utc(2026, 11, 27, 20)) == "hourly:2026-11-27T20:00:00Z"
    moment = datetime(2026, 11, 27, 22, tzinfo=timezone(timedelta(hours=2)))
    assert window_id(D, moment) == "daily:2026-11-27T20:00:00Z"


@pytest.mark.parametrize(("window", "seconds"), [(H, 3600), (D, 86400), (W, 604800), (M, 2592000)])
def test_get_window_seconds_keeps_the_contract_nominal_values(
    window: EnumMetricsWindow, seconds: int
) -> None:
    assert window.get_window_seconds() == seconds


@pytest.mark.parametrize("target", [D, W, M])
def test_hourly_panes_rolled_up_by_merging_equal_the_direct_aggregate(
    target: EnumMetricsWindow,
) -> None:
    # 600 events over ~5 hours, crossing midnight at the end of a month and a week (Sun->Mon).
    events = mixed_events(600, seed=4, start=utc(2026, 5, 31, 21))
    hourly = MetricsAggregator.window_states(events, H)
    assert len(hourly) >= 5

    rolled: dict[tuple[datetime, datetime], AggregationState] = {}
    for (start, _), pane in hourly.items():
        bounds = window_bounds(start, target)
        rolled[bounds] = rolled.get(bounds, AggregationState()).merge(pane)
    direct = MetricsAggregator.aggregate_windows(events, target)

    assert len(direct) == len(rolled) == 2
    for result, (bounds, state) in zip(direct, sorted(rolled.items()), strict=True):
        expected = state.to_metrics(target, *bounds).model_dump(exclude=VOLATILE)
        assert result.model_dump(exclude=VOLATILE) == expected


def _floor_to_hour(timestamp: datetime) -> datetime:
    """The obvious definition: the UTC instant with minutes and below cut off."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1)),
    st.one_of(
        st.none(),
        st.integers(min_value=-23 * 60, max_value=23 * 60).map(
            lambda m: timezone(timedelta(minutes=m))
        ),
    ),
)
def test_hour_start_and_hour_number_floor_to_the_utc_hour(
    naive: datetime, zone: timezone | None
) -> None:
    timestamp = naive.replace(tzinfo=zone)
    expected = _floor_to_hour(timestamp)
    assert hour_start(timestamp) == expected
    assert hour_start(timestamp).tzinfo is UTC
    assert hour_of_number(hour_number(timestamp)) == expected
    assert hour_number(timestamp) == (expected - utc(1970, 1, 1)) // timedelta(hours=1)


@pytest.mark.parametrize(
    "timestamp",
    [
        utc(2026, 10, 1),
        utc(2026, 10, 1) - timedelta(microseconds=1),
        utc(2026, 10, 1, 0, 59, 59, 999_999),
        utc(1969, 12, 31, 23, 30),
        datetime(2026, 10, 1, 5, 30),  # naive: UTC
        datetime.fromisoformat("2026-10-01T05:30:00+05:30"),
    ],
)
def test_hour_start_at_the_edges_of_an_hour(timestamp: datetime) -> None:
    assert hour_start(timestamp) == _floor_to_hour(timestamp)


@pytest.mark.parametrize(
    ("window", "start", "expected"),
    [
        (H, datetime(999, 6, 1, 7, tzinfo=UTC), "hourly:0999-06-01T07:00:00Z"),
        (D, datetime(2026, 3, 2, tzinfo=UTC), "daily:2026-03-02T00:00:00Z"),
        (M, datetime(1, 1, 1, tzinfo=UTC), "monthly:0001-01-01T00:00:00Z"),
    ],
)
def test_window_ids_have_four_digit_years_and_parse_back(window, start, expected) -> None:
    assert window_id(window, start) == expected
    assert parse_window_id(expected) == (window, start)


@pytest.mark.parametrize(
    "text",
    [
        "daily:999-06-01T00:00:00Z",  # the unpadded year an older writer produced
        "daily:2026-03-02T00:00:00",
        "daily:2026-03-02T00:00:00Z ",
        "daily:2026-03-02T10:00:00Z",  # not the start of a day
        "weekly:2026-03-03T00:00:00Z",  # a Tuesday
        "yearly:2026-01-01T00:00:00Z",
        "hourly:2026-13-01T00:00:00Z",
        "hourly:２０２６-03-02T10:00:00Z",  # noqa: RUF001 - full-width digits are not ASCII digits
        "",
    ],
)
def test_parse_window_id_refuses_anything_window_id_does_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window_id(text)


def test_hour_numbers_agree_with_whole_hours_since_the_epoch_at_any_offset() -> None:
    def reference(t: datetime) -> int:  # seconds since the epoch, floored to hours
        aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        return int(aware.timestamp() // 3600)

    stamps = [
        datetime(2026, 11, 2, 0, 0, 0, 930304, tzinfo=UTC),
        datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2000, 2, 29, 12, 30),  # naive: UTC
        datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
    ]
    # pydantic's own aware datetimes, as decoded events carry them
    parsed = TypeAdapter(list[datetime]).validate_python(
        ["2026-03-29T01:59:59.5Z", "2026-03-29T02:00:00+00:00", "2031-01-01T00:00:00Z"]
    )
    utc = stamps + parsed
    assert hour_numbers(utc) == [reference(t) for t in utc]
    shifted = [
        datetime(2026, 11, 2, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 11, 2, 0, 30, tzinfo=timezone(timedelta(hours=-3))),
        *TypeAdapter(list[datetime]).validate_python(["2026-11-02T00:10:00-01:00"]),
    ]
    mixed = utc + shifted
    assert hour_numbers(mixed) == [reference(t) for t in mixed]
    assert hour_numbers([]) == []

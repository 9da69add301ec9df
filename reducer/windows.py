"""Calendar-aligned UTC windows: which window a timestamp belongs to, and its stable id."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter

from models.metrics import EnumMetricsWindow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_HOUR = timedelta(hours=1)


def window_bounds(timestamp: datetime, window: EnumMetricsWindow) -> tuple[datetime, datetime]:
    """[start, end) of the window holding ``timestamp``.

    Hourly at the top of the hour, daily at midnight, weekly at Monday 00:00 (ISO week), monthly
    at the 1st of the calendar month. Naive timestamps are taken as UTC.
    """
    hour = hour_start(timestamp)
    if window is EnumMetricsWindow.HOURLY:
        return hour, hour + timedelta(hours=1)
    day = hour.replace(hour=0)
    if window is EnumMetricsWindow.DAILY:
        return day, day + timedelta(days=1)
    if window is EnumMetricsWindow.WEEKLY:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def window_keys(
    hour: datetime, windows: Iterable[EnumMetricsWindow]
) -> list[tuple[EnumMetricsWindow, datetime]]:
    """(window type, start) of every window of ``windows`` that holds the hour starting at
    ``hour``: where an hour's events count."""
    return [(window, window_bounds(hour, window)[0]) for window in windows]


def window_id(window: EnumMetricsWindow, start: datetime) -> str:
    """Stable key of a window, e.g. ``hourly:2026-11-27T20:00:00Z``: ISO 8601 with a 4-digit
    year (``strftime('%Y')`` would write year 999 as ``999``, which no parser reads back)."""
    t = start.astimezone(UTC)
    return (
        f"{window.value}:{t.year:04d}-{t.month:02d}-{t.day:02d}"
        f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"
    )


_WINDOW_ID = re.compile(r"([a-z]+):(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z", re.ASCII)


def parse_window_id(value: str) -> tuple[EnumMetricsWindow, datetime]:
    """Inverse of window_id; raises ValueError for anything window_id does not write."""
    match = _WINDOW_ID.fullmatch(value)
    if match is None:
        raise ValueError(f"not a window id: {value[:80]!r}")
    window = EnumMetricsWindow(match[1])
    start = datetime(*map(int, match.groups()[1:]), tzinfo=UTC)
    if window_bounds(start, window)[0] != start:
        raise ValueError(f"{value!r} is not the start of a {window.value} window")
    return window, start


def hour_number(timestamp: datetime) -> int:
    """Whole UTC hours since the epoch (naive timestamps are UTC): the hourly window's number.

    Exact integer arithmetic, and cheaper per event than building the hour's datetime, which
    ``hour_of_number`` does once per hour instead."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return (timestamp - _EPOCH) // _ONE_HOUR


_EPOCH_HOUR = _EPOCH.toordinal() * 24
_HOUR_OF_DAY = attrgetter("hour")


def hour_numbers(timestamps: list[datetime]) -> list[int]:
    """``hour_number`` of each timestamp. When every one is at UTC (or naive), the day ordinal
    and hour read in C-level passes: 0.25 us a timestamp where hour_number takes 0.57 (pydantic's
    aware datetimes make each subtraction ask their tzinfo); any other offset takes the exact
    arithmetic of ``hour_number``."""
    if any(map(datetime.utcoffset, timestamps)):  # a non-zero offset somewhere
        return [hour_number(t) for t in timestamps]
    days, hours = map(datetime.toordinal, timestamps), map(_HOUR_OF_DAY, timestamps)
    return [day * 24 + hour - _EPOCH_HOUR for day, hour in zip(days, hours, strict=True)]


@lru_cache(maxsize=4096)
def hour_of_number(number: int) -> datetime:
    """Start (UTC) of the hourly window numbered ``number`` by ``hour_number``."""
    return _EPOCH + number * _ONE_HOUR


def hour_start(timestamp: datetime) -> datetime:
    """Start of the hourly window holding ``timestamp``."""
    return hour_of_number(hour_number(timestamp))

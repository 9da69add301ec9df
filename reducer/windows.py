"""Calendar-aligned UTC windows: which window a timestamp belongs to, and its stable id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from models.metrics import EnumMetricsWindow


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
    """Stable key of a window, e.g. ``hourly:2026-11-27T20:00:00Z``."""
    return f"{window.value}:{start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def parse_window_id(value: str) -> tuple[EnumMetricsWindow, datetime]:
    """Inverse of window_id."""
    window, _, start = value.partition(":")
    return EnumMetricsWindow(window), datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )


def hour_start(timestamp: datetime) -> datetime:
    """Start of the hourly window holding ``timestamp`` (per event on the hot path, so it skips
    window_bounds' dispatch: enum member access alone cost more than the arithmetic)."""
    if timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=UTC, minute=0, second=0, microsecond=0)
    return timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

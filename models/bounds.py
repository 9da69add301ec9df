"""Domain bounds of input events: values a real code generator can emit, and nothing else.

The event models (models/events.py) accept what the original producers send; these bounds keep
the values that would break arithmetic or publish nonsense out of the aggregates. An event that
breaks one is dead-lettered with category ``out_of_range`` and a reason naming the field.

- ``timestamp``: from ``MIN_TIMESTAMP`` (2000-01-01T00:00:00Z) to now +
  ``max_future_skew_seconds`` (category ``future_timestamp`` beyond it). Windows are calendar
  hours of plausible times; year 1 overflows the hour arithmetic.
- integers (``total_tokens``, ``retry_count``, ``retry_after_seconds``,
  ``estimated_duration_seconds``): magnitude at most ``MAX_INT`` (2**53), exact in a double, so
  every published number is the integer counted.
- ``duration_seconds``, ``total_duration_seconds``, ``partial_duration_seconds``: at most
  ``max_duration_seconds`` (default 7 days).
- ``total_cost_usd``: at most ``max_cost_usd`` (default 10,000 USD) per generation, so a sum of
  many stays finite and one typo does not dwarf a month.
- ``complexity_score``: magnitude at most ``MAX_COMPLEXITY`` (1e12), so its mean stays finite.

Numeric timestamps are Unix seconds (a JSON number, integer or fractional), never milliseconds:
``1.7e12`` is beyond the year 9999 and refused (``invalid_field``), never read as 2023
(``models.events.EVENT_CONFIG`` sets pydantic's ``val_temporal_unit``). Strings are ISO 8601 /
RFC 3339; without an offset they are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

from models.events import EVENT_TYPES

OUT = "out_of_range"
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_INT = 2**53
MAX_COMPLEXITY = 1e12
DEFAULT_MAX_DURATION_SECONDS = 7 * 24 * 3600.0
DEFAULT_MAX_COST_USD = 10_000.0

INT_FIELDS = frozenset(
    ("total_tokens", "retry_count", "retry_after_seconds", "estimated_duration_seconds")
)
DURATION_FIELDS = frozenset(
    ("duration_seconds", "total_duration_seconds", "partial_duration_seconds")
)
BOUNDED_FIELDS: dict[str, tuple[str, ...]] = {
    "CODEGEN_STARTED": ("estimated_duration_seconds",),
    "CODEGEN_STAGE_COMPLETED": ("duration_seconds",),
    "CODEGEN_COMPLETED": (
        "total_duration_seconds",
        "total_tokens",
        "total_cost_usd",
        "complexity_score",
    ),
    "CODEGEN_FAILED": ("partial_duration_seconds", "retry_count", "retry_after_seconds"),
}
"""The bounded numeric fields of each event type."""
OPTIONAL_FIELDS = frozenset(("complexity_score", "retry_after_seconds"))
SIGNED_FIELDS = frozenset(("complexity_score", "estimated_duration_seconds"))
"""Bounded fields the models do not already bound below by 0."""
_GETTERS = {name: attrgetter(name) for names in BOUNDED_FIELDS.values() for name in names}
_TIMESTAMP = attrgetter("timestamp")
_CLASS_FIELDS = {cls: BOUNDED_FIELDS[tag] for tag, cls in EVENT_TYPES.items()}


@dataclass(frozen=True, slots=True)
class EventBounds:
    """The configurable bounds (``PipelineSettings``) plus the fixed ones above."""

    max_future_skew_seconds: float = 300.0
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    max_cost_usd: float = DEFAULT_MAX_COST_USD

    @classmethod
    def of(cls, settings: Any) -> EventBounds:
        """From any settings object with the three fields (``PipelineSettings``)."""
        return cls(
            settings.max_future_skew_seconds, settings.max_duration_seconds, settings.max_cost_usd
        )

    def horizon(self, now: float) -> datetime:
        """The latest acceptable timestamp at wall-clock ``now`` (Unix seconds)."""
        return datetime.fromtimestamp(now, UTC) + timedelta(seconds=self.max_future_skew_seconds)

    def violations(self, events: Sequence[Any], now: float) -> list[tuple[str, str] | None]:
        """Per event, (category, reason) if it is out of range at wall-clock ``now``, else None.

        Checks the whole batch first with a few C-level passes (min and max of each bounded
        column, per event type): about 0.2 us an event, where one Python check per event cost
        0.75 us; only a batch holding a violation is checked event by event."""
        horizon = self.horizon(now)
        if not events or self._within(events, horizon):
            return [None] * len(events)
        return [self.violation(event, horizon) for event in events]

    def _within(self, events: Sequence[Any], horizon: datetime) -> bool:
        stamps = list(map(_TIMESTAMP, events))
        if min(stamps) < MIN_TIMESTAMP or max(stamps) > horizon:
            return False
        groups: dict[type, list[Any]] = {cls: [] for cls in _CLASS_FIELDS}
        append = {cls: group.append for cls, group in groups.items()}
        for event in events:
            append[event.__class__](event)
        for cls, group in groups.items():
            if not group:
                continue
            for name in _CLASS_FIELDS[cls]:
                values = map(_GETTERS[name], group)
                if name in OPTIONAL_FIELDS:
                    values = [v for v in values if v is not None]
                    if not values:
                        continue
                if name in SIGNED_FIELDS:  # the models bound the others below by 0
                    values = list(values)
                    if min(values) < -self._limit(name):
                        return False
                if max(values) > self._limit(name):
                    return False
        return True

    def _limit(self, name: str) -> float:
        if name in INT_FIELDS:
            return MAX_INT
        if name in DURATION_FIELDS:
            return self.max_duration_seconds
        if name == "total_cost_usd":
            return self.max_cost_usd
        return MAX_COMPLEXITY

    def violation(self, event: Any, horizon: datetime) -> tuple[str, str] | None:
        """(category, reason) if ``event`` is out of range (``horizon`` from
        ``self.horizon(now)``), else None. The reason starts with the field's name."""
        stamp = event.timestamp
        if not MIN_TIMESTAMP <= stamp <= horizon:
            if stamp < MIN_TIMESTAMP:
                return OUT, f"timestamp: {stamp.isoformat()} is before {MIN_TIMESTAMP.isoformat()}"
            return "future_timestamp", (
                f"timestamp: {stamp.isoformat()} is more than {self.max_future_skew_seconds:g} s "
                "ahead of now (max_future_skew_seconds)"
            )
        for name in BOUNDED_FIELDS[event.event_type]:
            value = getattr(event, name)
            if value is None:
                continue
            if name in INT_FIELDS:
                if not -MAX_INT <= value <= MAX_INT:
                    return OUT, f"{name}: magnitude 2**{abs(value).bit_length() - 1} or more"
            elif name in DURATION_FIELDS:
                if value > self.max_duration_seconds:
                    return OUT, (
                        f"{name}: {value:.6g} s exceeds max_duration_seconds "
                        f"({self.max_duration_seconds:g})"
                    )
            elif name == "total_cost_usd":
                if value > self.max_cost_usd:
                    return OUT, f"{name}: {value:.6g} exceeds max_cost_usd ({self.max_cost_usd:g})"
            elif abs(value) > MAX_COMPLEXITY:
                return OUT, f"{name}: {value:.6g} has a magnitude above {MAX_COMPLEXITY:g}"
        return None

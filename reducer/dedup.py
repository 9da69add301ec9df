"""Producer-side duplicates: an event_id seen twice within a horizon of event time counts once.

Ids are kept per hour of event time (64 bits of the UUID in a Python set, about 70 bytes each)
and forgotten when the hour falls behind ``watermark - horizon``, so memory is bounded by the
event rate times the horizon. An orchestrator retry re-sends an event with its original
timestamp, so the duplicate lands in the same hour as the first copy.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np

from models.events import CodegenEvent
from reducer.windows import hour_start

_MASK = (1 << 64) - 1


def id_key(event: CodegenEvent) -> int:
    """64 bits of the event id: both UUID halves folded (collision odds ~n^2 / 2^65)."""
    value = event.event_id.int
    return ((value >> 64) ^ value) & _MASK


class DedupFilter:
    __slots__ = ("dropped", "horizon", "hours")

    def __init__(self, horizon_seconds: float) -> None:
        self.horizon = timedelta(seconds=horizon_seconds)
        self.hours: dict[datetime, set[int]] = {}
        self.dropped = 0

    def admit(self, events: Sequence[CodegenEvent]) -> list[CodegenEvent]:
        """The events not seen before (first copy wins, also within the batch)."""
        fresh: list[CodegenEvent] = []
        for event in events:
            hour = hour_start(event.timestamp)
            seen = self.hours.get(hour)
            if seen is None:
                seen = self.hours[hour] = set()
            key = id_key(event)
            if key in seen:
                self.dropped += 1
                continue
            seen.add(key)
            fresh.append(event)
        return fresh

    def forget_before(self, watermark: datetime) -> None:
        """Drop ids of hours wholly older than ``watermark - horizon``."""
        cutoff = watermark - self.horizon
        for hour in [h for h in self.hours if h + timedelta(hours=1) <= cutoff]:
            del self.hours[hour]

    @property
    def tracked(self) -> int:
        return sum(len(ids) for ids in self.hours.values())

    def to_obj(self) -> dict:
        return {
            "dropped": self.dropped,
            "hours": {
                hour.isoformat(): base64.b64encode(
                    np.fromiter(ids, dtype=np.uint64, count=len(ids)).tobytes()
                ).decode()
                for hour, ids in self.hours.items()
            },
        }

    @classmethod
    def from_obj(cls, obj: dict, horizon_seconds: float) -> DedupFilter:
        dedup = cls(horizon_seconds)
        dedup.dropped = int(obj["dropped"])
        for hour, data in obj["hours"].items():
            ids: Iterable[int] = np.frombuffer(base64.b64decode(data), dtype=np.uint64).tolist()
            dedup.hours[datetime.fromisoformat(hour)] = set(ids)
        return dedup

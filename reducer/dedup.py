"""Producer-side duplicates: an event_id seen twice within a horizon of event time counts once.

Ids are 64 bits of the UUID, kept per hour of event time and forgotten when the hour falls
behind ``watermark - horizon``, so memory is bounded by the event rate times the horizon. An
orchestrator retry re-sends an event with its original timestamp, so the duplicate lands in the
same hour as the first copy.

Storage is numpy, about 8 bytes per id: each hour holds a sorted array of unique ``uint64`` ids
plus a smaller sorted array of recent ones, merged into the big one when it outgrows
``sqrt(128 * big)`` ids (so a batch copies a small array, and the big one is rewritten once every
few thousand ids). A batch is checked with ``np.searchsorted`` against both arrays at once; no
Python work is done per id except computing the key. ``to_bytes`` writes the arrays' raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from models.events import CodegenEvent
from reducer.windows import hour_number, hour_numbers, hour_of_number

_MASK = (1 << 64) - 1
_IDS = np.dtype("<u8")  # little-endian on disk and in memory (a no-op on x86 and arm64)
_EMPTY = np.empty(0, dtype=_IDS)
MIN_RECENT = 4096
RECENT_FACTOR = 128
"""Recent ids are merged into an hour's big array (of n ids) past
``max(MIN_RECENT, sqrt(RECENT_FACTOR * n))`` of them: a batch then copies about that many, and
the merge's cost of n, spread over as many ids, is no more."""

_MAGIC = b"DDP1"
_HEAD = struct.Struct("<4sQI")  # magic, dropped, number of hours
_HOUR_HEAD = struct.Struct("<qQ")  # hour number (hours since the epoch), number of ids
FIRST_HOUR = hour_number(datetime.min.replace(tzinfo=UTC))
LAST_HOUR = hour_number(datetime.max.replace(tzinfo=UTC))
"""Hour numbers a datetime can start (years 1 .. 9999)."""


def id_key(event: CodegenEvent) -> int:
    """64 bits of the event id: both UUID halves folded (collision odds ~n^2 / 2^65)."""
    value = event.event_id.int
    return ((value >> 64) ^ value) & _MASK


def _contains(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """Which of ``needles`` are in the sorted array ``haystack``."""
    if not len(haystack):
        return np.zeros(len(needles), dtype=bool)
    at = np.searchsorted(haystack, needles)
    np.minimum(at, len(haystack) - 1, out=at)
    return haystack[at] == needles


def _merge(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted arrays with no id in common."""
    if not len(big):
        return small
    if not len(small):
        return big
    out = np.empty(len(big) + len(small), dtype=_IDS)
    at = np.searchsorted(big, small)
    at += np.arange(len(small))
    keep = np.ones(len(out), dtype=bool)
    keep[at] = False
    out[at] = small
    out[keep] = big
    return out


class _Hour:
    """The ids of one hour: ``ids`` and ``recent`` are sorted, unique and disjoint."""

    __slots__ = ("ids", "recent")

    def __init__(self, ids: np.ndarray = _EMPTY) -> None:
        self.ids = ids
        self.recent = _EMPTY

    def __len__(self) -> int:
        return len(self.ids) + len(self.recent)

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.recent.nbytes

    def fold(self) -> np.ndarray:
        """Merge the recent ids in; returns every id, sorted."""
        if len(self.recent):
            self.ids = _merge(self.ids, self.recent)
            self.recent = _EMPTY
        return self.ids

    def admit(self, keys: np.ndarray) -> np.ndarray:
        """Mask of ``keys`` never seen before (the first of equal keys in the batch wins);
        those are remembered."""
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first = np.empty(len(keys), dtype=bool)
        first[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        candidates = ordered[first]
        new = ~_contains(self.ids, candidates)
        new &= ~_contains(self.recent, candidates)
        fresh = candidates[new]
        if len(fresh):
            self.recent = _merge(self.recent, fresh)
            if len(self.recent) > max(MIN_RECENT, math.isqrt(RECENT_FACTOR * len(self.ids))):
                self.fold()
        mask = np.zeros(len(keys), dtype=bool)
        mask[order[first][new]] = True
        return mask


class DedupFilter:
    __slots__ = ("_hours", "dropped", "horizon")

    def __init__(self, horizon_seconds: float) -> None:
        self.horizon = timedelta(seconds=horizon_seconds)
        self._hours: dict[int, _Hour] = {}
        self.dropped = 0

    def admit(self, events: Sequence[CodegenEvent]) -> list[CodegenEvent]:
        """The events not seen before (first copy wins, also within the batch)."""
        hours = hour_numbers([e.timestamp for e in events])
        return [events[i] for i in self.admit_positions(events, hours)]

    def admit_positions(self, events: Sequence[CodegenEvent], hours: Sequence[int]) -> list[int]:
        """Positions of the events not seen before, given each one's ``hour_number`` (a caller
        that needs the hours anyway computes them once)."""
        if not events:
            return []
        keys = np.fromiter((id_key(e) for e in events), dtype=_IDS, count=len(events))
        return np.flatnonzero(self.admit_keys(keys, hours)).tolist()

    def admit_keys(self, keys: np.ndarray, hours: Sequence[int]) -> np.ndarray:
        """The core of ``admit`` on raw ids and hour numbers: a mask of the first copies."""
        n = len(keys)
        if not n:
            return np.zeros(0, dtype=bool)
        keys = np.asarray(keys, dtype=_IDS)
        first_hour = int(hours[0])
        if list(hours).count(first_hour) == n:
            mask = self._hour(first_hour).admit(keys)
        else:
            by_hour = np.asarray(hours, dtype=np.int64)
            mask = np.empty(n, dtype=bool)
            for hour in np.unique(by_hour).tolist():
                where = np.flatnonzero(by_hour == hour)
                mask[where] = self._hour(hour).admit(keys[where])
        self.dropped += n - int(np.count_nonzero(mask))
        return mask

    def _hour(self, hour: int) -> _Hour:
        held = self._hours.get(hour)
        if held is None:
            held = self._hours[hour] = _Hour()
        return held

    def forget_before(self, watermark: datetime) -> None:
        """Drop ids of hours wholly older than ``watermark - horizon``."""
        cutoff = hour_number(watermark - self.horizon)
        for hour in [h for h in self._hours if h < cutoff]:
            del self._hours[hour]

    @property
    def tracked(self) -> int:
        return sum(len(held) for held in self._hours.values())

    @property
    def nbytes(self) -> int:
        """Bytes of id storage (the numpy buffers)."""
        return sum(held.nbytes for held in self._hours.values())

    def hours(self) -> dict[datetime, np.ndarray]:
        """Every hour's ids, sorted (for inspection and tests)."""
        return {hour_of_number(hour): held.fold() for hour, held in sorted(self._hours.items())}

    def merge(self, other: DedupFilter) -> DedupFilter:
        """Take in another filter's ids and drop count (restoring several actors' checkpoints)."""
        for hour, held in other._hours.items():
            mine = self._hours.get(hour)
            if mine is None:
                self._hours[hour] = _Hour(held.fold())
            else:
                mine.ids = np.union1d(mine.fold(), held.fold()).astype(_IDS, copy=False)
        self.dropped += other.dropped
        return self

    # -- checkpoints -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """``DDP1`` | dropped | hour count | (hour, count) per hour | the ids of each hour, raw
        little-endian uint64, sorted. One copy of the id buffers, no per-id work."""
        hours = sorted(self._hours.items())
        arrays = [held.fold() for _, held in hours]
        parts: list[bytes | memoryview] = [_HEAD.pack(_MAGIC, self.dropped, len(hours))]
        parts.extend(
            _HOUR_HEAD.pack(hour, len(ids)) for (hour, _), ids in zip(hours, arrays, strict=True)
        )
        parts.extend(memoryview(ids).cast("B") for ids in arrays if len(ids))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, horizon_seconds: float) -> DedupFilter:
        """Inverse of ``to_bytes``; raises ValueError, and nothing else, on anything malformed:
        the lengths must add up before any id is copied, so memory is at most the input's."""
        try:
            view = memoryview(data).cast("B")
        except TypeError as exc:
            raise ValueError(f"dedup section is not bytes: {type(data).__name__}") from exc
        if len(view) < _HEAD.size:
            raise ValueError("dedup section truncated")
        magic, dropped, count = _HEAD.unpack_from(view)
        if magic != _MAGIC:
            raise ValueError("not a dedup section")
        offset = _HEAD.size
        if len(view) < offset + count * _HOUR_HEAD.size:
            raise ValueError("dedup section truncated")
        heads = [_HOUR_HEAD.unpack_from(view, offset + i * _HOUR_HEAD.size) for i in range(count)]
        offset += count * _HOUR_HEAD.size
        if len(view) != offset + 8 * sum(n for _, n in heads):
            raise ValueError("dedup section has the wrong length")
        dedup = cls(horizon_seconds)
        dedup.dropped = dropped
        for hour, n in heads:
            if not FIRST_HOUR <= hour <= LAST_HOUR:
                raise ValueError(f"dedup hour {hour} is outside the years 1..9999")
            ids = np.frombuffer(view, dtype=_IDS, count=n, offset=offset).copy()
            offset += 8 * n
            if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
                raise ValueError("dedup ids not sorted and unique")
            if hour in dedup._hours:
                raise ValueError("dedup hour repeated")
            dedup._hours[hour] = _Hour(ids)
        return dedup

    @classmethod
    def from_obj(cls, obj: dict, horizon_seconds: float) -> DedupFilter:
        """The version-1 checkpoint form: ``{"dropped": n, "hours": {iso hour: base64 ids}}``.
        Raises ValueError, and nothing else, for anything but that form."""
        if not isinstance(obj, dict) or not isinstance(obj.get("hours"), dict):
            raise ValueError("dedup section is not {'dropped': n, 'hours': {...}}")
        dropped = obj.get("dropped")
        if type(dropped) is not int or not 0 <= dropped <= _MASK:
            raise ValueError("dedup dropped count is not a 64-bit count")
        dedup = cls(horizon_seconds)
        dedup.dropped = dropped
        for hour, data in obj["hours"].items():
            if not isinstance(hour, str) or not isinstance(data, str):
                raise ValueError(f"dedup hour {hour!r:.40} is not an ISO time with base64 ids")
            try:
                raw = base64.b64decode(data, validate=True)
                start = datetime.fromisoformat(hour)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"dedup hour {hour!r:.40} is unreadable: {exc}") from None
            if len(raw) % 8:
                raise ValueError(f"dedup ids of {hour!r:.40} are not whole 64-bit ids")
            held = dedup._hour(hour_number(start))  # two spellings of one hour: keep both
            held.ids = np.union1d(held.ids, np.frombuffer(raw, dtype=_IDS)).astype(_IDS)
        return dedup

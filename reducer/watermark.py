"""Event-time progress: per-partition watermarks combined into the pipeline's watermark.

Pure: the caller passes ``now`` (wall-clock seconds), so tests move time without sleeping.

Each source partition's progress is the largest event time seen on it. The pipeline watermark is
the minimum over active partitions minus the allowed lateness, so a partition (or topic) read ahead
of the others never makes their events late. Rules, with ``idle_timeout_s``:
- a partition holds the watermark back until its owner (the consumer it is assigned to) reports it
  *drained*: read to the end of the log. Until then it may hold a backlog, so it holds back however
  long that takes: through a rebalance, a restart or a restore, a partition revoked from one
  consumer (drained or not: more may have arrived since) and not yet drained by the next, or one
  whose consumer has not started, never has its backlog made late by the wall clock (a stalled
  consumer stalls the watermark; /health and the lag gauge show it);
- a drained partition with no valid event for ``idle_timeout_s`` stops holding the watermark back;
- when every partition is drained and has delivered no message (valid or not) for that long while
  the consumers are demonstrably polling (a heartbeat within that time), the watermark follows the
  wall clock minus lateness, so quiet windows still close. A flood of bad messages is not quiet,
  and a consumer that is not polling proves nothing;
- it never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PartitionKey = tuple[str, int]


@dataclass
class _Progress:
    max_event_time: datetime | None
    last_active: float
    """Last valid event (or the assignment, before any)."""
    last_message: float
    """Last message of any kind."""
    drained: bool = False
    """Its owner's last report said it was read to the end of the log."""
    owner: int | None = None
    """The consumer that last reported it as assigned."""


@dataclass
class WatermarkTracker:
    allowed_lateness_s: float = 60.0
    idle_timeout_s: float = 30.0
    partitions: dict[PartitionKey, _Progress] = field(default_factory=dict)
    last_heartbeat: float | None = None
    """When a consumer last polled (with or without messages)."""
    _current: datetime | None = None

    def heartbeat(self, now: float) -> None:
        """A consumer polled; quiet partitions are then really quiet, not unread."""
        self.last_heartbeat = now

    def report(
        self,
        assigned: list[PartitionKey],
        drained: list[PartitionKey],
        now: float,
        known: list[PartitionKey] = (),
        owner: int | None = None,
    ) -> None:
        """Consumer ``owner`` owns ``assigned``; of those, ``drained`` are read to the end of the
        log. ``known`` are all partitions of the input topics: one no consumer has reported yet
        (its owner has not started) holds the watermark back like an unread one. A partition the
        owner no longer lists was revoked: messages may have arrived since it was drained, so it
        holds the watermark back until its next owner reports it drained."""
        for key in known:
            self.partitions.setdefault(key, _Progress(None, now, now))
        mine = set(assigned)
        if owner is not None:
            for key, progress in self.partitions.items():
                if progress.owner == owner and key not in mine:
                    progress.owner, progress.drained = None, False
        at_end = set(drained)
        for key in assigned:
            progress = self.partitions.setdefault(key, _Progress(None, now, now))
            progress.drained, progress.owner = key in at_end, owner

    def observe(self, key: PartitionKey, max_event_time: datetime | None, now: float) -> None:
        """A batch from ``key`` whose latest event time is ``max_event_time`` (None: the batch
        held no valid event, which keeps the partition busy but does not hold the watermark)."""
        progress = self.partitions.setdefault(key, _Progress(None, now, now))
        progress.last_message = now
        self.last_heartbeat = now
        if max_event_time is None:
            return
        progress.last_active = now
        if progress.max_event_time is None or max_event_time > progress.max_event_time:
            progress.max_event_time = max_event_time

    def watermark(self, now: float) -> datetime | None:
        """Event time before which no more on-time events are expected; None before any data."""
        lateness = timedelta(seconds=self.allowed_lateness_s)
        idle = self.idle_timeout_s
        active = [
            p for p in self.partitions.values() if not p.drained or now - p.last_active < idle
        ]
        if any(p.max_event_time is None for p in active):
            candidate = None  # a partition not read yet: its backlog must not become late
        elif active:
            candidate = min(p.max_event_time for p in active) - lateness
        elif (
            self.partitions
            and self.last_heartbeat is not None
            and now - self.last_heartbeat < idle
            and all(now - p.last_message >= idle for p in self.partitions.values())
        ):
            candidate = datetime.fromtimestamp(now, UTC) - lateness
        else:
            candidate = None
        if candidate is not None and (self._current is None or candidate > self._current):
            self._current = candidate
        return self._current

    def to_obj(self) -> dict:
        return {
            "partitions": [
                [topic, partition, p.max_event_time.isoformat() if p.max_event_time else None]
                for (topic, partition), p in self.partitions.items()
            ],
            "current": self._current.isoformat() if self._current else None,
        }

    def load(self, obj: dict, now: float) -> WatermarkTracker:
        """Restore progress; every partition holds the watermark back until its new owner
        reports it drained. Raises ValueError, and nothing else, for anything ``to_obj`` could
        not have written (checked whole before anything changes)."""
        partitions, current = _read(obj)
        for key, observed in partitions:
            progress = self.partitions.get(key)
            if progress is None or (
                observed and (not progress.max_event_time or observed > progress.max_event_time)
            ):
                self.partitions[key] = _Progress(observed, now, now)
        if current is not None and (self._current is None or current < self._current):
            self._current = current
        return self


def _read(obj: object) -> tuple[list[tuple[PartitionKey, datetime | None]], datetime | None]:
    """The partitions and watermark of ``to_obj``'s output, or ValueError."""
    if not isinstance(obj, dict) or not isinstance(obj.get("partitions"), list):
        raise ValueError("watermark state is not {'partitions': [...], 'current': ...}")
    partitions = []
    for item in obj["partitions"]:
        if not (isinstance(item, list | tuple) and len(item) == 3):
            raise ValueError(f"watermark partition {item!r:.80} is not [topic, partition, time]")
        topic, partition, max_time = item
        if not isinstance(topic, str) or type(partition) is not int or not 0 <= partition < 2**31:
            raise ValueError(f"watermark partition {item!r:.80} has a bad topic or number")
        partitions.append(((topic, partition), _time(max_time)))
    return partitions, _time(obj.get("current"))


def _time(value: object) -> datetime | None:
    """An aware ISO time (or None): naive times would not compare with the others."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"watermark time {value!r:.80} is not an ISO string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"watermark time {value!r:.80} has no time zone")
    return parsed

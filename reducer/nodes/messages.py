"""What travels between an ingest actor and a window actor: raw messages plus where they came
from, and back what became of them. Only bytes and plain values cross the Ray boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reducer.panes import WholeShare


@dataclass(frozen=True, slots=True)
class SourceRange:
    """The slice of one partition a batch covers."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class WindowBatch:
    batch_id: tuple[int, int]
    """(ingest actor index, sequence number): unique per pipeline run."""
    values: list[bytes]
    """The raw messages routed to this window actor (see reducer/nodes/routing.py), undecoded."""
    origins: list[int]
    """Per value, its partition: an index into ``sources``."""
    sources: list[SourceRange]
    """Every partition the whole batch read (progress for the watermark, even with no values)."""
    assigned: list[tuple[str, int]] = field(default_factory=list)
    """Partitions the sending consumer owns."""
    known: list[tuple[str, int]] = field(default_factory=list)
    """Every partition of the input topics: one whose owner has not reported yet holds the
    watermark back too, so a consumer that starts late does not find its backlog late."""
    drained: list[tuple[str, int]] = field(default_factory=list)
    """Those of ``assigned`` it has read to the end of the log; the others may hold a backlog,
    so they hold the watermark back (see reducer/watermark.py)."""


@dataclass(slots=True)
class Applied:
    """What a window actor did with a batch; positions index ``WindowBatch.values``."""

    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    """(position, category, reason) of messages that are not valid events, or whose processing
    raised (category ``processing_error``)."""
    late: list[tuple[int, str]] = field(default_factory=list)
    """(position, reason) of valid events too late to apply."""
    duplicates: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    """Valid events (duplicates and late ones included), by event_type."""
    applied: int = 0
    """Events folded into panes."""


@dataclass(slots=True)
class Collected:
    """A window actor's answer to the coordinator's tick: what changed, and its watermark."""

    watermark: datetime | None
    deltas: dict[datetime, bytes] = field(default_factory=dict)
    """Encoded states of the events applied since the last collect, per hour."""
    full: WholeShare | None = None
    """Instead of deltas, everything the actor holds: asked for by a coordinator that starts
    over, and sent unasked by an actor's first collect (its state may be a restored checkpoint)."""

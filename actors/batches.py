"""What travels from an ingest actor to a window actor: events plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.events import CodegenEvent


@dataclass(frozen=True, slots=True)
class SourceRange:
    """The slice of one partition a batch covers; the unit later checkpoints commit."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    max_event_time: datetime | None


@dataclass(slots=True)
class WindowBatch:
    batch_id: tuple[int, int]
    """(ingest actor index, sequence number): unique per pipeline run."""
    events: list[CodegenEvent]
    sources: list[SourceRange]
    assigned: list[tuple[str, int]] = field(default_factory=list)
    """Partitions the sending consumer owns."""
    drained: list[tuple[str, int]] = field(default_factory=list)
    """Those of ``assigned`` it has read to the end of the log; the others may hold a backlog,
    so they hold the watermark back (see reducer/watermark.py)."""

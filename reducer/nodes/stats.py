"""What each actor reports about itself: typed, so /health, /metrics, the progress line and the
benchmarks read fields, not string keys.

Cores fill the counters they own; the actor shell adds what only it knows (node id, whether its
thread runs, the garbage collector's figures). Plain dataclasses of plain values: they cross the
Ray boundary pickled and the HTTP API as JSON (``as_json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def as_json(stats: Any) -> Any:
    """A stats object (or None, or a list of them) as JSON-able plain values."""
    if stats is None:
        return None
    if isinstance(stats, list):
        return [as_json(s) for s in stats]
    return dataclasses.asdict(stats)


@dataclass(slots=True)
class IngestStats:
    index: int
    messages_in: int = 0
    """Messages consumed (valid or not), oversized ones included."""
    events_in: int = 0
    """Valid events among them (duplicates and late ones included)."""
    batches: int = 0
    events_rejected: int = 0
    """Dead-lettered: not a valid event, oversized, or failing to process."""
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    """Dead letters by category (models/dead_letter.py)."""
    events_late: int = 0
    """Sent to the late-events topic."""
    set_aside_failures: int = 0
    """Dead letters or late events the producer refused for good (logged with their offset)."""
    duplicates_dropped: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    consumer_errors: int = 0
    rebalances: int = 0
    commits: int = 0
    batches_in_flight: int = 0
    assigned: list[str] = field(default_factory=list)
    """Partitions this consumer owns, as ``topic[partition]``."""
    partitions: list[str] = field(default_factory=list)
    """Every partition of the input topics it knows of."""
    drained: list[str] = field(default_factory=list)
    """Assigned partitions read to the end of the log."""
    seconds_since_poll: float | None = None
    running: bool = False
    paused: bool = False
    group: dict[str, Any] = field(default_factory=dict)
    """librdkafka's view of the group membership (join state, rebalances, assignment size)."""
    consumer_lag: dict[str, int] = field(default_factory=dict)
    """Messages behind each assigned partition's end, as ``topic[partition]`` (librdkafka)."""
    error: str | None = None
    node_id: str = ""
    gc: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class WindowStats:
    index: int
    events_applied: int = 0
    batches_applied: int = 0
    late_events: int = 0
    """Events too late for their window (sent on to the late-events topic)."""
    late_by_window: dict[str, int] = field(default_factory=dict)
    """Too-late events per hourly window id (the most recent windows only)."""
    processing_errors: int = 0
    """Messages set aside because applying them raised."""
    duplicates_dropped: int = 0
    dedup_ids_tracked: int = 0
    open_panes: int = 0
    open_rollups: int = 0
    watermark: str | None = None
    last_batch_at: float | None = None
    first_applied_at: float | None = None
    """Wall-clock time this node first applied an event (start-up is measured to it)."""
    error: str | None = None
    node_id: str = ""
    gc: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TickPhases:
    """Where the slowest tick spent its time, in seconds."""

    gather: float = 0.0
    plan: float = 0.0
    publish: float = 0.0
    updates: int = 0


@dataclass(slots=True)
class CoordinatorStats:
    ticks: int = 0
    early_ticks: int = 0
    """Ticks started before their period because an ingest actor had read a backlog."""
    intents_published: int = 0
    finals_published: int = 0
    windows_set_aside: int = 0
    """Window updates that could not be built or published (counted, logged, retried later)."""
    tick_errors: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0
    open_windows: int = 0
    watermark: str | None = None
    epoch: int = 0
    checkpoint_sequence: int = 0
    seconds_since_checkpoint: float | None = None
    last_checkpoint_seconds: float | None = None
    last_checkpoint_bytes: int | None = None
    slowest_tick_seconds: float = 0.0
    slowest_checkpoint_seconds: float = 0.0
    slowest_tick_phases: TickPhases = field(default_factory=TickPhases)
    seconds_since_tick: float | None = None
    error: str | None = None
    checkpoint_error: str | None = None
    node_id: str = ""
    gc: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ExecutorStats:
    published: int = 0
    publish_failures: int = 0
    invalid_intents: int = 0
    dead_lettered: int = 0
    seconds_since_poll: float | None = None
    error: str | None = None

    @property
    def executed(self) -> int:
        """Intents done with: published or dead-lettered."""
        return self.published + self.dead_lettered


@dataclass(slots=True)
class PipelineStats:
    """Every actor's stats; None for an actor that did not answer."""

    ingest: list[IngestStats | None]
    windows: list[WindowStats | None]
    coordinator: CoordinatorStats | None
    intent_executor: ExecutorStats | None

    def ingest_total(self, name: str) -> int:
        """A counter summed over the ingest actors that answered."""
        return sum(getattr(s, name) for s in self.ingest if s is not None)

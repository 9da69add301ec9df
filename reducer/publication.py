"""The coordinator's book of windows: latest partial per window actor, revisions, finality.

Pure: the coordinator actor feeds it what window actors returned and the pipeline watermark, and
publishes what ``plan`` returns. A window is published when it changed, with a growing revision;
once the watermark passes its end it is published one last time with ``is_final`` and forgotten.
A window that holds no events is never published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.metrics import ModelMetricsState
from models.settings import ReducerSettings
from reducer.panes import WindowKey
from reducer.state import AggregationState
from reducer.windows import parse_window_id, window_bounds, window_id

REVISIONS_PER_EPOCH = 1_000_000


@dataclass(frozen=True)
class WindowUpdate:
    key: WindowKey
    window_id: str
    metrics: ModelMetricsState
    revision: int
    is_final: bool


@dataclass
class PublicationBook:
    """Two steps per tick, so a failed publish loses nothing: ``plan`` decides without changing
    the book; ``commit`` records what the broker acknowledged. Until then the windows stay pending
    and the next tick plans them again."""

    settings: ReducerSettings
    epoch: int = 0
    """Restores so far. Published revisions are ``epoch * REVISIONS_PER_EPOCH + n``, so a
    recovered coordinator's republished updates always rank above anything published before."""
    partials: dict[WindowKey, dict[int, bytes]] = field(default_factory=dict)
    revisions: dict[WindowKey, int] = field(default_factory=dict)
    pending: set[WindowKey] = field(default_factory=set)
    finalized: int = 0

    def absorb(self, actor: int, changed: dict[WindowKey, bytes]) -> None:
        for key, data in changed.items():
            self.partials.setdefault(key, {})[actor] = data
        self.pending.update(changed)

    def merged(self, key: WindowKey) -> AggregationState:
        """The actors' partials of ``key`` merged: the first decoded one is the base (merging it
        into an empty state would cost a full merge per window per tick for nothing)."""
        partials = iter(self.partials.get(key, {}).values())
        first = next(partials, None)
        state = (
            AggregationState(self.settings) if first is None else AggregationState.from_bytes(first)
        )
        for data in partials:
            state.merge_in(AggregationState.from_bytes(data))
        return state

    def plan(self, watermark: datetime | None) -> list[WindowUpdate]:
        """Updates to publish now: changed windows, plus the final version of closed ones."""
        closing = {
            key
            for key in self.partials
            if watermark is not None and window_bounds(key[1], key[0])[1] <= watermark
        }
        updates: list[WindowUpdate] = []
        for key in sorted((self.pending & self.partials.keys()) | closing):
            state = self.merged(key)
            if state.is_empty:  # a window with no events is never published
                continue
            window, start = key
            metrics = state.to_metrics(window, *window_bounds(start, window))
            revision = self.epoch * REVISIONS_PER_EPOCH + self.revisions.get(key, 0) + 1
            updates.append(
                WindowUpdate(key, window_id(window, start), metrics, revision, key in closing)
            )
        return updates

    def commit(self, updates: list[WindowUpdate]) -> None:
        """Record acknowledged updates: bump revisions, forget finalised windows."""
        for update in updates:
            self.pending.discard(update.key)
            if update.is_final:
                self.partials.pop(update.key, None)
                self.revisions.pop(update.key, None)
                self.finalized += 1
            else:
                self.revisions[update.key] = update.revision % REVISIONS_PER_EPOCH

    @property
    def open_windows(self) -> int:
        return len(self.partials)

    def revisions_by_id(self) -> dict[str, int]:
        return {window_id(w, s): n for (w, s), n in self.revisions.items()}

    def restore(self, revisions: dict[str, int], epoch: int) -> PublicationBook:
        self.epoch = epoch
        self.revisions = {parse_window_id(k): n for k, n in revisions.items()}
        return self

"""The coordinator's book of windows: merged state per open window, revisions, finality.

Pure: the coordinator actor feeds it what window actors returned and the pipeline watermark, and
publishes what ``plan`` returns. A window is published when it changed, with a growing revision;
once the watermark passes its end it is published one last time with ``is_final`` and forgotten.
A window that holds no events is never published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer.panes import WholeShare, WindowKey
from reducer.state import AggregationState
from reducer.windows import parse_window_id, window_bounds, window_id, window_keys

REVISIONS_PER_EPOCH = 1_000_000


@dataclass(frozen=True)
class WindowUpdate:
    key: WindowKey
    window_id: str
    metrics: ModelMetricsState
    revision: int
    is_final: bool
    state: AggregationState | None = None
    """The merged state ``metrics`` came from (to trim breakdowns to a size budget)."""


@dataclass
class PublicationBook:
    """The coordinator's merged state of every open window, fed by window actors' deltas.

    Two steps per tick, so a failed publish loses nothing: ``plan`` decides without changing
    the book; ``commit`` records what the broker acknowledged. Until then the windows stay pending
    and the next tick plans them again."""

    settings: ReducerSettings
    windows: tuple[EnumMetricsWindow, ...]
    epoch: int = 0
    """Restores so far. Published revisions are ``epoch * REVISIONS_PER_EPOCH + n``, so a
    recovered coordinator's republished updates always rank above anything published before."""
    states: dict[WindowKey, AggregationState] = field(default_factory=dict)
    revisions: dict[WindowKey, int] = field(default_factory=dict)
    pending: set[WindowKey] = field(default_factory=set)
    finalized: int = 0

    def reset(self) -> None:
        """Forget every window's state before a full resynchronisation (revisions stay)."""
        self.states.clear()
        self.pending.clear()

    def _merge(self, key: WindowKey, data: bytes) -> None:
        state = AggregationState.from_bytes(data)
        held = self.states.get(key)
        if held is None:
            self.states[key] = state
        else:
            held.merge_in(state)
        self.pending.add(key)

    def absorb_full(self, partials: dict[WindowKey, bytes]) -> None:
        """One window actor's partials, each of the one window its key names."""
        for key, data in partials.items():
            self._merge(key, data)

    def absorb_whole(self, share: WholeShare) -> None:
        """One window actor's whole share of every open window (``PaneStore.take_whole``)."""
        self.absorb_full(share.rollups)
        self.absorb_deltas(share.panes)

    def absorb_deltas(self, deltas: dict[datetime, bytes]) -> None:
        """One window actor's events since its last take, per hour: each counts in every window
        holding that hour (merge is associative and commutative, so folding deltas as they come
        equals merging the actors' whole partials)."""
        for hour, data in deltas.items():
            delta = AggregationState.from_bytes(data)
            for key in window_keys(hour, self.windows):
                held = self.states.get(key)
                if held is None:
                    self.states[key] = held = AggregationState(self.settings)
                held.merge_in(delta)
                self.pending.add(key)

    def plan(
        self,
        watermark: datetime | None,
        errors: list[tuple[str, Exception]] | None = None,
    ) -> list[WindowUpdate]:
        """Updates to publish now: changed windows, plus the final version of closed ones.

        A window whose metrics cannot be computed raises, unless ``errors`` is given: then it
        is left out (still pending, so the next plan tries again) and (window id, exception) is
        appended to ``errors``, so one window never holds back the others."""
        closing = {
            key
            for key in self.states
            if watermark is not None and window_bounds(key[1], key[0])[1] <= watermark
        }
        updates: list[WindowUpdate] = []
        for key in sorted((self.pending & self.states.keys()) | closing):
            state = self.states[key]
            if state.is_empty:  # a window with no events is never published
                continue
            window, start = key
            name = window_id(window, start)
            try:
                metrics = state.to_metrics(window, *window_bounds(start, window))
            except Exception as exc:
                if errors is None:
                    raise
                errors.append((name, exc))
                continue
            revision = self.epoch * REVISIONS_PER_EPOCH + self.revisions.get(key, 0) + 1
            updates.append(WindowUpdate(key, name, metrics, revision, key in closing, state))
        return updates

    def commit(self, updates: list[WindowUpdate]) -> None:
        """Record acknowledged updates: bump revisions, forget finalised windows."""
        for update in updates:
            self.pending.discard(update.key)
            if update.is_final:
                self.states.pop(update.key, None)
                self.revisions.pop(update.key, None)
                self.finalized += 1
            else:
                self.revisions[update.key] = update.revision % REVISIONS_PER_EPOCH

    @property
    def open_windows(self) -> int:
        return len(self.states)

    def revisions_by_id(self) -> dict[str, int]:
        return {window_id(w, s): n for (w, s), n in self.revisions.items()}

    def restore(self, revisions: dict[str, int], epoch: int) -> PublicationBook:
        self.epoch = epoch
        self.revisions = {parse_window_id(k): n for k, n in revisions.items()}
        return self

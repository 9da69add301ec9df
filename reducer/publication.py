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
from reducer.windows import window_bounds, window_id


@dataclass(frozen=True)
class WindowUpdate:
    key: WindowKey
    window_id: str
    metrics: ModelMetricsState
    revision: int
    is_final: bool


@dataclass
class PublicationBook:
    settings: ReducerSettings
    partials: dict[WindowKey, dict[int, bytes]] = field(default_factory=dict)
    revisions: dict[WindowKey, int] = field(default_factory=dict)
    finalized: int = 0

    def absorb(self, actor: int, changed: dict[WindowKey, bytes]) -> None:
        for key, data in changed.items():
            self.partials.setdefault(key, {})[actor] = data

    def merged(self, key: WindowKey) -> AggregationState:
        state = AggregationState(self.settings)
        for data in self.partials.get(key, {}).values():
            state.merge_in(AggregationState.from_bytes(data))
        return state

    def plan(self, changed: set[WindowKey], watermark: datetime | None) -> list[WindowUpdate]:
        """Updates to publish now: changed windows, plus the final version of closed ones."""
        closing = {
            key
            for key in self.partials
            if watermark is not None and window_bounds(key[1], key[0])[1] <= watermark
        }
        updates: list[WindowUpdate] = []
        for key in sorted(changed | closing):
            if key not in self.partials:
                continue
            state = self.merged(key)
            is_final = key in closing
            if is_final:
                del self.partials[key]
                self.finalized += 1
            if state.is_empty:
                continue
            revision = self.revisions.pop(key, 0) + 1
            if not is_final:
                self.revisions[key] = revision
            window, start = key
            metrics = state.to_metrics(window, *window_bounds(start, window))
            updates.append(WindowUpdate(key, window_id(window, start), metrics, revision, is_final))
        return updates

    @property
    def open_windows(self) -> int:
        return len(self.partials)

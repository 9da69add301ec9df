"""Panes: one AggregationState per open hour, rolled up into day, week and month by merging.

Pure bookkeeping for a window actor. Events land only in their hourly pane. When the pipeline
finalises up to a horizon, closed hours are merged into the longer windows' roll-ups and dropped,
and roll-ups of closed windows are dropped, so memory holds only open windows. An event whose hour
is already behind the watermark is late: it is counted, never added to a window that may have
been published as final.

The store also keeps what changed since the coordinator last asked, per hour, so each tick sends
deltas (``take_deltas``); ``take_whole`` sends every open pane and roll-up, for a coordinator
that starts over.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow
from models.settings import ReducerSettings
from reducer.state import AggregationState
from reducer.windows import hour_numbers, hour_of_number, window_bounds, window_keys

WindowKey = tuple[EnumMetricsWindow, datetime]
HOUR = EnumMetricsWindow.HOURLY


@dataclass(slots=True)
class StagedPanes:
    """Events folded by ``PaneStore.stage``, not yet in the store."""

    deltas: dict[datetime, AggregationState] = field(default_factory=dict)
    late: list[CodegenEvent] = field(default_factory=list)
    """Events whose hour had ended before the watermark: never added to a window."""


@dataclass(slots=True)
class WholeShare:
    """A window actor's whole share of every open window (``PaneStore.take_whole``)."""

    panes: dict[datetime, bytes] = field(default_factory=dict)
    """Every open hourly pane; like a delta, each counts in every window holding its hour."""
    rollups: dict[WindowKey, bytes] = field(default_factory=dict)
    """Closed hours already merged, per longer window that is still open."""


class PaneStore:
    """Hourly panes and roll-ups of closed hours, plus what changed since the coordinator last
    asked: the coordinator keeps its own merged windows and receives only hourly deltas, so a
    tick costs in proportion to the events of the tick, not to the size of the open windows."""

    def __init__(self, settings: ReducerSettings, windows: Iterable[EnumMetricsWindow]) -> None:
        self.settings = settings
        self.windows = tuple(EnumMetricsWindow(w) for w in windows)
        self._panes: dict[datetime, AggregationState] = {}
        self.rollups: dict[WindowKey, AggregationState] = {}
        self._fresh: dict[datetime, AggregationState] = {}
        """Events applied since the last fold, per hour: not yet in ``_panes``."""
        self._unsent: dict[datetime, AggregationState] = {}
        """Folded into ``_panes`` but not yet taken as a delta."""
        self.late_events = 0

    @property
    def panes(self) -> dict[datetime, AggregationState]:
        """Open hourly panes, holding every event applied so far."""
        self._fold()
        return self._panes

    @property
    def open_hours(self) -> int:
        """How many hourly panes are open, without folding (stats are polled every second)."""
        return len(self._panes.keys() | self._fresh.keys())

    def keys_of_hour(self, hour: datetime) -> list[WindowKey]:
        return window_keys(hour, self.windows)

    def apply(
        self,
        events: Sequence[CodegenEvent],
        watermark: datetime | None,
        hours: Sequence[int] | None = None,
    ) -> list:
        """Add events to their hourly panes; returns the late ones (hour ended before watermark).

        ``hours``: each event's ``hour_number``, when the caller has them already."""
        staged = self.stage(events, watermark, hours)
        self.commit(staged)
        return staged.late

    def stage(
        self,
        events: Sequence[CodegenEvent],
        watermark: datetime | None,
        hours: Sequence[int] | None = None,
    ) -> StagedPanes:
        """Fold events into new per-hour deltas without touching the store: if folding raises,
        nothing has changed, so the caller can retry a subset (see ``commit``). Folding into a
        fresh delta and merging it costs the same as folding in place (1.84-1.92 vs 1.89-1.98
        µs per event on a 77k-event fleet)."""
        if hours is None:
            hours = hour_numbers([event.timestamp for event in events])
        by_hour: dict[int, list[CodegenEvent]] = defaultdict(list)
        for number, event in zip(hours, events, strict=True):
            by_hour[number].append(event)
        staged = StagedPanes()
        for number, group in by_hour.items():
            hour = hour_of_number(number)
            if watermark is not None and hour_of_number(number + 1) <= watermark:
                staged.late.extend(group)
                continue
            base = self._fresh.get(hour)
            if base is None:
                base = self._panes.get(hour)
            scratch = base.delta() if base is not None else AggregationState(self.settings)
            scratch.add_batch(group)
            if watermark is not None and hour < watermark:  # later hours hold none before it
                scratch.late_arrivals += sum(e.timestamp < watermark for e in group)
            staged.deltas[hour] = scratch
        return staged

    def commit(self, staged: StagedPanes) -> None:
        """Take in what ``stage`` folded."""
        for hour, scratch in staged.deltas.items():
            fresh = self._fresh.get(hour)
            if fresh is None:
                self._fresh[hour] = scratch
            else:
                fresh.merge_in(scratch)
        self.late_events += len(staged.late)

    def _fold(self) -> None:
        """Merge fresh events into their panes, remembering them as not yet sent."""
        for hour, fresh in self._fresh.items():
            pane = self._panes.get(hour)
            if pane is None:
                pane = self._panes[hour] = AggregationState(self.settings)
            pane.merge_in(fresh)
            unsent = self._unsent.get(hour)
            if unsent is None:
                self._unsent[hour] = fresh
            else:
                unsent.merge_in(fresh)
        self._fresh.clear()

    def partial(self, key: WindowKey) -> AggregationState:
        """This store's share of one window: its roll-up of closed hours plus open panes."""
        panes = self.panes
        window, start = key
        if window is HOUR:
            pane = panes.get(start)
            return pane if pane is not None else AggregationState(self.settings)
        end = window_bounds(start, window)[1]
        merged = AggregationState(self.settings)
        rollup = self.rollups.get(key)
        if rollup is not None:
            merged.merge_in(rollup)
        for hour, pane in panes.items():
            if start <= hour < end:
                merged.merge_in(pane)
        return merged

    def take_deltas(self) -> dict[datetime, bytes]:
        """Encoded states of the events applied since the last take (or full take), per hour."""
        self._fold()
        deltas = {hour: state.to_bytes() for hour, state in sorted(self._unsent.items())}
        self._unsent.clear()
        return deltas

    def take_whole(self) -> WholeShare:
        """Everything this store holds, encoded: what a coordinator that starts over (or lost
        a delta) needs; deltas then continue from here. Each open pane is sent once, as a delta
        is, rather than merged into every window holding it (a quarter of the encoding with
        the four window types, and no merges)."""
        self._fold()
        self._unsent.clear()
        return WholeShare(
            panes={hour: pane.to_bytes() for hour, pane in sorted(self._panes.items())},
            rollups={key: state.to_bytes() for key, state in sorted(self.rollups.items())},
        )

    def release(self, horizon: datetime) -> None:
        """Windows ending at or before ``horizon`` are final: fold closed hours, drop the rest."""
        panes = self.panes
        for hour in sorted(h for h in panes if window_bounds(h, HOUR)[1] <= horizon):
            pane = panes.pop(hour)
            for key in self.keys_of_hour(hour):
                window, start = key
                if window is HOUR or window_bounds(start, window)[1] <= horizon:
                    continue
                rollup = self.rollups.get(key)
                if rollup is None:
                    self.rollups[key] = rollup = AggregationState(self.settings)
                rollup.merge_in(pane)
        for key in [k for k in self.rollups if window_bounds(k[1], k[0])[1] <= horizon]:
            del self.rollups[key]

    def to_obj(self) -> dict:
        """Everything a checkpoint needs to rebuild this store."""
        return {
            "panes": {h.isoformat(): _b64(p.to_bytes()) for h, p in self.panes.items()},
            "rollups": [
                [w.value, s.isoformat(), _b64(r.to_bytes())] for (w, s), r in self.rollups.items()
            ],
            "late_events": self.late_events,
        }

    def load(self, obj: dict) -> PaneStore:
        """Merge a checkpointed store into this one (stores of several actors may be combined).

        Raises ValueError, and nothing else, for anything ``to_obj`` could not have written
        with this store's settings; everything is decoded and checked before anything changes,
        so a failed load leaves the store as it was."""
        panes, rollups, late = self._read(obj)
        for start, state in panes:
            held = self.panes.get(start)
            if held is None:
                self.panes[start] = state
            else:
                held.merge_in(state)
        for key, state in rollups:
            held = self.rollups.get(key)
            if held is None:
                self.rollups[key] = state
            else:
                held.merge_in(state)
        self.late_events += late
        return self

    def _read(
        self, obj: dict
    ) -> tuple[
        list[tuple[datetime, AggregationState]], list[tuple[WindowKey, AggregationState]], int
    ]:
        """The panes, roll-ups and late count of ``to_obj``'s output, or ValueError."""
        if not (
            isinstance(obj, dict)
            and isinstance(obj.get("panes"), dict)
            and isinstance(obj.get("rollups"), list)
        ):
            raise ValueError("pane store is not {'panes': {...}, 'rollups': [...], ...}")
        late = obj.get("late_events")
        if type(late) is not int or late < 0:
            raise ValueError("pane store late_events is not a count")
        panes = []
        for hour, data in obj["panes"].items():
            start = _start(hour, HOUR)
            panes.append((start, self._state(data, f"pane {hour!r:.40}")))
        rollups = []
        for item in obj["rollups"]:
            if not (isinstance(item, list) and len(item) == 3):
                raise ValueError(f"pane store roll-up {item!r:.80} is not [window, start, state]")
            window, start, data = item
            if not isinstance(window, str) or window not in _WINDOW_VALUES:
                raise ValueError(f"pane store roll-up window {window!r:.40} is unknown")
            key = (EnumMetricsWindow(window), _start(start, EnumMetricsWindow(window)))
            rollups.append((key, self._state(data, f"roll-up {window}:{start}")))
        return panes, rollups, late

    def _state(self, data: object, what: str) -> AggregationState:
        if not isinstance(data, str):
            raise ValueError(f"{what} is not base64 text")
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{what} is not base64: {exc}") from None
        state = AggregationState.from_bytes(raw)
        if state.settings != self.settings:
            raise ValueError(f"{what} was built with other reducer settings")
        return state


_WINDOW_VALUES = frozenset(w.value for w in EnumMetricsWindow)


def _start(value: object, window: EnumMetricsWindow) -> datetime:
    """An aware ISO time that starts a ``window``, or ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"pane store time {value!r:.40} is not an ISO string")
    start = datetime.fromisoformat(value)
    try:
        aligned = start.tzinfo is not None and window_bounds(start, window)[0] == start
    except OverflowError:  # a week or month reaching past year 1 or 9999
        aligned = False
    if not aligned:
        raise ValueError(f"pane store time {value!r:.40} is not the start of a {window} window")
    return start


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

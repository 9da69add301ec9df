"""MetricsAggregator: the seed-compatible facade over AggregationState and windows."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from operator import attrgetter

from models.events import CodegenEvent, utc_now
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer.state import DEFAULT_SETTINGS, AggregationState
from reducer.windows import window_bounds

CHUNK = 1024
"""Events folded per add_batch call: input is streamed, never held whole."""
_TIMESTAMP = attrgetter("timestamp")


def batched(events: Iterable[CodegenEvent], size: int) -> Iterable[list[CodegenEvent]]:
    iterator = iter(events)
    while chunk := list(islice(iterator, size)):
        yield chunk


class MetricsAggregator:
    """Pure aggregation: events in, ModelMetricsState out. No I/O."""

    @staticmethod
    def aggregate_events(
        events: Iterable[CodegenEvent],
        window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        settings: ReducerSettings = DEFAULT_SETTINGS,
    ) -> ModelMetricsState:
        """One ModelMetricsState for everything given, bounded by the aligned windows that cover
        the events' timestamps (the current window for an empty input, with zeros)."""
        return MetricsAggregator.aggregate_batches(batched(events, CHUNK), window_type, settings)

    @staticmethod
    def aggregate_batches(
        batches: Iterable[list[CodegenEvent]],
        window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        settings: ReducerSettings = DEFAULT_SETTINGS,
    ) -> ModelMetricsState:
        """``aggregate_events`` of the events of ``batches``, each folded in one ``add_batch``
        (for a caller that decodes in batches: no per-event iteration in between)."""
        window_type = EnumMetricsWindow(window_type)
        began = time.perf_counter()
        state = AggregationState(settings)
        first: datetime | None = None
        last: datetime | None = None
        for batch in batches:
            if not batch:
                continue
            state.add_batch(batch)
            stamps = list(map(_TIMESTAMP, batch))
            low, high = min(stamps), max(stamps)
            first = low if first is None or low < first else first
            last = high if last is None or high > last else last
            # Let the batch go before the next one is made: a batch kept alive while the next
            # decodes is walked by the cycle collector (about 10% of decoding time, measured).
            del batch
        elapsed = time.perf_counter() - began
        start = window_bounds(first or utc_now(), window_type)[0]
        end = window_bounds(last or utc_now(), window_type)[1]
        metrics = state.to_metrics(window_type, start, end)
        return _timed(metrics, elapsed)

    @staticmethod
    def aggregate_windows(
        events: Iterable[CodegenEvent],
        window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        settings: ReducerSettings = DEFAULT_SETTINGS,
    ) -> list[ModelMetricsState]:
        """One ModelMetricsState per calendar-aligned window holding events, oldest first."""
        window_type = EnumMetricsWindow(window_type)
        began = time.perf_counter()
        panes = MetricsAggregator.window_states(events, window_type, settings)
        elapsed = time.perf_counter() - began
        return [
            _timed(state.to_metrics(window_type, *bounds), elapsed / len(panes))
            for bounds, state in sorted(panes.items())
        ]

    @staticmethod
    def window_states(
        events: Iterable[CodegenEvent],
        window_type: EnumMetricsWindow,
        settings: ReducerSettings = DEFAULT_SETTINGS,
    ) -> dict[tuple[datetime, datetime], AggregationState]:
        """AggregationState per window [start, end), for callers that merge further."""
        panes: dict[tuple[datetime, datetime], AggregationState] = {}
        for chunk in batched(events, CHUNK):
            grouped: dict[tuple[datetime, datetime], list[CodegenEvent]] = {}
            for event in chunk:
                grouped.setdefault(window_bounds(event.timestamp, window_type), []).append(event)
            for bounds, group in grouped.items():
                pane = panes.get(bounds)
                if pane is None:
                    pane = panes[bounds] = AggregationState(settings)
                pane.add_batch(group)
        return panes


def _timed(metrics: ModelMetricsState, elapsed: float) -> ModelMetricsState:
    rate = metrics.events_processed / elapsed if elapsed > 0 else 0.0
    return metrics.model_copy(
        update={"aggregation_duration_ms": elapsed * 1000, "items_per_second": rate}
    )

"""MetricsAggregator: the seed-compatible facade, over any iterable of events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import EnumMetricsWindow, ModelMetricsState, ReducerSettings
from reducer import AggregationState, MetricsAggregator, window_bounds
from tests.datasets import BASE_TIME, completed, failed, mixed_events, stage, started

VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_aggregate_events_is_callable_as_a_static_method() -> None:
    result = MetricsAggregator.aggregate_events([completed()])

    assert isinstance(result, ModelMetricsState)
    assert result.window_type is EnumMetricsWindow.HOURLY
    assert result.successful_generations == 1


def test_aggregate_events_is_callable_on_an_instance_with_keywords() -> None:
    result = MetricsAggregator().aggregate_events(
        events=[completed(), failed()], window_type=EnumMetricsWindow.DAILY
    )

    assert result.window_type is EnumMetricsWindow.DAILY
    assert result.total_generations == 2


def test_aggregate_events_accepts_the_window_type_as_its_string_value() -> None:
    result = MetricsAggregator.aggregate_events([completed()], "weekly")  # type: ignore[arg-type]

    assert result.window_type is EnumMetricsWindow.WEEKLY


@pytest.mark.parametrize(
    ("window", "start", "end"),
    [
        (EnumMetricsWindow.HOURLY, utc(2026, 3, 2, 10), utc(2026, 3, 2, 13)),
        (EnumMetricsWindow.DAILY, utc(2026, 3, 2), utc(2026, 3, 3)),
        (EnumMetricsWindow.WEEKLY, utc(2026, 3, 2), utc(2026, 3, 9)),
        (EnumMetricsWindow.MONTHLY, utc(2026, 3, 1), utc(2026, 4, 1)),
    ],
)
def test_window_bounds_are_the_aligned_windows_covering_the_events(
    window: EnumMetricsWindow, start: datetime, end: datetime
) -> None:
    events = [
        completed(timestamp=utc(2026, 3, 2, 12, 59)),
        started(timestamp=utc(2026, 3, 2, 10, 5)),
        failed(timestamp=utc(2026, 3, 2, 11, 30)),
    ]

    result = MetricsAggregator.aggregate_events(events, window)

    assert (result.window_start, result.window_end) == (start, end)


def test_an_empty_input_gives_zeros_in_the_current_window() -> None:
    before = datetime.now(UTC)

    result = MetricsAggregator.aggregate_events([])

    assert result.events_processed == 0
    assert result.total_generations == 0
    assert result.avg_duration_seconds == 0.0
    assert result.avg_test_coverage is None
    assert result.model_metrics == {}
    assert result.window_end - result.window_start == timedelta(hours=1)
    assert result.window_start <= datetime.now(UTC)
    assert result.window_end > before


def test_aggregation_time_and_rate_are_reported_for_a_non_empty_input() -> None:
    result = MetricsAggregator.aggregate_events(mixed_events(200, seed=1))

    assert result.aggregation_duration_ms > 0
    assert result.items_per_second > 0
    assert result.events_processed == 200


def test_aggregate_events_streams_a_generator_larger_than_one_chunk() -> None:
    events = mixed_events(2500, seed=2)

    streamed = MetricsAggregator.aggregate_events(iter(events))
    listed = MetricsAggregator.aggregate_events(events)

    assert streamed.model_dump(exclude=VOLATILE) == listed.model_dump(exclude=VOLATILE)
    assert streamed.events_processed == 2500


def test_aggregate_batches_equals_aggregate_events_whatever_the_batches() -> None:
    events = mixed_events(2500, seed=4)
    batches = [events[:7], [], events[7:1900], events[1900:]]

    batched = MetricsAggregator.aggregate_batches(iter(batches), EnumMetricsWindow.DAILY)
    streamed = MetricsAggregator.aggregate_events(iter(events), EnumMetricsWindow.DAILY)

    assert batched.model_dump(exclude=VOLATILE) == streamed.model_dump(exclude=VOLATILE)
    assert batched.events_processed == 2500


def test_aggregate_events_equals_the_state_of_the_same_events() -> None:
    events = mixed_events(300, seed=3)

    result = MetricsAggregator.aggregate_events(events, EnumMetricsWindow.MONTHLY)
    state = AggregationState().add_batch(events)
    expected = state.to_metrics(EnumMetricsWindow.MONTHLY, result.window_start, result.window_end)

    assert result.model_dump(exclude=VOLATILE) == expected.model_dump(exclude=VOLATILE)


def test_mean_of_five_values_of_0_92_is_exactly_0_92_through_aggregate_events() -> None:
    events = [
        completed(
            total_duration_seconds=0.92,
            quality_score=0.92,
            test_coverage=0.92,
            complexity_score=0.92,
            total_cost_usd=0.92,
        )
        for _ in range(5)
    ]

    result = MetricsAggregator.aggregate_events(events)

    assert result.avg_quality_score == 0.92
    assert result.avg_duration_seconds == 0.92
    assert result.avg_cost_per_generation == 0.92
    assert result.avg_test_coverage == 0.92
    assert result.avg_complexity_score == 0.92
    assert result.model_metrics["model-a"]["avg_quality_score"] == 0.92
    assert result.node_type_metrics["effect"]["avg_duration_seconds"] == 0.92


def test_success_rate_stays_at_most_one_with_started_events_through_aggregate_events() -> None:
    events = [started() for _ in range(5)] + [completed()] + [stage()]

    result = MetricsAggregator.aggregate_events(events)

    assert result.success_rate == 1.0
    assert result.total_generations == 1
    assert result.started_generations == 5


def test_aggregate_events_uses_the_settings_given() -> None:
    events = [completed(total_duration_seconds=float(d)) for d in range(1, 31)]

    result = MetricsAggregator.aggregate_events(
        events, settings=ReducerSettings(exact_percentile_cap=10)
    )

    assert not result.percentiles_exact


def test_aggregate_windows_returns_one_state_per_window_oldest_first() -> None:
    hours = [utc(2026, 3, 2, 14, 5), utc(2026, 3, 2, 9, 59), utc(2026, 3, 2, 11, 0)]
    events = [completed(timestamp=h) for h in hours] + [failed(timestamp=hours[0])]

    results = MetricsAggregator.aggregate_windows(events, EnumMetricsWindow.HOURLY)

    assert [r.window_start for r in results] == [
        utc(2026, 3, 2, 9),
        utc(2026, 3, 2, 11),
        utc(2026, 3, 2, 14),
    ]
    assert all(r.window_end - r.window_start == timedelta(hours=1) for r in results)
    assert [r.total_generations for r in results] == [1, 1, 2]
    assert all(r.window_type is EnumMetricsWindow.HOURLY for r in results)


def test_aggregate_windows_of_nothing_is_an_empty_list() -> None:
    assert MetricsAggregator.aggregate_windows([], EnumMetricsWindow.DAILY) == []


def test_aggregate_windows_merged_back_together_equal_one_aggregate() -> None:
    events = mixed_events(500, seed=5)
    panes = MetricsAggregator.window_states(events, EnumMetricsWindow.HOURLY)

    merged = AggregationState()
    for pane in panes.values():
        merged = merged.merge(pane)

    whole = AggregationState().add_batch(events)
    assert merged.to_metrics().model_dump(exclude=VOLATILE) == whole.to_metrics().model_dump(
        exclude=VOLATILE
    )


def test_every_event_lands_in_the_window_of_its_timestamp() -> None:
    events = mixed_events(300, seed=6, start=BASE_TIME)

    results = MetricsAggregator.aggregate_windows(events, EnumMetricsWindow.HOURLY)

    assert sum(r.events_processed for r in results) == 300
    for result in results:
        expected = sum(
            1
            for e in events
            if window_bounds(e.timestamp, EnumMetricsWindow.HOURLY)[0] == result.window_start
        )
        assert result.events_processed == expected

"""The size budget of a published metrics event: breakdowns are trimmed, totals never change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from models.events import CodegenEvent
from models.metrics import ModelEventMetricsRecorded, ModelMetricsState
from reducer import AggregationState
from reducer.budget import event_size, fit_to_budget
from reducer.groupings import OTHER_KEY
from tests.datasets import completed, failed, mixed_events, stage

CORRELATION = uuid.UUID(int=1)
EVENT_ID = uuid.UUID(int=2)
STAMP = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
BREAKDOWN_FIELDS = {
    "avg_stage_durations",
    "stage_metrics",
    "model_metrics",
    "node_type_metrics",
    "failures_by_stage",
    "failures_by_error_code",
    "workflow_metrics",
}
ENVELOPE = {"event_id", "timestamp"}
NAMES = 1000
HEAVY = 100
"""Names 0..99 carry three events each, the other 900 one."""


def build(metrics: ModelMetricsState) -> ModelEventMetricsRecorded:
    """Deterministic envelope, so an untrimmed event compares equal field by field."""
    return ModelEventMetricsRecorded.from_state(
        metrics,
        correlation_id=CORRELATION,
        event_id=EVENT_ID,
        timestamp=STAMP,
        window_id="hourly:2026-03-02T10:00:00Z",
    )


def name(tag: str, i: int) -> str:
    return f"{tag}-{i:04d}-".ljust(256, "x")


def workflow_of(i: int) -> uuid.UUID:
    return uuid.UUID(int=10_000 + i)


def events_of(i: int) -> list[CodegenEvent]:
    """The events carrying name ``i`` in every breakdown (one workflow per name)."""
    one = [
        completed(
            primary_model=name("model", i),
            node_type=name("node", i),
            workflow_id=workflow_of(i),
            total_duration_seconds=10.0 + i % 7,
            total_cost_usd=0.25 * (i % 5),
        ),
        stage(
            stage_name=name("stage", i), workflow_id=workflow_of(i), duration_seconds=1.5 + i % 3
        ),
        failed(
            error_code=name("error", i), failed_stage=name("failed", i), workflow_id=workflow_of(i)
        ),
    ]
    return one * (3 if i < HEAVY else 1)


@pytest.fixture(scope="module")
def flood() -> tuple[AggregationState, ModelMetricsState, ModelEventMetricsRecorded]:
    state = AggregationState()
    for i in range(NAMES):
        state.add_batch(events_of(i))
    metrics = state.to_metrics()
    return state, metrics, build(metrics)


def top_level(event: ModelEventMetricsRecorded) -> dict[str, Any]:
    return event.model_dump(exclude=BREAKDOWN_FIELDS | {"breakdowns_truncated"})


def index_of(key: str) -> int:
    return int(key.split("-")[1])


# Each breakdown field: how to read a key's index, and how to rewrite an event to carry one
# shared key (the reference for ``__other__``: the folded keys' events aggregated as one key).
SHARED = "shared"
SHARED_WORKFLOW = uuid.UUID(int=1)
FIELDS: dict[str, tuple[Any, Any]] = {
    "model_metrics": (index_of, lambda e: {"primary_model": SHARED}),
    "node_type_metrics": (index_of, lambda e: {"node_type": SHARED}),
    "stage_metrics": (index_of, lambda e: {"stage_name": SHARED}),
    "avg_stage_durations": (index_of, lambda e: {"stage_name": SHARED}),
    "failures_by_stage": (index_of, lambda e: {"failed_stage": SHARED}),
    "failures_by_error_code": (index_of, lambda e: {"error_code": SHARED}),
    "workflow_metrics": (
        lambda key: uuid.UUID(key).int - 10_000,
        lambda e: {"workflow_id": SHARED_WORKFLOW},
    ),
}


def reference_other(field: str, folded: list[int]) -> Any:
    """The ``__other__`` row of ``field``: every folded name's events under one shared key."""
    _, rewrite = FIELDS[field]
    events = [e.model_copy(update=rewrite(e)) for i in folded for e in events_of(i)]
    metrics = AggregationState().add_batch(events).to_metrics()
    key = str(SHARED_WORKFLOW) if field == "workflow_metrics" else SHARED
    return getattr(metrics, field)[key]


@pytest.mark.parametrize("budget", [1_000_000, 100_000])
def test_a_flood_of_long_names_is_trimmed_to_the_budget_with_exact_totals_and_other_rows(
    flood: tuple, budget: int
) -> None:
    state, metrics, untrimmed = flood
    assert event_size(untrimmed) > 2 * 1_000_000  # about 2.2 MB: the broker would refuse it

    event = fit_to_budget(state, metrics, build, budget)

    assert event_size(event) <= budget
    assert event.breakdowns_truncated
    assert top_level(event) == top_level(untrimmed)
    for field, (index, _) in FIELDS.items():
        rows = getattr(event, field)
        kept = [index(k) for k in rows if k != OTHER_KEY]
        folded = sorted(set(range(NAMES)) - set(kept))
        assert 0 < len(kept) < NAMES, field
        # The names of the most events are kept (the heavy 0..99 first), ties by the smaller key.
        assert set(kept) == set(range(len(kept))), field
        assert rows[OTHER_KEY] == reference_other(field, folded), field


def test_kept_rows_are_the_untrimmed_rows(flood: tuple) -> None:
    state, metrics, untrimmed = flood

    event = fit_to_budget(state, metrics, build, 100_000)

    for field in FIELDS:
        full = getattr(untrimmed, field)
        for key, row in getattr(event, field).items():
            if key != OTHER_KEY:
                assert row == full[key], (field, key)


def test_an_event_within_the_budget_comes_back_unchanged() -> None:
    state = AggregationState().add_batch(mixed_events(500, seed=3))
    metrics = state.to_metrics()
    untouched = build(metrics)

    event = fit_to_budget(state, metrics, build, event_size(untouched))

    assert event == untouched
    assert not event.breakdowns_truncated


def test_a_budget_that_nothing_fits_raises_value_error(flood: tuple) -> None:
    state, metrics, _ = flood

    with pytest.raises(ValueError, match="even with every breakdown folded"):
        fit_to_budget(state, metrics, build, 2_000)


def test_folded_keys_that_were_already_other_stay_in_other() -> None:
    """A state whose breakdowns already folded keys (max_keys_per_breakdown) folds more into
    the same ``__other__``: the row is every non-kept key's events."""
    from models.settings import ReducerSettings

    state = AggregationState(ReducerSettings(max_keys_per_breakdown=50))
    for i in range(200):
        state.add_batch(events_of(i))
    metrics = state.to_metrics()
    untrimmed = build(metrics)
    assert OTHER_KEY in untrimmed.model_metrics

    event = fit_to_budget(state, metrics, build, event_size(untrimmed) // 3)

    kept = {index_of(k) for k in event.model_metrics if k != OTHER_KEY}
    folded = sorted(set(range(200)) - kept)
    assert event.breakdowns_truncated
    assert event.model_metrics[OTHER_KEY] == reference_other("model_metrics", folded)

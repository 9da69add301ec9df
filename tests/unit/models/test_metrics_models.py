"""Output models: window types, ModelMetricsState, the published event and the intent envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

import models
from models import (
    EnumMetricsWindow,
    ModelEventMetricsRecorded,
    ModelEventPublishIntent,
    ModelMetricsState,
    ModelRetryPolicy,
)
from models.metrics import MetricsBody

CONTRACT_STATE_FIELDS = {
    "aggregation_id", "window_type", "window_start", "window_end", "total_generations",
    "successful_generations", "failed_generations", "avg_duration_seconds",
    "p50_duration_seconds", "p95_duration_seconds", "p99_duration_seconds",
    "min_duration_seconds", "max_duration_seconds", "avg_quality_score", "avg_test_coverage",
    "avg_complexity_score", "total_tokens", "total_cost_usd", "avg_cost_per_generation",
    "avg_stage_durations", "model_metrics", "node_type_metrics", "intelligence_enabled_count",
    "avg_patterns_applied", "workflow_ids_tracked", "aggregation_duration_ms",
    "events_processed", "items_per_second", "created_at",
}  # fmt: skip
CONTRACT_RECORDED_FIELDS = {
    "correlation_id", "event_id", "timestamp", "event_type", "window_start", "window_end",
    "aggregation_type", "total_generations", "successful_generations", "failed_generations",
    "avg_duration_seconds", "p50_duration_seconds", "p95_duration_seconds",
    "p99_duration_seconds", "avg_quality_score", "avg_test_coverage", "total_tokens",
    "total_cost_usd", "avg_cost_per_generation", "model_metrics", "node_type_metrics",
}  # fmt: skip
ADDED_FIELDS = {
    "started_generations", "success_rate", "avg_failed_partial_duration_seconds",
    "failures_by_stage", "failures_by_error_code", "stage_metrics", "quality_score_buckets",
    "cost_buckets", "workflow_metrics", "workflows_evicted", "percentiles_exact",
    "events_invalid", "events_by_type",
}  # fmt: skip


def test_the_contract_names_are_importable_from_the_package_top() -> None:
    for name in (
        "ModelEventCodegenStarted",
        "ModelEventCodegenStageCompleted",
        "ModelEventCodegenCompleted",
        "ModelEventCodegenFailed",
        "ModelEventMetricsRecorded",
        "ModelMetricsState",
        "EnumMetricsWindow",
    ):
        assert name in models.__all__
        assert getattr(models, name) is not None


@pytest.mark.parametrize(
    ("window", "value", "seconds"),
    [
        (EnumMetricsWindow.HOURLY, "hourly", 3600),
        (EnumMetricsWindow.DAILY, "daily", 86400),
        (EnumMetricsWindow.WEEKLY, "weekly", 604800),
        (EnumMetricsWindow.MONTHLY, "monthly", 2592000),
    ],
)
def test_window_types_keep_their_values_and_nominal_seconds(
    window: EnumMetricsWindow, value: str, seconds: int
) -> None:
    assert window.value == value
    assert window == value
    assert EnumMetricsWindow(value) is window
    assert window.get_window_seconds() == seconds


def test_metrics_state_carries_every_contract_field_and_the_added_ones() -> None:
    fields = set(ModelMetricsState.model_fields)

    assert fields >= CONTRACT_STATE_FIELDS
    assert fields >= ADDED_FIELDS


def test_an_empty_metrics_state_is_zeros_with_optional_averages_unset() -> None:
    state = ModelMetricsState()

    assert state.total_generations == 0
    assert state.success_rate == 0.0
    assert state.p99_duration_seconds == 0.0
    assert state.avg_test_coverage is None
    assert state.avg_complexity_score is None
    assert state.model_metrics == {}
    assert isinstance(state.aggregation_id, UUID)


def test_created_at_is_timezone_aware_utc() -> None:
    created = ModelMetricsState().created_at

    assert created.tzinfo is not None
    assert created.utcoffset().total_seconds() == 0


def test_a_metrics_state_is_json_serialisable_and_round_trips() -> None:
    state = ModelMetricsState(
        total_generations=2,
        model_metrics={"m": {"total_generations": 2, "avg_duration_seconds": 1.5}},
        cost_buckets={"<0.01": {"count": 1, "total_cost_usd": 0.005}},
    )

    text = state.model_dump_json()
    json.loads(text)

    assert ModelMetricsState.model_validate_json(text) == state
    assert state.model_metrics["m"]["total_generations"] == 2


def test_success_rate_above_one_is_rejected() -> None:
    with pytest.raises(ValidationError):
        ModelMetricsState(success_rate=1.5)


def test_the_recorded_event_carries_every_contract_field() -> None:
    assert set(ModelEventMetricsRecorded.model_fields) >= CONTRACT_RECORDED_FIELDS


def test_the_recorded_event_carries_every_metric_of_the_state() -> None:
    state = ModelMetricsState(
        window_type=EnumMetricsWindow.DAILY,
        window_start=datetime(2026, 3, 2, tzinfo=UTC),
        window_end=datetime(2026, 3, 3, tzinfo=UTC),
        total_generations=3,
        successful_generations=2,
        failed_generations=1,
        success_rate=2 / 3,
        failures_by_error_code={"TIMEOUT": 1},
        model_metrics={"m": {"total_generations": 2}},
    )
    correlation_id = uuid4()

    event = ModelEventMetricsRecorded.from_state(state, correlation_id=correlation_id)

    assert event.event_type == "CODEGEN_METRICS_RECORDED"
    assert event.aggregation_type == "daily"
    assert event.correlation_id == correlation_id
    for name in MetricsBody.model_fields:
        assert getattr(event, name) == getattr(state, name), name
    assert event.model_metrics["m"]["total_generations"] == 2
    json.loads(event.model_dump_json())


def test_the_recorded_event_timestamp_is_timezone_aware() -> None:
    event = ModelEventMetricsRecorded(correlation_id=uuid4(), aggregation_type="hourly")

    assert event.timestamp.tzinfo is not None


def test_the_intent_envelope_has_contract_defaults() -> None:
    intent = ModelEventPublishIntent(
        correlation_id=uuid4(),
        created_by="reducer",
        target_topic="dev.codegen.metrics_recorded.v1",
        target_key="hourly:2026-03-02T10:00:00Z",
        target_event_type="CODEGEN_METRICS_RECORDED",
        target_event_payload={"total_generations": 1},
    )

    assert intent.priority == 5
    assert intent.created_at.tzinfo is not None
    assert isinstance(intent.intent_id, UUID)
    assert intent.retry_policy == ModelRetryPolicy(
        max_attempts=3, initial_backoff_ms=500, backoff_multiplier=2.0
    )


@pytest.mark.parametrize("priority", [0, 11])
def test_intent_priority_outside_one_to_ten_is_rejected(priority: int) -> None:
    with pytest.raises(ValidationError):
        ModelEventPublishIntent(
            correlation_id=uuid4(),
            created_by="x",
            target_topic="t",
            target_key="k",
            target_event_type="E",
            target_event_payload={},
            priority=priority,
        )


def test_retry_policy_backoff_grows_by_the_multiplier() -> None:
    policy = ModelRetryPolicy()

    assert [policy.backoff_seconds(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]

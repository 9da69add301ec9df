"""The four input events: contract fields and defaults, a tolerant reader, strict numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import ValidationError

from models import (
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.events import DEFAULT_PIPELINE_STAGES
from tests.datasets import DICT_FACTORIES, MODEL_FACTORIES

EVENT_CLASSES = {
    "CODEGEN_STARTED": ModelEventCodegenStarted,
    "CODEGEN_STAGE_COMPLETED": ModelEventCodegenStageCompleted,
    "CODEGEN_COMPLETED": ModelEventCodegenCompleted,
    "CODEGEN_FAILED": ModelEventCodegenFailed,
}
KINDS = list(EVENT_CLASSES)

FLOAT_FIELDS = [
    ("CODEGEN_STAGE_COMPLETED", "duration_seconds"),
    ("CODEGEN_STAGE_COMPLETED", "cpu_time_seconds"),
    ("CODEGEN_STAGE_COMPLETED", "memory_mb"),
    ("CODEGEN_COMPLETED", "total_duration_seconds"),
    ("CODEGEN_COMPLETED", "quality_score"),
    ("CODEGEN_COMPLETED", "test_coverage"),
    ("CODEGEN_COMPLETED", "complexity_score"),
    ("CODEGEN_COMPLETED", "total_cost_usd"),
    ("CODEGEN_FAILED", "partial_duration_seconds"),
]
NON_NEGATIVE_FIELDS = [
    ("CODEGEN_STAGE_COMPLETED", "duration_seconds", -0.5),
    ("CODEGEN_STAGE_COMPLETED", "cpu_time_seconds", -0.5),
    ("CODEGEN_STAGE_COMPLETED", "memory_mb", -1.0),
    ("CODEGEN_COMPLETED", "total_duration_seconds", -1.0),
    ("CODEGEN_COMPLETED", "total_tokens", -1),
    ("CODEGEN_COMPLETED", "total_cost_usd", -0.01),
    ("CODEGEN_FAILED", "partial_duration_seconds", -1e-9),
    ("CODEGEN_FAILED", "retry_count", -1),
]


def validate(kind: str, **overrides: object):
    return EVENT_CLASSES[kind].model_validate(DICT_FACTORIES[kind](**overrides))


@pytest.mark.parametrize("kind", KINDS)
def test_every_factory_builds_a_valid_event_of_its_type(kind: str) -> None:
    event = MODEL_FACTORIES[kind]()

    assert isinstance(event, EVENT_CLASSES[kind])
    assert event.event_type == kind
    assert isinstance(event.workflow_id, UUID)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_ignored_not_rejected(kind: str) -> None:
    event = validate(kind, added_in_v2="surprise", nested={"a": [1, 2]})

    assert "added_in_v2" not in event.model_dump()
    assert not hasattr(event, "added_in_v2")


@pytest.mark.parametrize(("kind", "field"), FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected(kind: str, field: str, bad: float) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(kind, **{field: bad})

    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(("kind", "field", "bad"), NON_NEGATIVE_FIELDS)
def test_negative_durations_tokens_and_costs_are_rejected(
    kind: str, field: str, bad: float
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(kind, **{field: bad})

    assert caught.value.errors()[0]["type"] == "greater_than_equal"


@pytest.mark.parametrize(("kind", "field", "_bad"), NON_NEGATIVE_FIELDS)
def test_zero_durations_tokens_and_costs_are_accepted(kind: str, field: str, _bad: float) -> None:
    assert getattr(validate(kind, **{field: 0}), field) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_naive_timestamps_are_taken_as_utc(kind: str) -> None:
    event = validate(kind, timestamp="2026-03-02T10:15:00")

    assert event.timestamp == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


def test_aware_timestamps_keep_their_instant() -> None:
    event = validate("CODEGEN_STARTED", timestamp="2026-03-02T12:15:00+02:00")

    assert event.timestamp == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert event.timestamp.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("kind", KINDS)
def test_timestamp_and_event_id_default_to_now_in_utc_and_a_fresh_uuid(kind: str) -> None:
    data = DICT_FACTORIES[kind]()
    del data["timestamp"], data["event_id"]
    before = datetime.now(UTC)

    event = EVENT_CLASSES[kind].model_validate(data)

    assert event.timestamp.tzinfo is not None
    assert before <= event.timestamp <= datetime.now(UTC)
    assert isinstance(event.event_id, UUID)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["correlation_id", "workflow_id"])
def test_correlation_and_workflow_ids_are_required_uuids(kind: str, field: str) -> None:
    data = DICT_FACTORIES[kind]()
    del data[field]
    with pytest.raises(ValidationError):
        EVENT_CLASSES[kind].model_validate(data)
    with pytest.raises(ValidationError):
        validate(kind, **{field: "not-a-uuid"})


def test_started_event_defaults_follow_the_contract() -> None:
    event = validate("CODEGEN_STARTED")

    assert event.node_type_hint is None
    assert event.pipeline_stages == list(DEFAULT_PIPELINE_STAGES)
    assert len(event.pipeline_stages) == 8
    assert event.estimated_duration_seconds == 53


def test_stage_event_defaults_follow_the_contract() -> None:
    event = validate("CODEGEN_STAGE_COMPLETED")

    assert event.cpu_time_seconds is None
    assert event.memory_mb is None
    assert event.warnings == []
    assert event.stage_output == {}


@pytest.mark.parametrize("number", [0, 9, -1])
def test_stage_number_outside_one_to_eight_is_rejected(number: int) -> None:
    with pytest.raises(ValidationError):
        validate("CODEGEN_STAGE_COMPLETED", stage_number=number)


@pytest.mark.parametrize("number", [1, 8])
def test_stage_number_bounds_are_inclusive(number: int) -> None:
    assert validate("CODEGEN_STAGE_COMPLETED", stage_number=number).stage_number == number


def test_completed_event_defaults_follow_the_contract() -> None:
    event = validate("CODEGEN_COMPLETED")

    assert event.test_coverage is None
    assert event.complexity_score is None
    assert event.patterns_applied == []
    assert event.intelligence_sources == []


@pytest.mark.parametrize("field", ["quality_score", "test_coverage"])
@pytest.mark.parametrize("bad", [-0.01, 1.01])
def test_unit_interval_scores_outside_zero_to_one_are_rejected(field: str, bad: float) -> None:
    with pytest.raises(ValidationError):
        validate("CODEGEN_COMPLETED", **{field: bad})


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_quality_score_bounds_are_inclusive(value: float) -> None:
    assert validate("CODEGEN_COMPLETED", quality_score=value).quality_score == value


def test_complexity_score_has_no_bounds_beyond_being_finite() -> None:
    assert validate("CODEGEN_COMPLETED", complexity_score=-3.5).complexity_score == -3.5


def test_failed_event_defaults_follow_the_contract() -> None:
    event = validate("CODEGEN_FAILED")

    assert event.error_context == {}
    assert event.stack_trace is None
    assert event.partial_files == []
    assert event.retry_count == 0
    assert event.is_retryable is True
    assert event.retry_after_seconds is None


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("CODEGEN_STARTED", "prompt"),
        ("CODEGEN_STAGE_COMPLETED", "success"),
        ("CODEGEN_COMPLETED", "primary_model"),
        ("CODEGEN_COMPLETED", "tests"),
        ("CODEGEN_FAILED", "error_code"),
    ],
)
def test_required_contract_fields_must_be_present(kind: str, field: str) -> None:
    data = DICT_FACTORIES[kind]()
    del data[field]

    with pytest.raises(ValidationError) as caught:
        EVENT_CLASSES[kind].model_validate(data)

    assert caught.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_round_trips_through_json(kind: str) -> None:
    event = MODEL_FACTORIES[kind]()

    assert EVENT_CLASSES[kind].model_validate_json(event.model_dump_json()) == event


def test_events_are_immutable() -> None:
    event = MODEL_FACTORIES["CODEGEN_COMPLETED"]()

    with pytest.raises(ValidationError):
        event.quality_score = 0.1  # type: ignore[misc]

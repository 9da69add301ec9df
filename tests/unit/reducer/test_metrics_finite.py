"""No inf or NaN is ever published: extreme but finite inputs give finite metrics or ValueError.

Events are made with ``model_construct`` (no validation), so the metrics layer is tested on its
own, whatever bounds the input models add: costs of 1e308, 2**64 tokens, durations up to the
largest double, thousands of merged copies.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.events import (
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.metrics import ModelEventMetricsRecorded, ModelMetricsState
from models.settings import ReducerSettings
from reducer import AggregationState
from tests.datasets import completed

BIG = sys.float_info.max
extreme = st.one_of(
    st.sampled_from([0.0, 5e-324, 1e-300, 1.0, 1e300, 1e308, BIG]),
    st.floats(min_value=0, max_value=BIG),
)
signed_extreme = st.one_of(extreme, extreme.map(lambda v: -v))
tokens = st.one_of(st.sampled_from([0, 2**63 - 1, 2**63, 2**64]), st.integers(0, 2**64))
names = st.sampled_from(["alpha", "beta", "x" * 300])


@st.composite
def events(draw: st.DrawFn) -> object:
    workflow = uuid.UUID(int=draw(st.integers(0, 5)))
    kind = draw(st.sampled_from(["started", "stage", "completed", "failed"]))
    if kind == "started":
        return ModelEventCodegenStarted.model_construct(workflow_id=workflow)
    if kind == "stage":
        return ModelEventCodegenStageCompleted.model_construct(
            workflow_id=workflow,
            stage_name=draw(names),
            stage_number=draw(st.integers(1, 8)),
            duration_seconds=draw(extreme),
            success=draw(st.booleans()),
        )
    if kind == "failed":
        return ModelEventCodegenFailed.model_construct(
            workflow_id=workflow,
            partial_duration_seconds=draw(extreme),
            failed_stage=draw(names),
            error_code=draw(names),
        )
    return ModelEventCodegenCompleted.model_construct(
        workflow_id=workflow,
        total_duration_seconds=draw(extreme),
        quality_score=draw(st.one_of(st.floats(0, 1), extreme)),
        test_coverage=draw(st.none() | st.floats(0, 1) | extreme),
        complexity_score=draw(st.none() | signed_extreme),
        total_cost_usd=draw(extreme),
        total_tokens=draw(tokens),
        patterns_applied=draw(st.lists(st.sampled_from(["saga", "cqrs"]), max_size=3)),
        primary_model=draw(names),
        node_type=draw(names),
    )


TINY_CAPS = ReducerSettings(
    exact_percentile_cap=2, max_keys_per_breakdown=1, max_workflows=1, exact_distinct_cap=2
)
"""Sketches, __other__ and HyperLogLog from a handful of events."""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(events(), min_size=1, max_size=12),
    doublings=st.integers(0, 11),
    caps=st.sampled_from([ReducerSettings(), TINY_CAPS]),
)
def test_extreme_finite_inputs_publish_finite_json_or_raise_value_error(
    batch: list, doublings: int, caps: ReducerSettings
) -> None:
    state = AggregationState(caps).add_batch(batch)
    for _ in range(doublings):  # 2**doublings merged copies
        state = state.merge(state)

    # The state itself always survives encoding: its sums are exact, whatever their size.
    assert AggregationState.from_bytes(state.to_bytes()).to_obj() == state.to_obj()
    try:
        event = ModelEventMetricsRecorded.from_state(
            state.to_metrics(), correlation_id=uuid.uuid4()
        )
    except ValueError:
        return
    text = event.model_dump_json()

    assert "NaN" not in text and "Infinity" not in text
    # pydantic writes a non-finite float as null, which validation of a float field refuses.
    assert ModelEventMetricsRecorded.model_validate_json(text) == event


def test_two_costs_of_1e308_name_the_cost_total_instead_of_publishing_null() -> None:
    state = AggregationState().add_batch(
        [completed(total_cost_usd=1e308, primary_model="m"), completed(total_cost_usd=1e308)]
    )

    with pytest.raises(ValueError, match=r"^total_cost_usd: "):
        state.to_metrics()


def test_a_model_row_whose_cost_sum_overflows_is_named() -> None:
    state = AggregationState().add_batch(
        [completed(total_cost_usd=1e308, primary_model="m") for _ in range(2)]
    )
    state.cost.total = 0  # only the row overflows

    with pytest.raises(ValueError, match=r"^model_metrics\[m\]\.total_cost_usd: "):
        state.to_metrics()


def test_a_workflow_row_whose_duration_sum_overflows_is_named() -> None:
    batch = [
        ModelEventCodegenFailed.model_construct(
            workflow_id=uuid.UUID(int=7),
            partial_duration_seconds=1e308,
            failed_stage="s",
            error_code="e",
        )
        for _ in range(2)
    ]
    state = AggregationState().add_batch(batch)

    with pytest.raises(ValueError, match=r"workflow_metrics\[.*7\]\.total_duration_seconds: "):
        state.to_metrics()


@pytest.mark.parametrize(
    "fields",
    [
        {"total_cost_usd": float("inf")},
        {"avg_duration_seconds": float("nan")},
        {"avg_stage_durations": {"s": float("inf")}},
        {"model_metrics": {"m": {"total_cost_usd": float("inf")}}},
        {"workflow_metrics": {"w": {"stages_seen": [1], "total_cost_usd": float("-inf")}}},
        {"cost_buckets": {"<1": {"count": 1, "total_cost_usd": float("nan")}}},
    ],
    ids=lambda f: next(iter(f)),
)
def test_metrics_refuse_non_finite_numbers_anywhere(fields: dict) -> None:
    with pytest.raises(ValueError, match="finite"):
        ModelMetricsState(**fields)
    with pytest.raises(ValueError, match="finite"):
        ModelEventMetricsRecorded(correlation_id=uuid.uuid4(), aggregation_type="hourly", **fields)

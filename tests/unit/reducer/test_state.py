"""AggregationState: every metric rule of the issue, and merging without surprises."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from models import ModelMetricsState, ReducerSettings
from models.events import CodegenEvent
from reducer import AggregationState, percentile
from reducer.groupings import OTHER_KEY
from tests.datasets import (
    Lognormal,
    completed,
    failed,
    mixed_events,
    new_id,
    stage,
    started,
    workflow,
)

MODEL_KEYS = {
    "total_generations",
    "avg_duration_seconds",
    "avg_quality_score",
    "total_tokens",
    "total_cost_usd",
    "avg_cost_per_generation",
}
NODE_TYPE_KEYS = {"total_generations", "avg_duration_seconds", "avg_quality_score"}


def metrics_of(events: list[CodegenEvent], **settings: object) -> ModelMetricsState:
    state = AggregationState(ReducerSettings(**settings)) if settings else AggregationState()
    return state.add_batch(events).to_metrics()


# -- counts --------------------------------------------------------------------------------------


def test_total_generations_are_the_finished_ones_so_success_rate_never_exceeds_one() -> None:
    events = [started() for _ in range(10)] + [completed(), completed(), failed()]

    m = metrics_of(events)

    assert m.started_generations == 10
    assert m.successful_generations == 2
    assert m.failed_generations == 1
    assert m.total_generations == m.successful_generations + m.failed_generations == 3
    assert m.success_rate == pytest.approx(2 / 3)
    assert m.success_rate <= 1


def test_started_events_alone_give_no_generations_and_a_zero_success_rate() -> None:
    m = metrics_of([started(), started()])

    assert (m.total_generations, m.started_generations, m.success_rate) == (0, 2, 0.0)


def test_all_completed_gives_a_success_rate_of_exactly_one() -> None:
    assert metrics_of([completed(), completed()]).success_rate == 1.0


def test_every_event_is_counted_as_processed_and_by_type() -> None:
    events = [started(), stage(), stage(), completed(), failed()]

    m = metrics_of(events)

    assert m.events_processed == 5
    assert m.events_by_type == {
        "CODEGEN_STARTED": 1,
        "CODEGEN_STAGE_COMPLETED": 2,
        "CODEGEN_COMPLETED": 1,
        "CODEGEN_FAILED": 1,
    }
    assert m.events_invalid == 0


def test_an_empty_state_gives_zeros() -> None:
    m = AggregationState().to_metrics()

    assert m.events_processed == 0
    assert m.total_generations == 0
    assert m.avg_duration_seconds == m.p50_duration_seconds == m.max_duration_seconds == 0.0
    assert m.avg_quality_score == 0.0
    assert m.avg_test_coverage is None
    assert m.avg_complexity_score is None
    assert m.avg_cost_per_generation == 0.0
    assert m.model_metrics == {}
    assert m.workflow_ids_tracked == 0
    assert m.quality_score_buckets == {"low": 0, "medium": 0, "high": 0}


def test_add_returns_the_state_and_equals_add_batch() -> None:
    events = [started(), completed(), failed()]
    one_by_one = AggregationState()
    for event in events:
        assert one_by_one.add(event) is one_by_one

    assert one_by_one.to_bytes() == AggregationState().add_batch(events).to_bytes()


def test_something_that_is_not_a_codegen_event_is_refused() -> None:
    with pytest.raises(TypeError):
        AggregationState().add_batch([object()])  # type: ignore[list-item]


# -- durations -----------------------------------------------------------------------------------


def test_duration_stats_come_from_completed_events_only() -> None:
    durations = [float(d) for d in range(1, 101)]
    events = [completed(total_duration_seconds=d) for d in durations]
    events += [failed(partial_duration_seconds=5000.0), stage(duration_seconds=9000.0)]

    m = metrics_of(events)

    assert m.avg_duration_seconds == 50.5
    assert m.p50_duration_seconds == 50.0
    assert m.p95_duration_seconds == 95.0
    assert m.p99_duration_seconds == 99.0
    assert m.min_duration_seconds == 1.0
    assert m.max_duration_seconds == 100.0
    assert m.percentiles_exact


def test_failed_partial_durations_are_averaged_apart() -> None:
    events = [
        completed(total_duration_seconds=10.0),
        failed(partial_duration_seconds=1.0),
        failed(partial_duration_seconds=2.0),
    ]

    m = metrics_of(events)

    assert m.avg_failed_partial_duration_seconds == 1.5
    assert m.avg_duration_seconds == 10.0


def test_failures_are_broken_down_by_stage_and_by_error_code() -> None:
    events = [
        failed(failed_stage="validation", error_code="TIMEOUT"),
        failed(failed_stage="validation", error_code="INVALID"),
        failed(failed_stage="code_generation", error_code="TIMEOUT"),
    ]

    m = metrics_of(events)

    assert m.failures_by_stage == {"code_generation": 1, "validation": 2}
    assert m.failures_by_error_code == {"INVALID": 1, "TIMEOUT": 2}


# -- exact means ---------------------------------------------------------------------------------


def test_every_mean_of_five_values_of_0_92_is_exactly_0_92() -> None:
    events = [
        completed(
            total_duration_seconds=0.92,
            quality_score=0.92,
            test_coverage=0.92,
            complexity_score=0.92,
            total_cost_usd=0.92,
            primary_model="m",
            node_type="effect",
        )
        for _ in range(5)
    ]
    events += [stage(stage_name="s", duration_seconds=0.92) for _ in range(5)]
    events += [failed(partial_duration_seconds=0.92) for _ in range(5)]

    m = metrics_of(events)

    assert m.avg_duration_seconds == 0.92
    assert m.avg_quality_score == 0.92
    assert m.avg_test_coverage == 0.92
    assert m.avg_complexity_score == 0.92
    assert m.avg_cost_per_generation == 0.92
    assert m.avg_failed_partial_duration_seconds == 0.92
    assert m.avg_stage_durations == {"s": 0.92}
    assert m.stage_metrics["s"]["avg_duration_seconds"] == 0.92
    for row in (m.model_metrics["m"], m.node_type_metrics["effect"]):
        assert row["avg_duration_seconds"] == 0.92
        assert row["avg_quality_score"] == 0.92
    assert m.model_metrics["m"]["avg_cost_per_generation"] == 0.92


def test_sums_are_exact_not_float_running_sums() -> None:
    events = [completed(total_cost_usd=0.1) for _ in range(10)]

    m = metrics_of(events)

    assert sum([0.1] * 10) != 1.0
    assert m.total_cost_usd == 1.0
    assert m.model_metrics["model-a"]["total_cost_usd"] == 1.0
    assert m.cost_buckets["0.1-0.5"]["total_cost_usd"] == 1.0


def test_avg_test_coverage_and_complexity_are_none_when_no_event_carries_one() -> None:
    m = metrics_of([completed(), completed()])

    assert m.avg_test_coverage is None
    assert m.avg_complexity_score is None


def test_avg_test_coverage_and_complexity_average_only_the_events_carrying_one() -> None:
    events = [
        completed(test_coverage=0.5, complexity_score=4.0),
        completed(),
        completed(test_coverage=1.0),
    ]

    m = metrics_of(events)

    assert m.avg_test_coverage == 0.75
    assert m.avg_complexity_score == 4.0


def test_tokens_and_cost_are_sums_and_cost_per_generation_divides_by_successes() -> None:
    events = [
        completed(total_tokens=1000, total_cost_usd=0.25),
        completed(total_tokens=3000, total_cost_usd=0.75),
        failed(),
        started(),
    ]

    m = metrics_of(events)

    assert m.total_tokens == 4000
    assert m.total_cost_usd == 1.0
    assert m.avg_cost_per_generation == 0.5


def test_costs_beyond_the_largest_double_are_aggregated_but_refused_as_metrics() -> None:
    state = AggregationState().add_batch(
        [completed(total_cost_usd=1e308), completed(total_cost_usd=1e308)]
    )

    assert state.cost.mean == 1e308  # the exact sum is kept: the mean is still right
    with pytest.raises(ValueError, match=r"^total_cost_usd: .*exceeds the float range"):
        state.to_metrics()


# -- intelligence --------------------------------------------------------------------------------


def test_intelligence_counts_completions_with_patterns_and_averages_over_successes() -> None:
    events = [
        completed(patterns_applied=["saga", "cqrs"]),
        completed(patterns_applied=["outbox"]),
        completed(patterns_applied=[]),
        completed(),
        failed(),
    ]

    m = metrics_of(events)

    assert m.intelligence_enabled_count == 2
    assert m.avg_patterns_applied == 0.75


# -- groupings -----------------------------------------------------------------------------------


def test_stage_breakdown_has_count_failures_average_and_p95() -> None:
    durations = [float(d) for d in range(1, 21)]
    events = [
        stage(stage_name="validation", duration_seconds=d, success=d != 3.0) for d in durations
    ]
    events.append(stage(stage_name="file_writing", duration_seconds=0.5, success=False))

    m = metrics_of(events)

    assert m.stage_metrics["validation"] == {
        "count": 20,
        "failures": 1,
        "avg_duration_seconds": 10.5,
        "p95_duration_seconds": percentile(durations, 0.95),
    }
    assert m.stage_metrics["file_writing"]["failures"] == 1
    assert m.avg_stage_durations == {"file_writing": 0.5, "validation": 10.5}


def test_model_breakdown_has_the_contract_keys_plus_p95() -> None:
    events = [
        completed(
            primary_model="gpt",
            total_duration_seconds=d,
            quality_score=0.5,
            total_tokens=10,
            total_cost_usd=0.5,
        )
        for d in (10.0, 20.0, 30.0)
    ]
    events.append(completed(primary_model="claude", total_duration_seconds=7.0))

    m = metrics_of(events)

    row = m.model_metrics["gpt"]
    assert set(row) == MODEL_KEYS | {"p95_duration_seconds"}
    assert row["total_generations"] == 3
    assert row["avg_duration_seconds"] == 20.0
    assert row["p95_duration_seconds"] == 30.0
    assert row["avg_quality_score"] == 0.5
    assert row["total_tokens"] == 30
    assert row["total_cost_usd"] == 1.5
    assert row["avg_cost_per_generation"] == 0.5
    assert m.model_metrics["claude"]["total_generations"] == 1


def test_node_type_breakdown_has_the_contract_keys_plus_p95() -> None:
    events = [completed(node_type="reducer", total_duration_seconds=d) for d in (1.0, 3.0)]
    events.append(completed(node_type="compute"))

    m = metrics_of(events)

    row = m.node_type_metrics["reducer"]
    assert set(row) == NODE_TYPE_KEYS | {"p95_duration_seconds"}
    assert row["total_generations"] == 2
    assert row["avg_duration_seconds"] == 2.0
    assert row["p95_duration_seconds"] == 3.0
    assert set(m.node_type_metrics) == {"compute", "reducer"}


@pytest.mark.parametrize(
    ("score", "bucket"),
    [
        (0.0, "low"),
        (0.5999, "low"),
        (0.6, "medium"),
        (0.7999, "medium"),
        (0.8, "high"),
        (1.0, "high"),
    ],
)
def test_quality_buckets_are_low_below_0_6_medium_below_0_8_and_high_above(
    score: float, bucket: str
) -> None:
    m = metrics_of([completed(quality_score=score)])

    assert m.quality_score_buckets == {"low": 0, "medium": 0, "high": 0, bucket: 1}


def test_quality_bucket_edges_are_configurable() -> None:
    events = [completed(quality_score=s) for s in (0.45, 0.5, 0.89, 0.9)]

    m = metrics_of(events, quality_bucket_edges=(0.5, 0.9))

    assert m.quality_score_buckets == {"low": 1, "medium": 2, "high": 1}


def test_cost_buckets_count_and_sum_cost_with_upper_exclusive_default_edges() -> None:
    costs = [0.0, 0.009, 0.01, 0.049, 0.05, 0.5, 0.99, 1.0, 7.5]

    m = metrics_of([completed(total_cost_usd=c) for c in costs])

    assert list(m.cost_buckets) == ["<0.01", "0.01-0.05", "0.05-0.1", "0.1-0.5", "0.5-1", ">=1"]
    assert {k: v["count"] for k, v in m.cost_buckets.items()} == {
        "<0.01": 2,
        "0.01-0.05": 2,
        "0.05-0.1": 1,
        "0.1-0.5": 0,
        "0.5-1": 2,
        ">=1": 2,
    }
    assert m.cost_buckets["0.5-1"]["total_cost_usd"] == 1.49
    assert m.cost_buckets[">=1"]["total_cost_usd"] == 8.5
    assert sum(v["count"] for v in m.cost_buckets.values()) == len(costs)


def test_cost_bucket_edges_are_configurable() -> None:
    m = metrics_of(
        [completed(total_cost_usd=c) for c in (0.5, 2.0, 2.5)], cost_bucket_edges=(1.0, 2.0)
    )

    assert m.cost_buckets == {
        "<1": {"count": 1, "total_cost_usd": 0.5},
        "1-2": {"count": 0, "total_cost_usd": 0.0},
        ">=2": {"count": 2, "total_cost_usd": 4.5},
    }


def test_failed_and_started_events_do_not_land_in_quality_or_cost_buckets() -> None:
    m = metrics_of([failed(), started(), stage()])

    assert sum(m.quality_score_buckets.values()) == 0
    assert sum(v["count"] for v in m.cost_buckets.values()) == 0


def test_workflow_summaries_report_status_stages_stage_time_duration_and_cost() -> None:
    done = workflow(outcome="completed", stages=3, total_duration_seconds=9.0, total_cost_usd=0.3)
    broken = workflow(outcome="failed", stages=2, partial_duration_seconds=4.0)
    running = workflow(outcome="running", stages=1)

    m = metrics_of(done + broken + running)

    assert m.workflow_metrics[str(done[0].workflow_id)] == {
        "status": "completed",
        "stages_seen": [1, 2, 3],
        "stage_time_seconds": 6.0,
        "total_duration_seconds": 9.0,
        "total_cost_usd": 0.3,
    }
    assert m.workflow_metrics[str(broken[0].workflow_id)]["status"] == "failed"
    assert m.workflow_metrics[str(broken[0].workflow_id)]["total_duration_seconds"] == 4.0
    assert m.workflow_metrics[str(running[0].workflow_id)]["status"] == "running"
    assert m.workflow_metrics[str(running[0].workflow_id)]["stages_seen"] == [1]
    assert m.workflows_evicted == 0


def test_workflow_summaries_are_capped_and_evictions_counted() -> None:
    events = [e for _ in range(5) for e in workflow(stages=1)]

    m = metrics_of(events, max_workflows=2)

    assert len(m.workflow_metrics) == 2
    assert m.workflows_evicted == 3
    assert m.workflow_ids_tracked == 5


def test_a_zero_workflow_cap_keeps_no_summaries_but_still_counts_workflows() -> None:
    m = metrics_of(workflow() + workflow(), max_workflows=0)

    assert m.workflow_metrics == {}
    assert m.workflows_evicted == 2
    assert m.workflow_ids_tracked == 2


def test_distinct_workflow_ids_count_every_event_type_once() -> None:
    shared = new_id()
    events = [
        started(workflow_id=shared),
        stage(workflow_id=shared),
        completed(workflow_id=shared),
        started(),
        failed(),
        stage(),
    ]

    m = metrics_of(events)

    assert m.workflow_ids_tracked == 4
    assert m.workflow_ids_exact


def test_distinct_workflow_ids_are_exact_up_to_the_cap_then_within_two_percent() -> None:
    template = started()
    rng = np.random.default_rng(12)
    ids = [int.from_bytes(rng.bytes(16)) for _ in range(12_000)]
    events = [template.model_copy(update={"workflow_id": _uuid(i)}) for i in ids]

    at_cap = metrics_of(events[:1000], exact_distinct_cap=1000, max_workflows=0)
    beyond = metrics_of(events, exact_distinct_cap=1000, max_workflows=0)

    assert (at_cap.workflow_ids_tracked, at_cap.workflow_ids_exact) == (1000, True)
    assert not beyond.workflow_ids_exact
    assert abs(beyond.workflow_ids_tracked - 12_000) <= 0.02 * 12_000


def _uuid(value: int):
    from uuid import UUID

    return UUID(int=value)


def test_breakdown_keys_beyond_the_cap_fold_into_other() -> None:
    events = [completed(primary_model=f"model-{i}", total_tokens=1) for i in range(6)]

    m = metrics_of(events, max_keys_per_breakdown=2)

    assert len(m.model_metrics) == 3
    assert OTHER_KEY in m.model_metrics
    assert m.model_metrics[OTHER_KEY]["total_generations"] == 4
    assert sum(row["total_generations"] for row in m.model_metrics.values()) == 6
    assert sum(row["total_tokens"] for row in m.model_metrics.values()) == 6


def test_breakdown_keys_longer_than_256_characters_are_truncated() -> None:
    long_name = "x" * 300

    m = metrics_of([completed(primary_model=long_name), completed(node_type="n" * 257)])

    assert "x" * 256 in m.model_metrics
    assert all(len(key) <= 256 for key in m.model_metrics)
    assert all(len(key) <= 256 for key in m.node_type_metrics)


def test_a_flood_of_unique_model_names_keeps_the_model_breakdown_bounded() -> None:
    template = completed()
    cap = ReducerSettings().max_keys_per_breakdown
    state = AggregationState()
    for start in range(0, 100_000, 10_000):
        state.add_batch(
            [
                template.model_copy(update={"primary_model": f"model-{i}"})
                for i in range(start, start + 10_000)
            ]
        )

    m = state.to_metrics()

    assert len(state.models.entries) <= cap
    assert len(m.model_metrics) <= cap + 1
    assert m.model_metrics[OTHER_KEY]["total_generations"] == 100_000 - cap
    assert m.successful_generations == 100_000


# -- percentiles: exact, then the sketch ---------------------------------------------------------


def test_percentiles_are_exact_up_to_the_cap_and_flagged_when_the_sketch_takes_over() -> None:
    durations = Lognormal(3, 0.5).generate(51, seed=1).tolist()
    events = [completed(total_duration_seconds=d) for d in durations]

    exact = metrics_of(events[:50], exact_percentile_cap=50)
    sketched = metrics_of(events, exact_percentile_cap=50)

    assert exact.percentiles_exact
    assert exact.p95_duration_seconds == percentile(durations[:50], 0.95)
    assert not sketched.percentiles_exact
    assert sketched.min_duration_seconds == min(durations)
    assert sketched.max_duration_seconds == max(durations)


def test_per_key_percentiles_stay_within_one_percent_in_sketch_mode() -> None:
    models = ["a", "b", "c"]
    rng = np.random.default_rng(7)
    template = completed()
    durations = Lognormal(2, 1).generate(9000, seed=3).tolist()
    chosen = [models[i] for i in rng.integers(len(models), size=len(durations))]
    events = [
        template.model_copy(
            update={"total_duration_seconds": d, "primary_model": k, "node_type": k}
        )
        for d, k in zip(durations, chosen, strict=True)
    ]

    m = metrics_of(events, exact_percentile_cap=200)

    assert not m.percentiles_exact
    for p, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = percentile(durations, p)
        assert abs(getattr(m, f"{name}_duration_seconds") - exact) <= 0.01 * exact
    for key in models:
        values = [d for d, k in zip(durations, chosen, strict=True) if k == key]
        exact = percentile(values, 0.95)
        for row in (m.model_metrics[key], m.node_type_metrics[key]):
            assert abs(row["p95_duration_seconds"] - exact) <= 0.01 * exact


# -- merging -------------------------------------------------------------------------------------


def test_merging_states_with_different_settings_raises_value_error() -> None:
    a = AggregationState(ReducerSettings(exact_percentile_cap=10))
    b = AggregationState(ReducerSettings(exact_percentile_cap=20))

    with pytest.raises(ValueError, match="settings"):
        a.merge(b)
    with pytest.raises(ValueError):
        b.merge_in(a)


def test_merge_mutates_neither_argument() -> None:
    settings = ReducerSettings(exact_percentile_cap=5, exact_distinct_cap=3, max_workflows=2)
    a = AggregationState(settings).add_batch([e for _ in range(4) for e in workflow()])
    b = AggregationState(settings).add_batch(
        [e for _ in range(3) for e in workflow(outcome="failed")]
    )
    before = (a.to_bytes(), b.to_bytes())

    merged = a.merge(b)
    merged.add_batch(workflow())
    merged.merge_in(a)

    assert (a.to_bytes(), b.to_bytes()) == before
    assert merged is not a
    assert merged is not b


def test_merge_returns_the_metrics_of_both_states_together() -> None:
    first, second = workflow(), workflow(outcome="failed")

    merged = AggregationState().add_batch(first).merge(AggregationState().add_batch(second))

    assert merged.to_bytes() == AggregationState().add_batch(first + second).to_bytes()


def test_merging_with_an_empty_state_changes_nothing() -> None:
    state = AggregationState().add_batch(workflow())

    assert state.merge(AggregationState()).to_bytes() == state.to_bytes()
    assert AggregationState().merge(state).to_bytes() == state.to_bytes()


def test_merge_in_updates_the_state_in_place_and_returns_it() -> None:
    state = AggregationState().add_batch([completed()])

    assert state.merge_in(AggregationState().add_batch([completed()])) is state
    assert state.to_metrics().successful_generations == 2


def test_to_metrics_takes_the_window_type_and_bounds_given() -> None:
    from datetime import UTC, datetime

    from models import EnumMetricsWindow

    start, end = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)

    m = AggregationState().to_metrics("daily", start, end)  # type: ignore[arg-type]

    assert m.window_type is EnumMetricsWindow.DAILY
    assert (m.window_start, m.window_end) == (start, end)


def test_invalid_events_are_counted_apart_and_survive_merges_and_bytes() -> None:
    state = AggregationState().add_batch([completed()])
    state.events_invalid += 2

    merged = state.merge(AggregationState.from_bytes(state.to_bytes()))
    m = merged.to_metrics()

    assert m.events_invalid == 4
    assert m.events_processed == 2


# -- memory --------------------------------------------------------------------------------------


def test_a_state_is_freed_as_soon_as_it_is_dropped_without_the_cycle_collector() -> None:
    """No reference cycle inside a state: the partials a window actor builds and encodes every
    tick (and merged copies) are freed by reference counting at once, not left to pile up as
    cyclic garbage until a full collection (about 10 MiB of a window actor's RSS, measured)."""
    events = [e for _ in range(20) for e in workflow(stages=8)] + mixed_events(200)
    built = AggregationState().add_batch(events)
    gc.collect()
    gc.disable()
    try:
        for make in (
            AggregationState,
            lambda: AggregationState().add_batch(events),
            lambda: built.merge(built),
            lambda: AggregationState.from_bytes(built.to_bytes()),
        ):
            dropped = weakref.ref(make())
            assert dropped() is None
    finally:
        gc.enable()

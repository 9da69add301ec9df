"""Property tests: merging partial states equals aggregating the union, and bytes round-trip.

Each property runs under default settings and under tiny caps, so the overflow paths (sketch
percentiles, HyperLogLog, ``__other__`` folding, workflow eviction) are exercised too.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from functools import reduce

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import EnumMetricsWindow, ReducerSettings
from models.events import CodegenEvent
from reducer import AggregationState, MetricsAggregator
from tests.datasets import BASE_TIME, completed, failed, stage, started

VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}
SETTINGS = [
    ReducerSettings(),
    ReducerSettings(
        exact_percentile_cap=3,
        max_keys_per_breakdown=2,
        max_workflows=2,
        exact_distinct_cap=3,
        max_key_length=8,
    ),
    ReducerSettings(
        exact_percentile_cap=1,
        max_keys_per_breakdown=1,
        max_workflows=0,
        exact_distinct_cap=1,
        cost_bucket_edges=(0.5,),
        quality_bucket_edges=(0.1, 0.2),
    ),
]
WORKFLOW_IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(12)]
MODELS = ["gpt", "claude", "gemini", "a-model-name-longer-than-eight", "__other__"]
STAGES = ["parse", "generate", "validate", "write"]

durations = st.one_of(
    st.just(0.0),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.92, 0.1, 1.0, 2.5, 1e-320]),
)
unit = st.floats(min_value=0, max_value=1, allow_nan=False)
costs = st.floats(min_value=0, max_value=5, allow_nan=False)
common = {
    "workflow_id": st.sampled_from(WORKFLOW_IDS),
    "timestamp": st.integers(0, 3 * 86400).map(lambda s: BASE_TIME + timedelta(seconds=s)),
}

events_strategy = st.one_of(
    st.builds(started, **common),
    st.builds(
        stage,
        **common,
        stage_name=st.sampled_from(STAGES),
        stage_number=st.integers(1, 8),
        duration_seconds=durations,
        success=st.booleans(),
    ),
    st.builds(
        completed,
        **common,
        total_duration_seconds=durations,
        quality_score=unit,
        test_coverage=st.none() | unit,
        complexity_score=st.none() | st.floats(-50, 50, allow_nan=False),
        primary_model=st.sampled_from(MODELS),
        node_type=st.sampled_from(["effect", "compute", "reducer"]),
        total_tokens=st.integers(0, 10**6),
        total_cost_usd=costs,
        patterns_applied=st.lists(st.sampled_from(["saga", "cqrs"]), max_size=3),
    ),
    st.builds(
        failed,
        **common,
        failed_stage=st.sampled_from(STAGES),
        partial_duration_seconds=durations,
        error_code=st.sampled_from(["TIMEOUT", "INVALID", "IO"]),
    ),
)
event_lists = st.lists(events_strategy, max_size=30)
PROPERTY = settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAIN_PROPERTY = settings(PROPERTY, max_examples=80)


def state_of(events: list[CodegenEvent], reducer_settings: ReducerSettings) -> AggregationState:
    return AggregationState(reducer_settings).add_batch(events)


def metrics(state: AggregationState) -> dict:
    return state.to_metrics(EnumMetricsWindow.DAILY).model_dump(exclude=VOLATILE)


@st.composite
def splits(draw: st.DrawFn) -> tuple[list[CodegenEvent], list[list[CodegenEvent]]]:
    """Events and a split of them into 1-4 contiguous parts of any sizes, in any order."""
    events = draw(event_lists)
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=3)))
    bounds = [0, *cuts, len(events)]
    parts = [events[a:b] for a, b in itertools.pairwise(bounds)]
    return events, draw(st.permutations(parts))


@MAIN_PROPERTY
@given(splits(), st.sampled_from(SETTINGS))
def test_merging_the_states_of_any_split_in_any_order_equals_the_union(split, config) -> None:
    events, parts = split
    whole = state_of(events, config)

    merged = reduce(
        lambda acc, part: acc.merge(state_of(part, config)), parts, AggregationState(config)
    )

    assert metrics(merged) == metrics(whole)


@PROPERTY
@given(event_lists, st.sampled_from(SETTINGS))
def test_merging_equal_halves_equals_the_union(events, config) -> None:
    half = len(events) // 2

    merged = state_of(events[:half], config).merge(state_of(events[half:], config))

    assert metrics(merged) == metrics(state_of(events, config))


@PROPERTY
@given(event_lists, event_lists, event_lists, st.sampled_from(SETTINGS))
def test_merge_is_associative_and_commutative(a, b, c, config) -> None:
    sa, sb, sc = (state_of(part, config) for part in (a, b, c))

    left = sa.merge(sb).merge(sc)
    right = sa.merge(sb.merge(sc))
    swapped = sc.merge(sa).merge(sb)

    assert metrics(left) == metrics(right) == metrics(swapped)


@PROPERTY
@given(event_lists, event_lists, st.sampled_from(SETTINGS))
def test_aggregating_a_then_b_equals_b_then_a_equals_merging(a, b, config) -> None:
    a_then_b = AggregationState(config).add_batch(a).add_batch(b)
    b_then_a = AggregationState(config).add_batch(b).add_batch(a)
    merged = state_of(a, config).merge(state_of(b, config))

    assert metrics(a_then_b) == metrics(b_then_a) == metrics(merged)


@PROPERTY
@given(event_lists, st.randoms(use_true_random=False), st.sampled_from(SETTINGS))
def test_the_order_of_events_never_changes_the_metrics(events, rng, config) -> None:
    shuffled = events[:]
    rng.shuffle(shuffled)

    assert metrics(state_of(shuffled, config)) == metrics(state_of(events, config))


@PROPERTY
@given(event_lists, event_lists, st.sampled_from(SETTINGS))
def test_merge_never_mutates_either_argument(a, b, config) -> None:
    sa, sb = state_of(a, config), state_of(b, config)
    before = (sa.to_bytes(), sb.to_bytes())

    merged = sa.merge(sb)
    merged.merge_in(sb).add_batch(a)

    assert (sa.to_bytes(), sb.to_bytes()) == before


@PROPERTY
@given(event_lists, st.sampled_from(SETTINGS))
def test_bytes_round_trip_to_identical_metrics(events, config) -> None:
    state = state_of(events, config)

    data = state.to_bytes()
    copy = AggregationState.from_bytes(data)

    assert metrics(copy) == metrics(state)
    assert copy.to_bytes() == data


@PROPERTY
@given(splits(), st.sampled_from(SETTINGS))
def test_states_that_travelled_as_bytes_merge_like_the_union(split, config) -> None:
    events, parts = split

    merged = reduce(
        lambda acc, part: acc.merge(AggregationState.from_bytes(state_of(part, config).to_bytes())),
        parts,
        AggregationState(config),
    )

    assert metrics(merged) == metrics(state_of(events, config))


@PROPERTY
@given(event_lists)
def test_hourly_panes_merged_equal_the_daily_aggregate(events) -> None:
    daily = MetricsAggregator.window_states(events, EnumMetricsWindow.DAILY)
    hourly = MetricsAggregator.window_states(events, EnumMetricsWindow.HOURLY)

    for (day_start, _), day_state in daily.items():
        panes = [
            pane
            for (hour_start, _), pane in hourly.items()
            if day_start <= hour_start < day_start + timedelta(days=1)
        ]
        rolled = reduce(AggregationState.merge, panes, AggregationState())
        assert metrics(rolled) == metrics(day_state)

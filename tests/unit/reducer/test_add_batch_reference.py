"""The grouped ``add_batch`` agrees byte for byte with the per-event reference it replaced.

Byte equality of ``to_bytes`` covers every accumulator, including the ones no metric reports
(the workflow breakdown's ``__other__`` fold) and the order of exact percentile samples.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import ReducerSettings
from models.events import CodegenEvent
from reducer import AggregationState
from reducer.state import uuid_text
from tests.datasets import completed, failed, stage, started
from tests.unit.reducer.reference_state import reference_add_batch
from tests.unit.reducer.test_properties import MAIN_PROPERTY, SETTINGS, event_lists


def both(
    batches: list[list[CodegenEvent]], settings: ReducerSettings
) -> tuple[AggregationState, AggregationState]:
    fast, reference = AggregationState(settings), AggregationState(settings)
    for batch in batches:
        fast.add_batch(batch)
        reference_add_batch(reference, batch)
    return fast, reference


@st.composite
def batch_lists(draw: st.DrawFn) -> list[list[CodegenEvent]]:
    events = draw(event_lists)
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=3)))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


@MAIN_PROPERTY
@given(batches=batch_lists(), config=st.sampled_from(SETTINGS))
def test_grouped_add_batch_equals_the_per_event_reference(batches, config) -> None:
    fast, reference = both(batches, config)

    assert fast.to_bytes() == reference.to_bytes()
    assert fast.to_metrics().model_dump(exclude={"aggregation_id", "created_at"}) == (
        reference.to_metrics().model_dump(exclude={"aggregation_id", "created_at"})
    )


def test_agreement_on_a_simulated_fleet_past_every_cap() -> None:
    from cli.simulator import fleet_json_lines
    from models import decode_batch

    lines = list(fleet_json_lines(300, seed=3))
    events = decode_batch(lines).events
    config = ReducerSettings(
        exact_percentile_cap=50, max_workflows=40, exact_distinct_cap=60, max_keys_per_breakdown=3
    )
    batches = [events[i : i + 97] for i in range(0, len(events), 97)]

    fast, reference = both(batches, config)

    assert not fast.distinct_workflows.exact and not fast.duration_quantiles.exact
    assert fast.to_bytes() == reference.to_bytes()


def test_a_generator_and_an_empty_batch_are_accepted() -> None:
    events = [started(), stage(), completed(), failed()]
    fast, reference = both([[]], ReducerSettings())
    fast.add_batch(e for e in events)
    reference_add_batch(reference, events)

    assert fast.to_bytes() == reference.to_bytes()


def test_a_foreign_object_is_refused_before_anything_changes() -> None:
    state = AggregationState()
    before = state.to_bytes()

    with pytest.raises(TypeError, match="not a codegen event"):
        state.add_batch([started(), completed(), object()])  # type: ignore[list-item]

    assert state.to_bytes() == before


@pytest.mark.parametrize("value", [0, 1, 2**128 - 1, 0x1027C4D1C3864BC48D613E30D8F16ADF])
def test_uuid_text_is_str_of_the_uuid(value: int) -> None:
    import uuid

    assert uuid_text(value) == str(uuid.UUID(int=value))

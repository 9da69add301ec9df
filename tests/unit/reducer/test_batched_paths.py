"""Batched internals give exactly what their one-at-a-time forms gave: sketch binning in chunks
(QuantileStore's pending values) and HyperLogLog hashing as one buffer of digests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reducer import sketch as sketch_module
from reducer.distinct import _LOW_BITS, REGISTERS, DistinctCounter, hash64
from reducer.sketch import QuantileStore

values = st.floats(min_value=0, max_value=1e9, allow_nan=False) | st.sampled_from([0.0, 1e-320])
chunks = st.lists(st.lists(values, min_size=1, max_size=40), min_size=1, max_size=30)


def fill(parts: list[list[float]], cap: int) -> QuantileStore:
    store = QuantileStore(cap, 0.01)
    for part in parts:
        store.extend(part)
    return store


@settings(max_examples=60, deadline=None)
@given(parts=chunks, limit=st.integers(1, 64), cap=st.integers(0, 50))
def test_pending_values_bin_as_if_added_at_once(parts, limit, cap) -> None:
    saved = sketch_module.PENDING_LIMIT
    try:
        sketch_module.PENDING_LIMIT = 1  # bin every extend at once: the previous behaviour
        reference = fill(parts, cap)
        sketch_module.PENDING_LIMIT = limit
        buffered = fill(parts, cap)
        other = fill(parts[::-1], cap)
    finally:
        sketch_module.PENDING_LIMIT = saved

    merged = fill([], cap)
    merged.merge_from(other)
    merged.merge_from(buffered)
    for q in (0.01, 0.5, 0.95, 0.99):
        assert buffered.quantile(q) == reference.quantile(q)
    assert buffered.to_obj() == reference.to_obj()
    twice = fill([], cap)
    twice.merge_from(reference)
    twice.merge_from(reference)
    for q in (0.01, 0.5, 0.95, 0.99):
        assert merged.quantile(q) == twice.quantile(q)
    if not merged.exact:  # exact samples keep arrival order; sketch bins do not have one
        assert merged.to_obj() == twice.to_obj()


def test_merging_a_store_with_pending_values_leaves_it_untouched() -> None:
    other = fill([[float(i) for i in range(1, 200)]], 10)
    other.extend([5.0, 6.0])  # pending in other
    pending_before = bytes(other._pending)
    target = fill([[1.0]], 10)

    target.merge_from(other)

    assert bytes(other._pending) == pending_before
    assert target.count == other.count + 1


@pytest.mark.parametrize("count", [1, 7, 5000])
def test_hll_registers_equal_one_hash64_per_id(count: int) -> None:
    rng = np.random.default_rng(count)
    ids = {int.from_bytes(rng.bytes(16)) for _ in range(count)}
    counter = DistinctCounter(0)
    counter.add_many(ids)

    expected = np.zeros(REGISTERS, dtype=np.uint8)
    for i in ids:
        h = hash64(i)
        rest = h & ((1 << _LOW_BITS) - 1)
        rho = _LOW_BITS - rest.bit_length() + 1
        expected[h >> _LOW_BITS] = max(expected[h >> _LOW_BITS], rho)
    assert np.array_equal(counter.registers, expected)


@pytest.mark.parametrize("status", range(40))
@pytest.mark.parametrize("stages", [0, 1, 2, 0b111111110, 0b1000000000, 2**40 + 6, 511, 37])
def test_workflow_rows_from_lookup_tables_equal_the_definitions(status: int, stages: int) -> None:
    from reducer.groupings import WorkflowSummary, workflow_status

    summary = WorkflowSummary()
    summary.status, summary.stages = status, stages
    summary.stage_time.extend([0.92, 1.5])

    row = summary.row()

    assert row["status"] == workflow_status(status)
    assert row["stages_seen"] == [n for n in range(1, 9) if stages >> n & 1]
    assert row["stage_time_seconds"] == summary.stage_time.sum

"""Cardinality attacks: floods of distinct keys must not grow a state's memory without bound."""

from __future__ import annotations

import tracemalloc
import uuid

from reducer import AggregationState
from tests.datasets import completed, failed, stage


def _flood(n: int) -> list:
    events = []
    for i in range(n):
        workflow = uuid.UUID(int=i * 7919 + 1)
        events.append(
            completed(workflow_id=workflow, primary_model=f"model-{i}", node_type=f"n{i}")
        )
        events.append(stage(workflow_id=workflow, stage_name=f"stage-{i}"))
        events.append(failed(workflow_id=workflow, failed_stage=f"s{i}", error_code=f"E{i}"))
    return events


def _state_bytes(n: int) -> int:
    events = _flood(n)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = AggregationState()
    for start in range(0, len(events), 1000):
        state.add_batch(events[start : start + 1000])
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    metrics = state.to_metrics()
    for breakdown in (
        metrics.model_metrics,
        metrics.node_type_metrics,
        metrics.stage_metrics,
        metrics.failures_by_stage,
        metrics.failures_by_error_code,
    ):
        assert len(breakdown) <= 1001  # the cap plus "__other__"
    assert len(metrics.workflow_metrics) <= 1000
    assert metrics.workflows_evicted > 0
    return used


def test_a_flood_of_distinct_models_stages_error_codes_and_workflows_keeps_memory_bounded() -> None:
    small = _state_bytes(4_000)
    large = _state_bytes(20_000)
    assert large < 64 * 2**20, f"{large / 2**20:.1f} MiB for 20k distinct keys of each kind"
    assert large < 1.5 * small, (small, large)  # flat: 5x the keys, not 5x the memory

"""The ORIGINAL aggregation algorithm, re-implemented as the benchmarks' baseline.

What the original ``MetricsAggregator.aggregate_events`` did (see ../shared/seed/ and the "Known
defects" in ../shared/notes/event-contract.md), kept here on purpose, defects included, because
that is what we measure against:

- the caller hands over every event in one list (O(N) memory, nothing streams);
- one pass splits the list into four per-type lists, then each metric builds its own Python list
  (durations, quality scores, coverages, complexities, costs, stage durations per stage, and per
  model / per node type lists of events) and reduces it with ``statistics.mean`` and ``sum``;
- p50 is ``statistics.median`` (interpolated); p95 and p99 sort the durations and take the
  nearest rank ``ceil(p * N)`` with float multiplication;
- window_start/end are the min/max timestamps, workflow ids go into one ``set``;
- ``total_generations`` counts STARTED events and the result is a ``ModelMetricsState``.

The result uses this project's ``ModelMetricsState`` (same contract fields) so both sides pay the
same cost for building the output model.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from models.events import (
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.metrics import EnumMetricsWindow, ModelMetricsState


def nearest_rank_percentile(data: list[float], p: float) -> float:
    """The original's p95/p99: sort, then the ceil(p * N)-th value (float multiplication)."""
    if not data:
        return 0.0
    if p <= 0:
        return min(data)
    if p >= 1:
        return max(data)
    ordered = sorted(data)
    return ordered[math.ceil(p * len(ordered)) - 1]


def aggregate_events(
    events: list[Any], window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY
) -> ModelMetricsState:
    """One pass to split by type, then one list (and one reduction) per metric."""
    started: list[Any] = []
    staged: list[Any] = []
    completed: list[Any] = []
    failed: list[Any] = []
    for event in events:
        if isinstance(event, ModelEventCodegenStarted):
            started.append(event)
        elif isinstance(event, ModelEventCodegenStageCompleted):
            staged.append(event)
        elif isinstance(event, ModelEventCodegenCompleted):
            completed.append(event)
        elif isinstance(event, ModelEventCodegenFailed):
            failed.append(event)

    if events:
        window_start = min(e.timestamp for e in events)
        window_end = max(e.timestamp for e in events)
    else:
        window_start = window_end = datetime.now(UTC)

    durations = [e.total_duration_seconds for e in completed]
    if durations:
        duration_stats = {
            "avg_duration_seconds": statistics.mean(durations),
            "p50_duration_seconds": statistics.median(durations),
            "p95_duration_seconds": nearest_rank_percentile(durations, 0.95),
            "p99_duration_seconds": nearest_rank_percentile(durations, 0.99),
            "min_duration_seconds": min(durations),
            "max_duration_seconds": max(durations),
        }
    else:
        duration_stats = {}

    qualities = [e.quality_score for e in completed]
    coverages = [e.test_coverage for e in completed if e.test_coverage is not None]
    complexities = [e.complexity_score for e in completed if e.complexity_score is not None]
    total_cost = sum(e.total_cost_usd for e in completed)

    per_stage: dict[str, list[float]] = defaultdict(list)
    for event in staged:
        per_stage[event.stage_name].append(event.duration_seconds)

    pattern_counts = [len(e.patterns_applied) for e in completed if e.patterns_applied]

    return ModelMetricsState(
        aggregation_id=uuid4(),
        window_type=window_type,
        window_start=window_start,
        window_end=window_end,
        total_generations=len(started),
        successful_generations=len(completed),
        failed_generations=len(failed),
        **duration_stats,
        avg_quality_score=statistics.mean(qualities) if qualities else 0.0,
        avg_test_coverage=statistics.mean(coverages) if coverages else None,
        avg_complexity_score=statistics.mean(complexities) if complexities else None,
        total_tokens=sum(e.total_tokens for e in completed),
        total_cost_usd=total_cost,
        avg_cost_per_generation=total_cost / len(completed) if completed else 0.0,
        avg_stage_durations={k: statistics.mean(v) for k, v in per_stage.items()},
        model_metrics=_model_metrics(completed),
        node_type_metrics=_node_type_metrics(completed),
        intelligence_enabled_count=sum(1 for e in completed if e.patterns_applied),
        avg_patterns_applied=statistics.mean(pattern_counts) if pattern_counts else 0.0,
        workflow_ids_tracked=len({e.workflow_id for e in events}),
        events_processed=len(events),
    )


def _model_metrics(completed: list[Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for event in completed:
        grouped[event.primary_model].append(event)
    rows = {}
    for model, group in grouped.items():
        costs = [e.total_cost_usd for e in group]
        rows[model] = {
            "total_generations": len(group),
            "avg_duration_seconds": statistics.mean([e.total_duration_seconds for e in group]),
            "avg_quality_score": statistics.mean([e.quality_score for e in group]),
            "total_tokens": sum([e.total_tokens for e in group]),
            "total_cost_usd": sum(costs),
            "avg_cost_per_generation": statistics.mean(costs),
        }
    return rows


def _node_type_metrics(completed: list[Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for event in completed:
        grouped[event.node_type].append(event)
    return {
        node_type: {
            "total_generations": len(group),
            "avg_duration_seconds": statistics.mean([e.total_duration_seconds for e in group]),
            "avg_quality_score": statistics.mean([e.quality_score for e in group]),
        }
        for node_type, group in grouped.items()
    }

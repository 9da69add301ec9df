"""The previous ``AggregationState.add_batch`` (one loop doing every update per event), kept as
the reference the grouped, faster ``add_batch`` must agree with byte for byte."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from uuid import UUID

from models.events import (
    CodegenEvent,
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
)
from reducer.groupings import COMPLETED, FAILED, STAGED, STARTED
from reducer.state import _EVENT_KINDS, AggregationState, _by_slot


def reference_add_batch(self: AggregationState, events: Iterable[CodegenEvent]) -> AggregationState:
    """The per-event add_batch as it was before the grouped passes (commit bd9b05e)."""
    durations: list[float] = []
    qualities: list[float] = []
    coverages: list[float] = []
    complexities: list[float] = []
    costs: list[float] = []
    partials: list[float] = []
    stage_durations: dict[str, list[float]] = defaultdict(list)
    model_events: dict[str, list[ModelEventCodegenCompleted]] = defaultdict(list)
    node_events: dict[str, list[ModelEventCodegenCompleted]] = defaultdict(list)
    # Per workflow in this batch: [status bits, stage bits, stage times, durations, costs],
    # applied once per workflow after the loop (the per-event path stays list appends).
    per_workflow: dict[UUID, list] = {}
    by_type = self.events_by_type
    quality_edges = self.settings.quality_bucket_edges
    cost_edges = self.settings.cost_bucket_edges

    for event in events:
        kind = type(event)
        if kind not in _EVENT_KINDS:
            raise TypeError(f"not a codegen event: {kind.__name__}")
        summary = per_workflow.get(event.workflow_id)
        if summary is None:
            summary = per_workflow[event.workflow_id] = [0, 0, [], [], []]
        if kind is ModelEventCodegenStageCompleted:
            by_type[1] += 1
            stage_durations[event.stage_name].append(event.duration_seconds)
            if not event.success:
                self.stages.slot(event.stage_name).failures += 1
            summary[0] |= STAGED
            summary[1] |= 1 << event.stage_number
            summary[2].append(event.duration_seconds)
        elif kind is ModelEventCodegenCompleted:
            by_type[2] += 1
            durations.append(event.total_duration_seconds)
            qualities.append(event.quality_score)
            if event.test_coverage is not None:
                coverages.append(event.test_coverage)
            if event.complexity_score is not None:
                complexities.append(event.complexity_score)
            costs.append(event.total_cost_usd)
            self.tokens += event.total_tokens
            if event.patterns_applied:
                self.intelligence_enabled += 1
                self.patterns_applied += len(event.patterns_applied)
            self.quality_buckets[bisect_right(quality_edges, event.quality_score)] += 1
            bucket = bisect_right(cost_edges, event.total_cost_usd)
            self.cost_bucket_counts[bucket] += 1
            self.cost_bucket_costs[bucket].add(event.total_cost_usd)
            model_events[event.primary_model].append(event)
            node_events[event.node_type].append(event)
            summary[0] |= COMPLETED
            summary[3].append(event.total_duration_seconds)
            summary[4].append(event.total_cost_usd)
        elif kind is ModelEventCodegenFailed:
            by_type[3] += 1
            partials.append(event.partial_duration_seconds)
            self.failures_by_stage.slot(event.failed_stage).n += 1
            self.failures_by_error_code.slot(event.error_code).n += 1
            summary[0] |= FAILED
            summary[3].append(event.partial_duration_seconds)
        else:  # ModelEventCodegenStarted
            by_type[0] += 1
            summary[0] |= STARTED

    self.durations.extend(durations)
    self.duration_quantiles.extend(durations)
    self.quality.extend(qualities)
    self.coverage.extend(coverages)
    self.complexity.extend(complexities)
    self.cost.extend(costs)
    self.failed_partial.extend(partials)
    for stats, values in _by_slot(self.stages, stage_durations):
        stats.add_durations(values)
    for breakdown, grouped in ((self.models, model_events), (self.node_types, node_events)):
        for stats, completed in _by_slot(breakdown, grouped):
            stats.add_durations([e.total_duration_seconds for e in completed])
            stats.quality.extend([e.quality_score for e in completed])
            stats.cost.extend([e.total_cost_usd for e in completed])
            stats.tokens += sum(e.total_tokens for e in completed)
    workflows = self.workflows
    for workflow_id, (status, stages, stage_times, durations_, costs_) in per_workflow.items():
        kept = workflows.kept(str(workflow_id))
        if kept is None:  # beyond the cap: counted in workflows_evicted, not summarised
            continue
        kept.status |= status
        kept.stages |= stages
        kept.stage_time.extend(stage_times)
        kept.duration.extend(durations_)
        kept.cost.extend(costs_)
    self.distinct_workflows.add_many(workflow_id.int for workflow_id in per_workflow)
    return self

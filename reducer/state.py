"""AggregationState: a mergeable summary of any set of events, in bounded memory.

Contract: for any split of a set of events into parts, aggregating each part and merging the
states in any order gives the same metrics as aggregating the whole set in one pass. Every sum is
exact (reducer.exact), every breakdown's kept keys depend only on the key set
(reducer.groupings), and the percentile and distinct-count sketches merge by addition and max.
``merge`` never mutates or aliases its argument.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from models.events import (
    CodegenEvent,
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer.distinct import DistinctCounter
from reducer.exact import ExactMean, ratio
from reducer.groupings import (
    COMPLETED,
    FAILED,
    STAGED,
    STARTED,
    Breakdown,
    Count,
    DurationStats,
    WorkflowSummary,
)
from reducer.sketch import QuantileStore

QUALITY_BUCKETS = ("low", "medium", "high")
EVENT_TYPE_NAMES = (
    "CODEGEN_STARTED",
    "CODEGEN_STAGE_COMPLETED",
    "CODEGEN_COMPLETED",
    "CODEGEN_FAILED",
)
DEFAULT_SETTINGS = ReducerSettings()
_EVENT_KINDS = frozenset(
    (
        ModelEventCodegenStarted,
        ModelEventCodegenStageCompleted,
        ModelEventCodegenCompleted,
        ModelEventCodegenFailed,
    )
)


def cost_bucket_labels(edges: tuple[float, ...]) -> list[str]:
    labels = [f"<{edges[0]:g}"]
    labels += [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
    labels.append(f">={edges[-1]:g}")
    return labels


class AggregationState:
    """Mergeable partial aggregate; see the module docstring for the merge contract."""

    def __init__(self, settings: ReducerSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        s = settings
        self.events_by_type = [0, 0, 0, 0]
        self.events_invalid = 0
        self.late_arrivals = 0
        self.durations = ExactMean()
        self.duration_quantiles = QuantileStore(s.exact_percentile_cap, s.sketch_relative_accuracy)
        self.failed_partial = ExactMean()
        self.quality = ExactMean()
        self.coverage = ExactMean()
        self.complexity = ExactMean()
        self.tokens = 0
        self.cost = ExactMean()
        self.intelligence_enabled = 0
        self.patterns_applied = 0
        self.quality_buckets = [0, 0, 0]
        self.cost_bucket_counts = [0] * (len(s.cost_bucket_edges) + 1)
        self.cost_bucket_costs = [ExactMean() for _ in self.cost_bucket_counts]
        self.stages = self._breakdown(self._stats)
        self.models = self._breakdown(self._stats)
        self.node_types = self._breakdown(self._stats)
        self.failures_by_stage = self._breakdown(Count)
        self.failures_by_error_code = self._breakdown(Count)
        self.workflows: Breakdown[WorkflowSummary] = Breakdown(WorkflowSummary, s.max_workflows, 36)
        self.distinct_workflows = DistinctCounter(s.exact_distinct_cap)

    def _stats(self) -> DurationStats:
        return DurationStats(
            self.settings.exact_percentile_cap, self.settings.sketch_relative_accuracy
        )

    def _breakdown(self, factory: Any) -> Breakdown:
        return Breakdown(
            factory, self.settings.max_keys_per_breakdown, self.settings.max_key_length
        )

    # -- adding events -------------------------------------------------------------------------

    @property
    def events_processed(self) -> int:
        return sum(self.events_by_type)

    @property
    def is_empty(self) -> bool:
        return self.events_processed == 0

    def add(self, event: CodegenEvent) -> AggregationState:
        return self.add_batch((event,))

    def add_batch(self, events: Iterable[CodegenEvent]) -> AggregationState:
        """Fold a batch in: group values per metric and key, then update each once."""
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

    # -- merging -------------------------------------------------------------------------------

    def merge(self, other: AggregationState) -> AggregationState:
        """A new state equal to aggregating both states' events; neither input changes."""
        return AggregationState(self.settings).merge_in(self).merge_in(other)

    def merge_in(self, other: AggregationState) -> AggregationState:
        """Merge ``other`` into this state in place (the hot path of roll-ups); returns self."""
        if other.settings != self.settings:
            raise ValueError(
                "cannot merge states built with different reducer settings: "
                f"{self.settings!r} != {other.settings!r}"
            )
        self.events_by_type = [
            a + b for a, b in zip(self.events_by_type, other.events_by_type, strict=True)
        ]
        self.events_invalid += other.events_invalid
        self.late_arrivals += other.late_arrivals
        for name in ("durations", "failed_partial", "quality", "coverage", "complexity", "cost"):
            getattr(self, name).merge_from(getattr(other, name))
        self.duration_quantiles.merge_from(other.duration_quantiles)
        self.tokens += other.tokens
        self.intelligence_enabled += other.intelligence_enabled
        self.patterns_applied += other.patterns_applied
        self.quality_buckets = [
            a + b for a, b in zip(self.quality_buckets, other.quality_buckets, strict=True)
        ]
        for i, count in enumerate(other.cost_bucket_counts):
            self.cost_bucket_counts[i] += count
            self.cost_bucket_costs[i].merge_from(other.cost_bucket_costs[i])
        for name in (
            "stages",
            "models",
            "node_types",
            "failures_by_stage",
            "failures_by_error_code",
            "workflows",
        ):
            getattr(self, name).merge_from(getattr(other, name))
        self.distinct_workflows.merge_from(other.distinct_workflows)
        return self

    # -- codec ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        from reducer.codec import encode_state

        return encode_state(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> AggregationState:
        from reducer.codec import decode_state

        return decode_state(data)

    # -- results -------------------------------------------------------------------------------

    def to_metrics(
        self,
        window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
    ) -> ModelMetricsState:
        started, _staged, completed, failed = self.events_by_type
        finished = completed + failed
        q = self.duration_quantiles
        distinct = self.distinct_workflows.estimate()
        fields: dict[str, Any] = {
            "window_type": EnumMetricsWindow(window_type),
            "total_generations": finished,
            "successful_generations": completed,
            "failed_generations": failed,
            "started_generations": started,
            "success_rate": completed / finished if finished else 0.0,
            "avg_duration_seconds": self.durations.mean,
            "p50_duration_seconds": q.quantile(0.5),
            "p95_duration_seconds": q.quantile(0.95),
            "p99_duration_seconds": q.quantile(0.99),
            "min_duration_seconds": q.min if q.count else 0.0,
            "max_duration_seconds": q.max if q.count else 0.0,
            "percentiles_exact": q.exact,
            "avg_failed_partial_duration_seconds": self.failed_partial.mean,
            "avg_quality_score": self.quality.mean,
            "avg_test_coverage": self.coverage.mean if self.coverage.count else None,
            "avg_complexity_score": self.complexity.mean if self.complexity.count else None,
            "total_tokens": self.tokens,
            "total_cost_usd": self.cost.sum,
            "avg_cost_per_generation": ratio(self.cost.total, completed),
            "intelligence_enabled_count": self.intelligence_enabled,
            "avg_patterns_applied": self.patterns_applied / completed if completed else 0.0,
            "avg_stage_durations": {k: v.durations.mean for k, v in self.stages.items() if v.count},
            "stage_metrics": {k: _stage_row(v) for k, v in self.stages.items()},
            "model_metrics": {k: _generation_row(v, cost=True) for k, v in self.models.items()},
            "node_type_metrics": {
                k: _generation_row(v, cost=False) for k, v in self.node_types.items()
            },
            "failures_by_stage": {k: v.n for k, v in self.failures_by_stage.items()},
            "failures_by_error_code": {k: v.n for k, v in self.failures_by_error_code.items()},
            "quality_score_buckets": dict(zip(QUALITY_BUCKETS, self.quality_buckets, strict=True)),
            "cost_buckets": {
                label: {"count": n, "total_cost_usd": c.sum}
                for label, n, c in zip(
                    cost_bucket_labels(self.settings.cost_bucket_edges),
                    self.cost_bucket_counts,
                    self.cost_bucket_costs,
                    strict=True,
                )
            },
            "workflow_metrics": {k: v.row() for k, v in self.workflows.entries.items()},
            "workflows_evicted": max(distinct - len(self.workflows.entries), 0),
            "workflow_ids_tracked": distinct,
            "workflow_ids_exact": self.distinct_workflows.exact,
            "events_processed": self.events_processed,
            "events_by_type": dict(zip(EVENT_TYPE_NAMES, self.events_by_type, strict=True)),
            "events_invalid": self.events_invalid,
            "late_events": self.late_arrivals,
        }
        if window_start is not None:
            fields["window_start"] = window_start
        if window_end is not None:
            fields["window_end"] = window_end
        return ModelMetricsState(**fields)


def _by_slot(breakdown: Breakdown, grouped: dict[str, list]) -> list[tuple[Any, list]]:
    """The batch's values per accumulator: keys folded into ``__other__`` share one update.

    Every key is placed first, so all evictions this batch causes happen before any value is
    added; a key's second lookup then finds its final accumulator (its own or ``__other__``).
    A flood of unique keys costs one update of ``__other__`` per batch, not one per key.
    """
    for key in grouped:
        breakdown.slot(key)
    targets: dict[int, tuple[Any, list]] = {}
    for key, values in grouped.items():
        accumulator = breakdown.slot(key)
        target = targets.get(id(accumulator))
        if target is None:
            targets[id(accumulator)] = (accumulator, list(values))
        else:
            target[1].extend(values)
    return list(targets.values())


def _stage_row(stats: DurationStats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "failures": stats.failures,
        "avg_duration_seconds": stats.durations.mean,
        "p95_duration_seconds": stats.quantiles.quantile(0.95),
    }


def _generation_row(stats: DurationStats, *, cost: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "total_generations": stats.count,
        "avg_duration_seconds": stats.durations.mean,
        "avg_quality_score": stats.quality.mean,
        "p95_duration_seconds": stats.quantiles.quantile(0.95),
    }
    if cost:
        row["total_tokens"] = stats.tokens
        row["total_cost_usd"] = stats.cost.sum
        row["avg_cost_per_generation"] = stats.cost.mean
    return row

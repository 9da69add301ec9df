"""AggregationState: a mergeable summary of any set of events, in bounded memory.

Contract: for any split of a set of events into parts, aggregating each part and merging the
states in any order gives the same metrics as aggregating the whole set in one pass. Every sum is
exact (reducer.exact), every breakdown's kept keys depend only on the key set
(reducer.groupings), and the percentile and distinct-count sketches merge by addition and max.
``merge`` never mutates or aliases its argument.
"""

from __future__ import annotations

import itertools
import math
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache, partial
from itertools import compress, repeat
from operator import attrgetter
from typing import Any

from pydantic import ValidationError

from models.events import (
    CodegenEvent,
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer import codec
from reducer.distinct import PRECISION, REGISTERS, DistinctCounter
from reducer.exact import ExactMean, finite, ratio
from reducer.groupings import (
    COMPLETED,
    FAILED,
    MAX_TOKEN_TOTAL,
    STAGED,
    STARTED,
    Breakdown,
    Count,
    DurationStats,
    WorkflowSummary,
    key_hash,
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


_WORKFLOW_INT = attrgetter("workflow_id.int")  # the UUID as a 128-bit int, in one C call
_STAGE_FIELDS = tuple(
    map(
        attrgetter,
        ("workflow_id.int", "stage_name", "stage_number", "duration_seconds", "success"),
    )
)
_COMPLETED_FIELDS = tuple(
    map(
        attrgetter,
        (
            "workflow_id.int",
            "total_duration_seconds",
            "quality_score",
            "test_coverage",
            "complexity_score",
            "total_cost_usd",
            "total_tokens",
            "patterns_applied",
            "primary_model",
            "node_type",
        ),
    )
)
_FAILED_FIELDS = tuple(
    map(attrgetter, ("workflow_id.int", "partial_duration_seconds", "failed_stage", "error_code"))
)


def _columns(events: list[Any], getters: tuple[attrgetter, ...]) -> tuple[list, ...]:
    """One list per field, each read in a C-level pass."""
    return tuple([list(map(getter, events)) for getter in getters])


@lru_cache(maxsize=8192)
def uuid_text(value: int) -> str:
    """``str(UUID(int=value))`` without building the UUID: the workflow breakdown's key.

    Memoised (a workflow's events usually span a few batches); a pure function, bounded cache."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def cost_bucket_labels(edges: list[float]) -> list[str]:
    labels = [f"<{edges[0]:g}"]
    labels += [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
    labels.append(f">={edges[-1]:g}")
    return labels


_HEX = re.compile("[0-9a-fA-F]*")
_MAX_RHO = 64 - PRECISION + 1  # a HyperLogLog register: the rank of a 48-bit remainder

_MEANS = ("durations", "failed_partial", "quality", "coverage", "complexity", "cost")
_DURATION_KEYED = ("stages", "models", "node_types")
_COUNT_KEYED = ("failures_by_stage", "failures_by_error_code")
_KEYED = _DURATION_KEYED + _COUNT_KEYED

BREAKDOWNS = (
    "stages",
    "models",
    "node_types",
    "failures_by_stage",
    "failures_by_error_code",
    "workflows",
)
"""The keyed breakdowns (``Breakdown``) of a state."""


class _Pending:
    """One batch's values for a workflow that may be kept in the workflow breakdown."""

    __slots__ = ("costs", "durations", "key", "stage_times", "stages", "status")

    def __init__(self, key: str) -> None:
        self.key = key
        self.status = 0
        """Bits of the event types seen (groupings.STARTED ...)."""
        self.stages = 0
        """Bit n set when stage n completed."""
        self.stage_times: list[float] = []
        self.durations: list[float] = []
        """Completed durations and failed partial durations."""
        self.costs: list[float] = []


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
        # A partial, not a bound method of self: the breakdowns must not refer back to the
        # state, or every state is a reference cycle that only the cycle collector frees.
        stats = partial(DurationStats, s.exact_percentile_cap, s.sketch_relative_accuracy)
        self.stages = self._breakdown(stats)
        self.models = self._breakdown(stats)
        self.node_types = self._breakdown(stats)
        self.failures_by_stage = self._breakdown(Count)
        self.failures_by_error_code = self._breakdown(Count)
        self.workflows: Breakdown[WorkflowSummary] = Breakdown(WorkflowSummary, s.max_workflows, 36)
        self.distinct_workflows = DistinctCounter(s.exact_distinct_cap)

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
        """Fold a batch in with grouped passes: split by type, then update each metric and key once.

        The batch is first split by event type (a type that is not a codegen event raises
        TypeError before anything changes). Each type's fields are then read in one C-level pass
        (``attrgetter`` over the models' attributes) and every metric, breakdown key and kept
        workflow is updated once per batch. The result equals adding the events one by one.
        """
        started: list[Any] = []
        staged: list[Any] = []
        completed: list[Any] = []
        failed: list[Any] = []
        route = {
            ModelEventCodegenStarted: started.append,
            ModelEventCodegenStageCompleted: staged.append,
            ModelEventCodegenCompleted: completed.append,
            ModelEventCodegenFailed: failed.append,
        }
        batch = events if isinstance(events, list) else list(events)
        for event in batch:
            append = route.get(type(event))
            if append is None:
                raise TypeError(f"not a codegen event: {type(event).__name__}")
            append(event)

        if not batch:
            return self
        by_type = self.events_by_type
        stage_rows: tuple[tuple, ...] = ()
        completed_rows: tuple[tuple, ...] = ()
        failed_rows: tuple[tuple, ...] = ()
        if started:
            by_type[0] += len(started)
        if staged:
            by_type[1] += len(staged)
            stage_rows = _columns(staged, _STAGE_FIELDS)
            self._add_stages(*stage_rows[1:])
        if completed:
            by_type[2] += len(completed)
            completed_rows = _columns(completed, _COMPLETED_FIELDS)
            self._add_completed(*completed_rows[1:])
        if failed:
            by_type[3] += len(failed)
            failed_rows = _columns(failed, _FAILED_FIELDS)
            self._add_failed(*failed_rows[1:])
        # Workflow ids in order of first appearance (the order the per-event path offered them).
        workflow_ids = dict.fromkeys(map(_WORKFLOW_INT, batch))
        self.distinct_workflows.add_many(workflow_ids)
        self._add_workflows(workflow_ids, started, stage_rows, completed_rows, failed_rows)
        return self

    def _add_stages(
        self,
        names: list[str],
        _numbers: list[int],
        durations: list[float],
        successes: list[bool],
    ) -> None:
        grouped: dict[str, list[float]] = defaultdict(list)
        for name, duration in zip(names, durations, strict=True):
            grouped[name].append(duration)
        for stats, values in _by_slot(self.stages, grouped):
            stats.add_durations(values)
        if not all(successes):
            failures = Counter(name for name, ok in zip(names, successes, strict=True) if not ok)
            for stats, counts in _by_slot(self.stages, {k: [n] for k, n in failures.items()}):
                stats.failures += sum(counts)

    def _add_completed(
        self,
        durations: list[float],
        qualities: list[float],
        coverages: list[float | None],
        complexities: list[float | None],
        costs: list[float],
        tokens: list[int],
        patterns: list[list[str]],
        models: list[str],
        node_types: list[str],
    ) -> None:
        duration_list = list(durations)
        cost_list = list(costs)
        self.durations.extend(duration_list)
        self.duration_quantiles.extend(duration_list)
        self.quality.extend(list(qualities))
        self.coverage.extend([v for v in coverages if v is not None])
        self.complexity.extend([v for v in complexities if v is not None])
        self.cost.extend(cost_list)
        self.tokens += sum(tokens)
        pattern_counts = list(map(len, patterns))
        self.intelligence_enabled += len(pattern_counts) - pattern_counts.count(0)
        self.patterns_applied += sum(pattern_counts)
        settings = self.settings
        quality_buckets = self.quality_buckets
        for bucket, n in Counter(
            map(bisect_right, repeat(settings.quality_bucket_edges), qualities)
        ).items():
            quality_buckets[bucket] += n
        by_bucket: dict[int, list[float]] = defaultdict(list)
        for bucket, cost in zip(
            map(bisect_right, repeat(settings.cost_bucket_edges), costs), costs, strict=True
        ):
            by_bucket[bucket].append(cost)
        for bucket, values in by_bucket.items():
            self.cost_bucket_counts[bucket] += len(values)
            self.cost_bucket_costs[bucket].extend(values)
        for breakdown, keys in ((self.models, models), (self.node_types, node_types)):
            positions: dict[str, list[int]] = defaultdict(list)
            for position, key in enumerate(keys):
                positions[key].append(position)
            for stats, where in _by_slot(breakdown, positions):
                if len(where) == len(keys):  # one accumulator takes the whole batch
                    stats.add_durations(duration_list)
                    stats.quality.extend(list(qualities))
                    stats.cost.extend(cost_list)
                    stats.tokens += sum(tokens)
                    continue
                stats.add_durations([durations[i] for i in where])
                stats.quality.extend([qualities[i] for i in where])
                stats.cost.extend([costs[i] for i in where])
                stats.tokens += sum([tokens[i] for i in where])

    def _add_failed(
        self,
        partials: list[float],
        failed_stages: list[str],
        error_codes: list[str],
    ) -> None:
        self.failed_partial.extend(list(partials))
        for breakdown, keys in (
            (self.failures_by_stage, failed_stages),
            (self.failures_by_error_code, error_codes),
        ):
            counts = Counter(keys)
            for counter, ns in _by_slot(breakdown, {k: [n] for k, n in counts.items()}):
                counter.n += sum(ns)

    def _add_workflows(
        self,
        workflow_ids: dict[int, None],
        started: list[Any],
        stage_rows: tuple[tuple, ...],
        completed_rows: tuple[tuple, ...],
        failed_rows: tuple[tuple, ...],
    ) -> None:
        """Per-workflow summaries, for the workflows the breakdown keeps (the rest only count).

        Workflows are offered to the breakdown in order of first appearance in the batch, as the
        per-event path did, so even the unreported ``__other__`` fold is identical. Values are
        gathered only for workflows that can still win a place: kept already, or hashing below
        the largest kept hash (that bar only ever drops, so a workflow above it folds for good).
        """
        workflows = self.workflows
        pending: dict[int, _Pending] = {}
        entries = workflows.entries
        bar = workflows.bar()
        if bar is None:  # room left: every workflow is a candidate
            for workflow in workflow_ids:
                pending[workflow] = _Pending(uuid_text(workflow))
        else:
            # UUID keys are 36 characters (never truncated) and never __other__; the bar is fixed
            # during this loop, since nothing is admitted before every candidate is chosen.
            for workflow in workflow_ids:
                key = uuid_text(workflow)
                if key in entries or (-key_hash(key), key) >= bar:
                    pending[workflow] = _Pending(key)
        if not pending:
            return
        get = pending.get
        everyone = len(pending) == len(workflow_ids)

        def rows(ints: list[int], *columns: list) -> Iterable[tuple]:
            """(workflow int, *values) of the events of candidate workflows only."""
            if everyone:
                return zip(ints, *columns, strict=True)
            chosen = list(map(pending.__contains__, ints))
            return zip(compress(ints, chosen), *(compress(c, chosen) for c in columns), strict=True)

        if started:
            for (workflow,) in rows(list(map(_WORKFLOW_INT, started))):
                get(workflow).status |= STARTED
        if stage_rows:
            ids, _names, numbers, durations, _ok = stage_rows
            for workflow, number, duration in rows(ids, numbers, durations):
                summary = get(workflow)
                summary.status |= STAGED
                summary.stages |= 1 << number
                summary.stage_times.append(duration)
        if completed_rows:
            ids, durations, costs = completed_rows[0], completed_rows[1], completed_rows[5]
            for workflow, duration, cost in rows(ids, durations, costs):
                summary = get(workflow)
                summary.status |= COMPLETED
                summary.durations.append(duration)
                summary.costs.append(cost)
        if failed_rows:
            for workflow, partial in rows(failed_rows[0], failed_rows[1]):
                summary = get(workflow)
                summary.status |= FAILED
                summary.durations.append(partial)
        for summary in pending.values():
            kept = workflows.kept(summary.key)
            if kept is None:  # lost its place to a workflow offered earlier in this batch
                continue
            kept.status |= summary.status
            kept.stages |= summary.stages
            if summary.stage_times:
                kept.stage_time.extend(summary.stage_times)
            if summary.durations:
                kept.duration.extend(summary.durations)
            if summary.costs:
                kept.cost.extend(summary.costs)

    # -- merging -------------------------------------------------------------------------------

    def merge(self, other: AggregationState) -> AggregationState:
        """A new state equal to aggregating both states' events; neither input changes."""
        return AggregationState(self.settings).merge_in(self).merge_in(other)

    def delta(self) -> AggregationState:
        """An empty state for events that will be merged into this one: its breakdowns fold, up
        front, every key this state would refuse now (bars only rise), so merging it in gives
        exactly what adding the events here would, without admitting and evicting thousands of
        workflows in a state that starts empty each tick."""
        delta = AggregationState(self.settings)
        for name in BREAKDOWNS:
            getattr(delta, name).ceiling = getattr(self, name).bar()
        return delta

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
        for name in _MEANS:
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
        for name in BREAKDOWNS:
            getattr(self, name).merge_from(getattr(other, name))
        self.distinct_workflows.merge_from(other.distinct_workflows)
        return self

    # -- codec ---------------------------------------------------------------------------------

    def to_obj(self) -> dict[str, Any]:
        """Plain JSON-able values of every part (the body ``reducer.codec`` frames)."""
        return {
            "settings": self.settings.model_dump(mode="json"),
            "by_type": self.events_by_type,
            "invalid": self.events_invalid,
            "late": self.late_arrivals,
            "means": {name: getattr(self, name).to_obj() for name in _MEANS},
            "quantiles": self.duration_quantiles.to_obj(),
            "tokens": self.tokens,
            "intelligence": [self.intelligence_enabled, self.patterns_applied],
            "quality_buckets": self.quality_buckets,
            "cost_buckets": [self.cost_bucket_counts, [c.to_obj() for c in self.cost_bucket_costs]],
            "breakdowns": {name: getattr(self, name).to_obj() for name in _KEYED},
            "workflows": self.workflows.to_obj(),
            "distinct": self.distinct_workflows.to_obj(),
        }

    @classmethod
    def from_obj(cls, body: dict[str, Any]) -> AggregationState:
        """Inverse of ``to_obj``; raises StateCodecError (a ValueError) for anything else.

        Every part is checked before it is built (types, counts, sizes: see ``reducer.codec``),
        and the parts must agree: as many durations, qualities, costs, percentile values,
        quality-bucket and cost-bucket entries as completed events, as many partial durations
        as failed ones. A state that passes can be merged, aggregated into and turned into
        metrics (``to_metrics`` may still find a sum beyond the float range: ValueError)."""
        f = codec.field
        try:
            settings = ReducerSettings.model_validate(f(body, "settings", "body"))
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
            raise codec.fail("settings", f"are invalid ({problem:.200})") from exc
        if not all(map(math.isfinite, settings.cost_bucket_edges + settings.quality_bucket_edges)):
            raise codec.fail("settings", "have a bucket edge that is not finite")
        alpha = settings.sketch_relative_accuracy
        if not math.log((1 + alpha) / (1 - alpha)) > 0:
            raise codec.fail("settings", f"have a relative accuracy {alpha} too small for a double")
        state = cls(settings)
        cap, alpha = settings.exact_percentile_cap, settings.sketch_relative_accuracy
        state.events_by_type = [
            codec.count(n, "by_type") for n in codec.items(f(body, "by_type", "body"), "by_type", 4)
        ]
        state.events_invalid = codec.count(f(body, "invalid", "body"), "invalid")
        state.late_arrivals = codec.count(body.get("late", 0), "late")
        means = codec.mapping(f(body, "means", "body"), "means")
        for name in _MEANS:
            setattr(state, name, ExactMean.from_obj(f(means, name, "means"), name))
        state.duration_quantiles = QuantileStore.from_obj(
            f(body, "quantiles", "body"), cap, alpha, "quantiles"
        )
        state.tokens = codec.count(f(body, "tokens", "body"), "tokens", MAX_TOKEN_TOTAL)
        intelligence = codec.items(f(body, "intelligence", "body"), "intelligence", 2)
        state.intelligence_enabled, state.patterns_applied = (
            codec.count(n, "intelligence") for n in intelligence
        )
        state.quality_buckets = [
            codec.count(n, "quality_buckets")
            for n in codec.items(f(body, "quality_buckets", "body"), "quality_buckets", 3)
        ]
        buckets = len(settings.cost_bucket_edges) + 1
        counts, costs = codec.items(f(body, "cost_buckets", "body"), "cost_buckets", 2)
        state.cost_bucket_counts = [
            codec.count(n, "cost bucket count")
            for n in codec.items(counts, "cost_buckets", buckets)
        ]
        state.cost_bucket_costs = [
            ExactMean.from_obj(c, "cost bucket")
            for c in codec.items(costs, "cost_buckets", buckets)
        ]
        breakdowns = codec.mapping(f(body, "breakdowns", "body"), "breakdowns")
        for name in _DURATION_KEYED:
            getattr(state, name).load(
                f(breakdowns, name, "breakdowns"),
                lambda o, name=name: DurationStats.from_obj(o, cap, alpha, name),
                name,
            )
        for name in _COUNT_KEYED:
            getattr(state, name).load(
                f(breakdowns, name, "breakdowns"),
                lambda o, name=name: Count.from_obj(o, name),
                name,
            )
        state.workflows.load(f(body, "workflows", "body"), WorkflowSummary.from_obj, "workflows")
        state.distinct_workflows = DistinctCounter.from_obj(
            _checked_distinct(f(body, "distinct", "body"), settings.exact_distinct_cap),
            settings.exact_distinct_cap,
        )
        state._check_counts()
        return state

    def _check_counts(self) -> None:
        """The per-event parts of a decoded state agree with its event counts."""
        _, _, completed, failed = self.events_by_type
        per_completed = {
            "durations": self.durations.count,
            "quality": self.quality.count,
            "cost": self.cost.count,
            "quantiles": self.duration_quantiles.count,
            "quality_buckets": sum(self.quality_buckets),
            "cost_buckets": sum(self.cost_bucket_counts),
        }
        for name, n in per_completed.items():
            if n != completed:
                raise codec.fail(name, f"count {n} is not the {completed} completed events")
        if self.failed_partial.count != failed:
            raise codec.fail("failed_partial", f"count is not the {failed} failed events")
        for name in ("coverage", "complexity"):
            if getattr(self, name).count > completed:
                raise codec.fail(name, f"count exceeds the {completed} completed events")
        if self.intelligence_enabled > completed:
            raise codec.fail("intelligence", f"count exceeds the {completed} completed events")
        for n, cost in zip(self.cost_bucket_counts, self.cost_bucket_costs, strict=True):
            if cost.count != n:
                raise codec.fail("cost_buckets", "counts disagree with their sums")

    def to_bytes(self) -> bytes:
        return codec.pack(self.to_obj())

    @classmethod
    def from_bytes(cls, data: bytes) -> AggregationState:
        """Raises ``StateCodecError`` (a ValueError), and nothing else, for any bytes that are
        not a state ``to_bytes`` could have written; reading costs at most about 64 MB of
        memory (see ``reducer.codec``), whatever the bytes."""
        body = codec.unpack(data)
        try:
            return cls.from_obj(body)
        except codec.StateCodecError:
            raise
        except _UNCHECKED as exc:  # a gap in the checks; tests assert this never happens
            raise codec.StateCodecError(
                f"unreadable AggregationState body (unchecked): {exc!r:.200}"
            ) from exc

    # -- results -------------------------------------------------------------------------------

    def to_metrics(
        self,
        window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
    ) -> ModelMetricsState:
        """The metrics of every event aggregated here. Raises ValueError naming the field if an
        exact sum (a cost total, a workflow's durations) exceeds the float range: no metric is
        ever published as inf (such a state is corrupt or its input was)."""
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
            "total_cost_usd": finite(self.cost.total, "total_cost_usd"),
            "avg_cost_per_generation": ratio(self.cost.total, completed),
            "intelligence_enabled_count": self.intelligence_enabled,
            "avg_patterns_applied": self.patterns_applied / completed if completed else 0.0,
            **breakdown_fields(self.breakdowns()),
            "quality_score_buckets": dict(zip(QUALITY_BUCKETS, self.quality_buckets, strict=True)),
            "cost_buckets": {
                label: {"count": n, "total_cost_usd": finite(c.total, f"cost_buckets[{label}]")}
                for label, n, c in zip(
                    cost_bucket_labels(self.settings.cost_bucket_edges),
                    self.cost_bucket_counts,
                    self.cost_bucket_costs,
                    strict=True,
                )
            },
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

    def breakdowns(self) -> dict[str, Breakdown]:
        """Every keyed breakdown by name (``BREAKDOWNS``)."""
        return {name: getattr(self, name) for name in BREAKDOWNS}


def breakdown_fields(breakdowns: dict[str, Breakdown], *, workflow_other: bool = False) -> dict:
    """The metrics fields made of keyed breakdowns (``AggregationState.breakdowns``): stage,
    model and node-type rows, failures by stage and error code, workflow rows. Workflow rows
    are the kept workflows only, plus ``__other__`` if ``workflow_other``. Raises ValueError
    naming the row if a cost or workflow sum exceeds the float range."""
    stages = breakdowns["stages"]
    return {
        "avg_stage_durations": {k: v.durations.mean for k, v in stages.items() if v.count},
        "stage_metrics": {k: _stage_row(v) for k, v in stages.items()},
        "model_metrics": {
            k: _generation_row(v, k, cost=True) for k, v in breakdowns["models"].items()
        },
        "node_type_metrics": {
            k: _generation_row(v, k, cost=False) for k, v in breakdowns["node_types"].items()
        },
        "failures_by_stage": {k: v.n for k, v in breakdowns["failures_by_stage"].items()},
        "failures_by_error_code": {k: v.n for k, v in breakdowns["failures_by_error_code"].items()},
        "workflow_metrics": {
            k: v.row(k)
            for k, v in (
                breakdowns["workflows"].items()
                if workflow_other
                else breakdowns["workflows"].entries.items()
            )
        },
    }


_UNCHECKED = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)
"""What a gap in ``from_obj``'s checks could raise; ``from_bytes`` still turns it into a
StateCodecError, and the fuzz tests fail if one ever does (``__cause__`` is then set)."""


def _checked_distinct(obj: Any, exact_cap: int) -> dict:
    """The distinct-id counter's body, checked for ``DistinctCounter.from_obj``: at most
    ``exact_cap`` ids of 1..32 hex digits, or exactly ``REGISTERS`` registers of at most 49."""
    obj = codec.mapping(obj, "distinct")
    if ("ids" in obj) == ("hll" in obj):
        raise codec.fail("distinct", "must hold either ids or registers")
    if "ids" in obj:
        ids = codec.items(obj["ids"], "distinct ids", most=exact_cap)
        try:
            digits = "".join(ids)
        except TypeError:
            raise codec.fail("distinct ids", "are not all strings") from None
        if ids and not 1 <= min(map(len, ids)) <= max(map(len, ids)) <= 32:
            raise codec.fail("distinct ids", "are not all 1..32 hexadecimal digits")
        if not _HEX.fullmatch(digits):
            raise codec.fail("distinct ids", "are not all hexadecimal")
    else:
        registers = codec.b64(obj["hll"], "distinct registers", REGISTERS)
        if len(registers) != REGISTERS or max(registers) > _MAX_RHO:
            raise codec.fail("distinct registers", f"are not {REGISTERS} values <= {_MAX_RHO}")
    return obj


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


def _generation_row(stats: DurationStats, key: str, *, cost: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "total_generations": stats.count,
        "avg_duration_seconds": stats.durations.mean,
        "avg_quality_score": stats.quality.mean,
        "p95_duration_seconds": stats.quantiles.quantile(0.95),
    }
    if cost:
        row["total_tokens"] = stats.tokens
        total = stats.cost.sum
        if math.isinf(total):
            finite(stats.cost.total, f"model_metrics[{key}].total_cost_usd")
        row["total_cost_usd"] = total
        row["avg_cost_per_generation"] = stats.cost.mean
    return row

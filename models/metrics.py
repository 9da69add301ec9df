"""What aggregation produces: window types, ModelMetricsState and the published event."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic refuses typing.TypedDict before 3.12

from models.events import UtcDatetime, utc_now

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EnumMetricsWindow(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    def get_window_seconds(self) -> int:
        """Nominal length, kept from the contract (monthly = 30 days); real windows are calendar
        aligned, see reducer.windows.window_bounds."""
        return _WINDOW_SECONDS[self]


_WINDOW_SECONDS = {
    EnumMetricsWindow.HOURLY: 3600,
    EnumMetricsWindow.DAILY: 86400,
    EnumMetricsWindow.WEEKLY: 604800,
    EnumMetricsWindow.MONTHLY: 2592000,
}


ROW_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False)
"""Breakdown rows are typed (``dict[str, Any]`` would let inf through unchecked); every key is
optional and unknown keys are ignored, as the metrics models ignore unknown fields."""


@with_config(ROW_CONFIG)
class StageRow(TypedDict, total=False):
    count: int
    failures: int
    avg_duration_seconds: float
    p95_duration_seconds: float


@with_config(ROW_CONFIG)
class GenerationRow(TypedDict, total=False):
    """A model's row (with the cost fields) or a node type's (without)."""

    total_generations: int
    avg_duration_seconds: float
    avg_quality_score: float
    p95_duration_seconds: float
    total_tokens: int
    total_cost_usd: float
    avg_cost_per_generation: float


@with_config(ROW_CONFIG)
class CostBucketRow(TypedDict, total=False):
    count: int
    total_cost_usd: float


@with_config(ROW_CONFIG)
class WorkflowRow(TypedDict, total=False):
    status: str
    stages_seen: list[int]
    stage_time_seconds: float
    total_duration_seconds: float
    total_cost_usd: float


UnitFloat = Annotated[float, Field(ge=0, le=1)]


class MetricsBody(BaseModel):
    """Every metric of a window; shared by ModelMetricsState and the published event.

    Every float is finite: JSON has no inf or NaN (pydantic would write null, which this model
    refuses to read back), so a non-finite value is refused here, where it is made."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    window_start: UtcDatetime = EPOCH
    window_end: UtcDatetime = EPOCH
    # Counts: total = generations that finished (completed + failed), so success_rate <= 1.
    total_generations: int = 0
    successful_generations: int = 0
    failed_generations: int = 0
    started_generations: int = 0
    success_rate: UnitFloat = 0.0
    # Durations of completed generations (seconds); percentiles are nearest-rank.
    avg_duration_seconds: float = 0.0
    p50_duration_seconds: float = 0.0
    p95_duration_seconds: float = 0.0
    p99_duration_seconds: float = 0.0
    min_duration_seconds: float = 0.0
    max_duration_seconds: float = 0.0
    percentiles_exact: bool = True
    avg_failed_partial_duration_seconds: float = 0.0
    # Quality of completed generations.
    avg_quality_score: UnitFloat = 0.0
    avg_test_coverage: float | None = None
    avg_complexity_score: float | None = None
    # Cost.
    total_tokens: int = 0
    total_cost_usd: float = 0.0
    avg_cost_per_generation: float = 0.0
    # Pattern intelligence.
    intelligence_enabled_count: int = 0
    avg_patterns_applied: float = 0.0
    # Breakdowns.
    avg_stage_durations: dict[str, float] = Field(default_factory=dict)
    stage_metrics: dict[str, StageRow] = Field(default_factory=dict)
    model_metrics: dict[str, GenerationRow] = Field(default_factory=dict)
    node_type_metrics: dict[str, GenerationRow] = Field(default_factory=dict)
    failures_by_stage: dict[str, int] = Field(default_factory=dict)
    failures_by_error_code: dict[str, int] = Field(default_factory=dict)
    quality_score_buckets: dict[str, int] = Field(default_factory=dict)
    cost_buckets: dict[str, CostBucketRow] = Field(default_factory=dict)
    workflow_metrics: dict[str, WorkflowRow] = Field(default_factory=dict)
    workflows_evicted: int = 0
    workflow_ids_tracked: int = 0
    workflow_ids_exact: bool = True
    breakdowns_truncated: bool = False
    """Some breakdown keys (of the fewest events) were folded into ``__other__`` so the event
    fits the broker's message size (reducer.budget); totals, means and percentiles are exact."""
    # Counters.
    events_processed: int = 0
    events_by_type: dict[str, int] = Field(default_factory=dict)
    events_invalid: int = 0
    late_events: int = 0
    """Events applied after the watermark had passed their time (within the allowed lateness);
    later ones are not in any window: they go to the late-events topic."""


class ModelMetricsState(MetricsBody):
    """The result of aggregating one window (or any set of events)."""

    aggregation_id: UUID = Field(default_factory=uuid4)
    window_type: EnumMetricsWindow = EnumMetricsWindow.HOURLY
    aggregation_duration_ms: float = 0.0
    items_per_second: float = 0.0
    created_at: UtcDatetime = Field(default_factory=utc_now)


class ModelEventMetricsRecorded(MetricsBody):
    """The domain event published for a window: every metric plus its place in the stream.

    ``window_id`` (window type + start) is the Kafka key, so consumers upsert and a compacted topic
    keeps the latest; ``revision`` grows with each update and ``is_final`` marks the last one.
    """

    correlation_id: UUID
    event_id: UUID = Field(default_factory=uuid4)
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    event_type: Literal["CODEGEN_METRICS_RECORDED"] = "CODEGEN_METRICS_RECORDED"
    aggregation_type: str
    window_id: str = ""
    revision: int = 0
    is_final: bool = False
    watermark: UtcDatetime | None = None

    @classmethod
    def from_state(cls, state: ModelMetricsState, **envelope: Any) -> ModelEventMetricsRecorded:
        body = state.model_dump(include=set(MetricsBody.model_fields))
        return cls(aggregation_type=state.window_type.value, **body, **envelope)

"""The four input events of a code-generation workflow, as producers in the field emit them.

Field names, types, defaults and bounds are a compatibility contract (see the event contract
notes). The readers are tolerant: unknown fields are ignored, ``event_type`` matches in any ASCII
case and naive timestamps are taken as UTC. They are strict where a wrong value would corrupt
metrics: non-finite floats and negative durations, tokens or costs are rejected, and
``models.bounds`` rejects values no real generator emits (year 1, 4,300-digit token counts).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DEFAULT_PIPELINE_STAGES: tuple[str, ...] = (
    "prompt_parsing",
    "intelligence_gathering",
    "contract_building",
    "code_generation",
    "event_bus_integration",
    "validation",
    "refinement",
    "file_writing",
)


def _as_utc(value: datetime) -> datetime:
    """Naive means UTC; aware timestamps keep their offset (comparisons are absolute)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utc_now() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]

# Numeric timestamps are Unix seconds, always (pydantic would read numbers above 2e10 as
# milliseconds); see models/bounds.py for the domain bounds checked after validation.
EVENT_CONFIG = ConfigDict(
    extra="ignore", allow_inf_nan=False, frozen=True, val_temporal_unit="seconds"
)


class ModelEventBase(BaseModel):
    """Metadata every event carries."""

    model_config = EVENT_CONFIG

    correlation_id: UUID
    event_id: UUID = Field(default_factory=uuid4)
    timestamp: UtcDatetime = Field(default_factory=utc_now)


class ModelCodegenWorkflowEvent(ModelEventBase):
    workflow_id: UUID


class ModelEventCodegenStarted(ModelCodegenWorkflowEvent):
    event_type: Literal["CODEGEN_STARTED"] = "CODEGEN_STARTED"
    orchestrator_node_id: UUID
    prompt: str
    output_directory: str
    node_type_hint: str | None = None
    pipeline_stages: list[str] = Field(default_factory=lambda: list(DEFAULT_PIPELINE_STAGES))
    estimated_duration_seconds: int = 53


class ModelEventCodegenStageCompleted(ModelCodegenWorkflowEvent):
    event_type: Literal["CODEGEN_STAGE_COMPLETED"] = "CODEGEN_STAGE_COMPLETED"
    stage_name: str
    stage_number: Annotated[int, Field(ge=1, le=8)]
    duration_seconds: NonNegativeFloat
    cpu_time_seconds: NonNegativeFloat | None = None
    memory_mb: NonNegativeFloat | None = None
    success: bool
    warnings: list[str] = Field(default_factory=list)
    stage_output: dict[str, Any] = Field(default_factory=dict)


class ModelEventCodegenCompleted(ModelCodegenWorkflowEvent):
    event_type: Literal["CODEGEN_COMPLETED"] = "CODEGEN_COMPLETED"
    total_duration_seconds: NonNegativeFloat
    generated_files: list[str]
    node_type: str
    service_name: str
    quality_score: UnitFloat
    test_coverage: UnitFloat | None = None
    complexity_score: float | None = None
    patterns_applied: list[str] = Field(default_factory=list)
    intelligence_sources: list[str] = Field(default_factory=list)
    primary_model: str
    total_tokens: NonNegativeInt
    total_cost_usd: NonNegativeFloat
    contract_yaml: str
    node_module: str
    models: list[str]
    enums: list[str]
    tests: list[str]


class ModelEventCodegenFailed(ModelCodegenWorkflowEvent):
    event_type: Literal["CODEGEN_FAILED"] = "CODEGEN_FAILED"
    failed_stage: str
    partial_duration_seconds: NonNegativeFloat
    error_code: str
    error_message: str
    error_context: dict[str, Any] = Field(default_factory=dict)
    stack_trace: str | None = None
    partial_files: list[str] = Field(default_factory=list)
    retry_count: NonNegativeInt = 0
    is_retryable: bool = True
    retry_after_seconds: NonNegativeInt | None = None


CodegenEvent = (
    ModelEventCodegenStarted
    | ModelEventCodegenStageCompleted
    | ModelEventCodegenCompleted
    | ModelEventCodegenFailed
)

EVENT_TYPES: dict[str, type[ModelCodegenWorkflowEvent]] = {
    "CODEGEN_STARTED": ModelEventCodegenStarted,
    "CODEGEN_STAGE_COMPLETED": ModelEventCodegenStageCompleted,
    "CODEGEN_COMPLETED": ModelEventCodegenCompleted,
    "CODEGEN_FAILED": ModelEventCodegenFailed,
}

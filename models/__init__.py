"""Pydantic contracts: input events, metrics, intents, settings and the batch decoder."""

from models.decode import DecodedBatch, Reject, decode_batch, decode_one
from models.events import (
    CodegenEvent,
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.intents import ModelEventPublishIntent, ModelRetryPolicy
from models.metrics import EnumMetricsWindow, ModelEventMetricsRecorded, ModelMetricsState
from models.settings import (
    ConsulSettings,
    KafkaSettings,
    PipelineSettings,
    ReducerSettings,
    ServeSettings,
    Settings,
)

__all__ = [
    "CodegenEvent",
    "ConsulSettings",
    "DecodedBatch",
    "EnumMetricsWindow",
    "KafkaSettings",
    "ModelEventCodegenCompleted",
    "ModelEventCodegenFailed",
    "ModelEventCodegenStageCompleted",
    "ModelEventCodegenStarted",
    "ModelEventMetricsRecorded",
    "ModelEventPublishIntent",
    "ModelMetricsState",
    "ModelRetryPolicy",
    "PipelineSettings",
    "ReducerSettings",
    "Reject",
    "ServeSettings",
    "Settings",
    "decode_batch",
    "decode_one",
]

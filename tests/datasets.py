"""Event factories and named value distributions shared by the tests.

Factories build valid events of each of the four input types; every field can be overridden.
``*_dict`` factories return JSON-ready dicts (what a producer puts on the wire); the plain ones
return validated pydantic models. Distributions are named, seeded generators of non-negative
values (durations), in the spirit of ddsketch's tests/datasets.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from models import (
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)
from models.events import CodegenEvent

#: A Monday, 10:15 UTC: inside hour 10, day 2026-03-02, ISO week starting that day, March.
BASE_TIME = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def _common(event_type: str) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "correlation_id": new_id(),
        "event_id": new_id(),
        "workflow_id": new_id(),
        "timestamp": BASE_TIME.isoformat(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    base.update({key: _jsonable(value) for key, value in overrides.items()})
    return base


def started_dict(**overrides: Any) -> dict[str, Any]:
    return _apply(
        {
            **_common("CODEGEN_STARTED"),
            "orchestrator_node_id": new_id(),
            "prompt": "Generate an effect node",
            "output_directory": "/tmp/out",
        },
        overrides,
    )


def stage_dict(**overrides: Any) -> dict[str, Any]:
    return _apply(
        {
            **_common("CODEGEN_STAGE_COMPLETED"),
            "stage_name": "code_generation",
            "stage_number": 4,
            "duration_seconds": 2.5,
            "success": True,
        },
        overrides,
    )


def completed_dict(**overrides: Any) -> dict[str, Any]:
    return _apply(
        {
            **_common("CODEGEN_COMPLETED"),
            "total_duration_seconds": 30.0,
            "generated_files": ["node.py"],
            "node_type": "effect",
            "service_name": "svc",
            "quality_score": 0.85,
            "primary_model": "model-a",
            "total_tokens": 1000,
            "total_cost_usd": 0.02,
            "contract_yaml": "name: node\n",
            "node_module": "nodes.effect",
            "models": [],
            "enums": [],
            "tests": [],
        },
        overrides,
    )


def failed_dict(**overrides: Any) -> dict[str, Any]:
    return _apply(
        {
            **_common("CODEGEN_FAILED"),
            "failed_stage": "validation",
            "partial_duration_seconds": 12.0,
            "error_code": "VALIDATION_FAILED",
            "error_message": "validation failed",
        },
        overrides,
    )


def started(**overrides: Any) -> ModelEventCodegenStarted:
    return ModelEventCodegenStarted.model_validate(started_dict(**overrides))


def stage(**overrides: Any) -> ModelEventCodegenStageCompleted:
    return ModelEventCodegenStageCompleted.model_validate(stage_dict(**overrides))


def completed(**overrides: Any) -> ModelEventCodegenCompleted:
    return ModelEventCodegenCompleted.model_validate(completed_dict(**overrides))


def failed(**overrides: Any) -> ModelEventCodegenFailed:
    return ModelEventCodegenFailed.model_validate(failed_dict(**overrides))


DICT_FACTORIES = {
    "CODEGEN_STARTED": started_dict,
    "CODEGEN_STAGE_COMPLETED": stage_dict,
    "CODEGEN_COMPLETED": completed_dict,
    "CODEGEN_FAILED": failed_dict,
}
MODEL_FACTORIES = {
    "CODEGEN_STARTED": started,
    "CODEGEN_STAGE_COMPLETED": stage,
    "CODEGEN_COMPLETED": completed,
    "CODEGEN_FAILED": failed,
}


def to_json(event: dict[str, Any] | CodegenEvent) -> bytes:
    """One wire message (JSON bytes) for a dict or an event model."""
    if isinstance(event, dict):
        return json.dumps(event).encode()
    return event.model_dump_json().encode()


def workflow(
    *,
    outcome: str = "completed",
    at: datetime = BASE_TIME,
    stages: int = 3,
    **completion: Any,
) -> list[CodegenEvent]:
    """One workflow's events: STARTED, ``stages`` stage events, then COMPLETED or FAILED.

    ``completion`` overrides fields of the final event.
    """
    workflow_id = new_id()
    events: list[CodegenEvent] = [started(workflow_id=workflow_id, timestamp=at)]
    for number in range(1, stages + 1):
        events.append(
            stage(
                workflow_id=workflow_id,
                timestamp=at + timedelta(seconds=number),
                stage_number=number,
                stage_name=f"stage_{number}",
                duration_seconds=float(number),
                success=not (outcome == "failed" and number == stages),
            )
        )
    end = at + timedelta(seconds=stages + 1)
    if outcome == "completed":
        events.append(completed(workflow_id=workflow_id, timestamp=end, **completion))
    elif outcome == "failed":
        events.append(failed(workflow_id=workflow_id, timestamp=end, **completion))
    return events


def mixed_events(count: int, seed: int = 0, start: datetime = BASE_TIME) -> list[CodegenEvent]:
    """``count`` events of every type spread over a few hours, a few models and node types."""
    rng = np.random.default_rng(seed)
    workflow_ids = [new_id() for _ in range(max(count // 4, 1))]
    models = ["model-a", "model-b", "model-c"]
    node_types = ["effect", "compute", "reducer"]
    kinds = list(MODEL_FACTORIES)
    events: list[CodegenEvent] = []
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        common = {
            "workflow_id": workflow_ids[int(rng.integers(len(workflow_ids)))],
            "timestamp": start + timedelta(seconds=float(rng.uniform(0, 5 * 3600))),
        }
        if kind == "CODEGEN_STAGE_COMPLETED":
            number = int(rng.integers(1, 9))
            extra = {
                "stage_number": number,
                "stage_name": f"stage_{number}",
                "duration_seconds": float(rng.lognormal(0, 1)),
                "success": bool(rng.random() > 0.1),
            }
        elif kind == "CODEGEN_COMPLETED":
            extra = {
                "total_duration_seconds": float(rng.lognormal(3, 0.5)),
                "quality_score": float(rng.uniform(0, 1)),
                "test_coverage": float(rng.uniform(0, 1)) if rng.random() < 0.5 else None,
                "complexity_score": float(rng.uniform(1, 10)) if rng.random() < 0.5 else None,
                "primary_model": models[int(rng.integers(len(models)))],
                "node_type": node_types[int(rng.integers(len(node_types)))],
                "total_tokens": int(rng.integers(0, 20_000)),
                "total_cost_usd": float(rng.uniform(0, 2)),
                "patterns_applied": ["saga"] * int(rng.integers(0, 3)),
            }
        elif kind == "CODEGEN_FAILED":
            extra = {
                "failed_stage": f"stage_{int(rng.integers(1, 9))}",
                "partial_duration_seconds": float(rng.lognormal(2, 0.5)),
                "error_code": ["TIMEOUT", "INVALID"][int(rng.integers(2))],
            }
        else:
            extra = {}
        events.append(MODEL_FACTORIES[kind](**common, **extra))
    return events


def iter_json_lines(events: list[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield to_json(event)


# -- named distributions ----------------------------------------------------------------------


class Distribution:
    """A named, seeded generator of non-negative values."""

    name = "distribution"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Lognormal(Distribution):
    def __init__(self, mean: float = 0.0, sigma: float = 1.0) -> None:
        self.mean, self.sigma = mean, sigma
        self.name = f"lognormal({mean:g},{sigma:g})"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).lognormal(self.mean, self.sigma, size)


class Exponential(Distribution):
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.name = f"exponential({scale:g})"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).exponential(self.scale, size)


class Uniform(Distribution):
    def __init__(self, low: float = 0.0, high: float = 100.0) -> None:
        self.low, self.high = low, high
        self.name = f"uniform({low:g},{high:g})"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).uniform(self.low, self.high, size)


class Pareto(Distribution):
    """Heavy tail: a few generations take orders of magnitude longer."""

    def __init__(self, shape: float = 1.5) -> None:
        self.shape = shape
        self.name = f"pareto({shape:g})"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).pareto(self.shape, size) + 1.0


class Bimodal(Distribution):
    """Fast cache hits around 0.5 s and slow generations around 60 s."""

    name = "bimodal"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        fast = rng.normal(0.5, 0.05, size)
        slow = rng.normal(60.0, 5.0, size)
        return np.abs(np.where(rng.random(size) < 0.7, fast, slow))


class WithZeros(Distribution):
    """Lognormal with a fifth of the values exactly zero (instant cache hits)."""

    name = "lognormal-with-zeros"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        values = rng.lognormal(0, 1, size)
        values[rng.random(size) < 0.2] = 0.0
        return values


class Constant(Distribution):
    def __init__(self, value: float = 0.92) -> None:
        self.value = value
        self.name = f"constant({value:g})"

    def generate(self, size: int, seed: int = 0) -> np.ndarray:
        return np.full(size, self.value)


DISTRIBUTIONS: list[Distribution] = [
    Lognormal(),
    Lognormal(3.0, 0.5),
    Exponential(10.0),
    Uniform(),
    Pareto(),
    Bimodal(),
    WithZeros(),
    Constant(),
]

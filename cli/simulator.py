"""A realistic synthetic fleet of code generators: the events orchestrators would emit.

Deterministic for a seed. Used by ``codegen-metrics simulate``, the tests and the benchmarks.
Each workflow emits STARTED, one STAGE_COMPLETED per stage it reaches, then COMPLETED or (about
10% of the time) FAILED. Stage durations are lognormal; cost follows tokens at each model's price.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from models.events import DEFAULT_PIPELINE_STAGES

#: model -> (USD per 1k tokens, quality bias)
MODELS: dict[str, tuple[float, float]] = {
    "claude-sonnet-4": (0.009, 0.06),
    "gpt-4o": (0.00625, 0.04),
    "gemini-2.5-pro": (0.005, 0.03),
    "deepseek-coder-v3": (0.0011, -0.02),
    "llama-3.3-70b": (0.0008, -0.05),
}
NODE_TYPES = ("effect", "compute", "reducer", "orchestrator")
#: median seconds per stage
STAGE_MEDIANS = (0.8, 4.0, 3.0, 18.0, 2.5, 6.0, 5.0, 0.6)
ERROR_CODES = ("LLM_TIMEOUT", "VALIDATION_FAILED", "CONTRACT_INVALID", "RATE_LIMITED", "IO_ERROR")
PATTERNS = ("circuit_breaker", "retry_backoff", "event_sourcing", "cqrs", "saga", "outbox")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def simulate_fleet(
    workflows: int,
    seed: int = 0,
    start: datetime | None = None,
    workflows_per_second: float = 2.0,
    failure_rate: float = 0.1,
) -> Iterator[dict[str, Any]]:
    """Events of ``workflows`` generation workflows, as JSON-ready dicts, in workflow order."""
    rng = random.Random(seed)
    clock = start or datetime(2026, 11, 2, tzinfo=UTC)
    model_names = list(MODELS)
    for _ in range(workflows):
        clock += timedelta(seconds=rng.expovariate(workflows_per_second))
        workflow_id, correlation_id = _uuid(rng), _uuid(rng)
        model = rng.choice(model_names)
        node_type = rng.choice(NODE_TYPES)
        base = {"workflow_id": workflow_id, "correlation_id": correlation_id}
        now = clock
        yield {
            **base,
            "event_type": "CODEGEN_STARTED",
            "event_id": _uuid(rng),
            "timestamp": now.isoformat(),
            "orchestrator_node_id": _uuid(rng),
            "prompt": f"Generate a {node_type} node for service {rng.randrange(500)}",
            "output_directory": f"/tmp/gen/{workflow_id[:8]}",
            "node_type_hint": node_type,
        }
        fail_at = rng.randrange(8) if rng.random() < failure_rate else None
        elapsed = 0.0
        for number, (stage, median) in enumerate(
            zip(DEFAULT_PIPELINE_STAGES, STAGE_MEDIANS, strict=True), start=1
        ):
            duration = round(rng.lognormvariate(0, 0.5) * median, 3)
            elapsed += duration
            now = clock + timedelta(seconds=elapsed)
            failed_here = number - 1 == fail_at
            yield {
                **base,
                "event_type": "CODEGEN_STAGE_COMPLETED",
                "event_id": _uuid(rng),
                "timestamp": now.isoformat(),
                "stage_name": stage,
                "stage_number": number,
                "duration_seconds": duration,
                "cpu_time_seconds": round(duration * rng.uniform(0.1, 0.9), 3),
                "memory_mb": round(rng.uniform(80, 900), 1),
                "success": not failed_here,
            }
            if failed_here:
                yield {
                    **base,
                    "event_type": "CODEGEN_FAILED",
                    "event_id": _uuid(rng),
                    "timestamp": now.isoformat(),
                    "failed_stage": stage,
                    "partial_duration_seconds": round(elapsed, 3),
                    "error_code": rng.choice(ERROR_CODES),
                    "error_message": f"{stage} failed",
                    "retry_count": rng.randrange(3),
                }
                break
        else:
            price, bias = MODELS[model]
            tokens = int(rng.lognormvariate(9.5, 0.6))
            quality = min(max(rng.gauss(0.78 + bias, 0.1), 0.0), 1.0)
            patterns = rng.sample(PATTERNS, rng.choice((0, 0, 1, 2, 3)))
            yield {
                **base,
                "event_type": "CODEGEN_COMPLETED",
                "event_id": _uuid(rng),
                "timestamp": now.isoformat(),
                "total_duration_seconds": round(elapsed, 3),
                "generated_files": [f"node_{node_type}.py", "contract.yaml"],
                "node_type": node_type,
                "service_name": f"svc-{rng.randrange(500)}",
                "quality_score": round(quality, 3),
                "test_coverage": round(rng.uniform(0.5, 1.0), 3) if rng.random() < 0.8 else None,
                "complexity_score": round(rng.uniform(1, 15), 2) if rng.random() < 0.7 else None,
                "patterns_applied": patterns,
                "intelligence_sources": ["archon"] if patterns else [],
                "primary_model": model,
                "total_tokens": tokens,
                "total_cost_usd": round(tokens / 1000 * price, 6),
                "contract_yaml": "name: node\nversion: 1.0.0\n",
                "node_module": f"nodes.{node_type}",
                "models": ["model_input.py"],
                "enums": [],
                "tests": ["test_node.py"],
            }


def fleet_json_lines(workflows: int, seed: int = 0, **kwargs: Any) -> Iterator[bytes]:
    for event in simulate_fleet(workflows, seed, **kwargs):
        yield json.dumps(event, separators=(",", ":")).encode()

"""What the API says about the running pipeline: breakdown rows and Prometheus text.

Plain functions over the actors' typed stats (reducer/nodes/stats.py), tested without Ray. The
health rules are the supervisor's (reducer/nodes/supervisor.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from models.metrics import ModelMetricsState
from reducer.nodes.stats import PipelineStats

BreakdownBy = Literal["stage", "model", "node_type", "quality_bucket", "cost_bucket", "workflow"]
BREAKDOWNS: tuple[str, ...] = get_args(BreakdownBy)


def breakdown_rows(metrics: ModelMetricsState, by: str) -> list[dict[str, Any]]:
    """One grouping of a state as rows: {"key": ..., <metrics>}."""
    table: dict[str, Any] = {
        "stage": metrics.stage_metrics,
        "model": metrics.model_metrics,
        "node_type": metrics.node_type_metrics,
        "quality_bucket": {k: {"count": v} for k, v in metrics.quality_score_buckets.items()},
        "cost_bucket": metrics.cost_buckets,
        "workflow": metrics.workflow_metrics,
    }[by]
    return [{"key": key, **values} for key, values in table.items()]


def prometheus_text(
    stats: PipelineStats,
    current_hour: ModelMetricsState | None,
    now: datetime | None = None,
) -> bytes:
    """Prometheus exposition of the pipeline's counters and the current hour's metrics."""
    registry = CollectorRegistry()
    events = Counter(
        "codegen_metrics_events",
        "Events decoded from Kafka, by type",
        ["event_type"],
        registry=registry,
    )
    bad = Counter(
        "codegen_metrics_bad_events",
        "Messages dead-lettered, by reason",
        ["reason"],
        registry=registry,
    )
    published = Counter(
        "codegen_metrics_published_updates",
        "Window updates published to the target topic",
        registry=registry,
    )
    inflight = Gauge(
        "codegen_metrics_batches_in_flight", "Batches sent, not yet applied", registry=registry
    )
    lag = Gauge(
        "codegen_metrics_watermark_lag_seconds", "Wall clock minus the watermark", registry=registry
    )
    open_windows = Gauge("codegen_metrics_open_windows", "Windows not yet final", registry=registry)
    by_type: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for ingest in stats.ingest:
        if ingest is None:
            continue
        for event_type, n in ingest.events_by_type.items():
            by_type[event_type] = by_type.get(event_type, 0) + n
        for reason, n in ingest.rejects_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        inflight.inc(ingest.batches_in_flight)
    for event_type, n in sorted(by_type.items()):
        events.labels(event_type).inc(n)
    for reason, n in sorted(by_reason.items()):
        bad.labels(reason).inc(n)
    executor, coordinator = stats.intent_executor, stats.coordinator
    if executor is not None:
        published.inc(executor.published)
    if coordinator is not None:
        open_windows.set(coordinator.open_windows)
        if coordinator.watermark:
            watermark = datetime.fromisoformat(coordinator.watermark)
            lag.set(((now or datetime.now(UTC)) - watermark).total_seconds())
    if current_hour is not None:
        hour = {
            "success_rate": (
                "Success rate of the current hourly window",
                current_hour.success_rate,
            ),
            "duration_p50_seconds": (
                "p50 duration, current hour",
                current_hour.p50_duration_seconds,
            ),
            "duration_p95_seconds": (
                "p95 duration, current hour",
                current_hour.p95_duration_seconds,
            ),
            "duration_p99_seconds": (
                "p99 duration, current hour",
                current_hour.p99_duration_seconds,
            ),
            "cost_usd": ("Total cost, current hour", current_hour.total_cost_usd),
            "generations": ("Finished generations, current hour", current_hour.total_generations),
        }
        for name, (text, value) in hour.items():
            Gauge(f"codegen_metrics_current_hour_{name}", text, registry=registry).set(value)
    return generate_latest(registry)

"""What the API says about the running pipeline: health rules, breakdown rows, Prometheus text.

Plain functions over the stats dicts the actors return, so the rules are tested without Ray.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from models.metrics import ModelMetricsState

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
BreakdownBy = Literal["stage", "model", "node_type", "quality_bucket", "cost_bucket", "workflow"]
BREAKDOWNS: tuple[str, ...] = get_args(BreakdownBy)


def evaluate_health(
    ingest: list[dict[str, Any] | None],
    windows: list[dict[str, Any] | None],
    coordinator: dict[str, Any] | None,
    executor: dict[str, Any] | None,
    stall_seconds: float,
) -> tuple[str, list[str]]:
    """(status, reasons). ``None`` stands for an actor that did not answer (dead or missing).

    Unhealthy: no window actor, coordinator or ingest actor can do its job, so no metrics flow.
    Degraded: metrics still flow, but an ingest actor is down or stalled, or an actor reports an
    error.
    """
    reasons: list[str] = []
    status = HEALTHY
    if coordinator is None:
        reasons.append("coordinator is down")
    if any(w is None for w in windows):
        reasons.append(f"{sum(w is None for w in windows)} window actor(s) down")
    alive = [i for i in ingest if i is not None and i.get("running")]
    if not alive:
        reasons.append("no ingest actor is consuming")
    if reasons:
        return UNHEALTHY, reasons
    for index, stats in enumerate(ingest):
        if stats is None or not stats.get("running"):
            reasons.append(f"ingest-{index} is down")
        elif (stats.get("seconds_since_poll") or 0) > stall_seconds:
            reasons.append(
                f"ingest-{index} has not polled Kafka for {stats['seconds_since_poll']:.0f} s"
            )
        if stats is not None and stats.get("error"):
            reasons.append(f"ingest-{index}: {stats['error']}")
    if executor is None:
        reasons.append("intent executor is down")
    elif executor.get("error"):
        reasons.append(f"intent executor: {executor['error']}")
    if coordinator.get("error") and (coordinator.get("seconds_since_tick") or 0) > stall_seconds:
        reasons.append(f"coordinator: {coordinator['error']}")
    if reasons:
        status = DEGRADED
    return status, reasons


def unowned_partitions(ingest: list[dict[str, Any] | None]) -> list[str]:
    """Input partitions that no running ingest actor owns: each actor lists every partition of
    the input topics it knows of (``partitions``) and those assigned to it (``assigned``)."""
    known: set[str] = set()
    owned: set[str] = set()
    for stats in ingest:
        if stats is None:
            continue
        known.update(stats.get("partitions") or ())
        if stats.get("running"):
            owned.update(stats.get("assigned") or ())
    return sorted(known - owned)


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
    ingest: list[dict[str, Any] | None],
    coordinator: dict[str, Any] | None,
    executor: dict[str, Any] | None,
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
    for stats in ingest:
        if stats is None:
            continue
        for event_type, n in (stats.get("events_by_type") or {}).items():
            by_type[event_type] = by_type.get(event_type, 0) + n
        for reason, n in (stats.get("rejects_by_reason") or {}).items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        inflight.inc(stats.get("batches_in_flight", 0))
    for event_type, n in sorted(by_type.items()):
        events.labels(event_type).inc(n)
    for reason, n in sorted(by_reason.items()):
        bad.labels(reason).inc(n)
    if executor is not None:
        published.inc(executor.get("published", 0))
    if coordinator is not None:
        open_windows.set(coordinator.get("open_windows", 0))
        if coordinator.get("watermark"):
            watermark = datetime.fromisoformat(coordinator["watermark"])
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

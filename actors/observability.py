"""What the API says about the running pipeline: breakdown rows and Prometheus text.

Plain functions over the actors' typed stats (reducer/nodes/stats.py), tested without Ray. The
health rules are the supervisor's (reducer/nodes/supervisor.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.dead_letter import DeadLetterCategory
from models.events import EVENT_TYPES
from models.metrics import ModelMetricsState
from reducer.nodes.stats import PipelineStats

BreakdownBy = Literal["stage", "model", "node_type", "quality_bucket", "cost_bucket", "workflow"]
BREAKDOWNS: tuple[str, ...] = get_args(BreakdownBy)
INPUT_CATEGORIES = [
    c for c in DeadLetterCategory if c not in ("late", "invalid_intent", "publish_failed")
]
"""Dead-letter categories of input messages (late events and intents are counted apart)."""


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
    pipeline: str = "",
) -> bytes:
    """Prometheus exposition of the pipeline's counters and the current hour's metrics.

    Built from the stats of this scrape as constant metric families, so no series carries a
    ``_created`` timestamp (a registry rebuilt per scrape would stamp every counter with the
    scrape time). Names follow Prometheus conventions: units in the name, ``_total`` on
    counters. Every series carries ``pipeline`` (the instance name)."""
    base = {"pipeline": pipeline}
    families: list[Metric] = []

    def family(kind: type, name: str, text: str, labels: tuple[str, ...] = ()) -> Any:
        metric = kind(name, text, labels=["pipeline", *labels])
        families.append(metric)
        return metric

    def add(metric: Any, value: float, **labels: str) -> None:
        metric.add_metric([base["pipeline"], *labels.values()], value)

    ingest = [i for i in stats.ingest if i is not None]
    events = family(
        CounterMetricFamily, "codegen_metrics_events", "Valid events read", ("event_type",)
    )
    # Every event type and category from the start (0 until seen), so rates and alerts never
    # meet an absent series.
    by_type = dict.fromkeys(EVENT_TYPES, 0) | _sum_maps(i.events_by_type for i in ingest)
    for event_type, n in sorted(by_type.items()):
        add(events, n, event_type=event_type)
    bad = family(
        CounterMetricFamily, "codegen_metrics_bad_events", "Messages dead-lettered", ("category",)
    )
    by_category = dict.fromkeys(INPUT_CATEGORIES, 0) | _sum_maps(
        i.rejects_by_reason for i in ingest
    )
    for category, n in sorted(by_category.items()):
        add(bad, n, category=category)
    add(
        family(CounterMetricFamily, "codegen_metrics_late_events", "Events sent to the late topic"),
        sum(i.events_late for i in ingest),
    )
    add(
        family(
            CounterMetricFamily,
            "codegen_metrics_dead_letter_failures",
            "Dead letters or late events the producer refused (logged with their offsets)",
        ),
        sum(i.set_aside_failures for i in ingest),
    )
    add(
        family(GaugeMetricFamily, "codegen_metrics_batches_in_flight", "Batches sent, not applied"),
        sum(i.batches_in_flight for i in ingest),
    )
    lag = family(
        GaugeMetricFamily,
        "codegen_metrics_consumer_lag_messages",
        "Messages between the consumer's position and the partition's end (librdkafka)",
        ("topic", "partition"),
    )
    for i in ingest:
        for key, value in sorted(i.consumer_lag.items()):
            topic, _, partition = key.rpartition("[")
            add(lag, value, topic=topic, partition=partition.rstrip("]"))
    executor, coordinator = stats.intent_executor, stats.coordinator
    if executor is not None:
        for name, text, value in (
            ("published_updates", "Window updates published", executor.published),
            ("publish_failures", "Failed publish attempts", executor.publish_failures),
            ("intents_dead_lettered", "Intents given up on", executor.dead_lettered),
        ):
            add(family(CounterMetricFamily, f"codegen_metrics_{name}", text), value)
    if coordinator is not None:
        for name, text, value in (
            ("ticks", "Coordinator ticks", coordinator.ticks),
            ("early_ticks", "Ticks started when a backlog was read", coordinator.early_ticks),
            ("tick_errors", "Ticks that failed", coordinator.tick_errors),
            ("windows_set_aside", "Window updates set aside", coordinator.windows_set_aside),
            ("checkpoints", "Checkpoints written", coordinator.checkpoints),
            ("checkpoint_failures", "Checkpoints that failed", coordinator.checkpoint_failures),
        ):
            add(family(CounterMetricFamily, f"codegen_metrics_{name}", text), value)
        add(
            family(GaugeMetricFamily, "codegen_metrics_open_windows", "Windows not yet final"),
            coordinator.open_windows,
        )
        for name, text, value in (
            (
                "checkpoint_age_seconds",
                "Since the last checkpoint",
                coordinator.seconds_since_checkpoint,
            ),
            ("tick_age_seconds", "Since the last tick", coordinator.seconds_since_tick),
        ):
            if value is not None:
                add(family(GaugeMetricFamily, f"codegen_metrics_{name}", text), value)
        if coordinator.watermark:
            watermark = datetime.fromisoformat(coordinator.watermark)
            add(
                family(
                    GaugeMetricFamily,
                    "codegen_metrics_watermark_lag_seconds",
                    "Wall clock minus the watermark",
                ),
                ((now or datetime.now(UTC)) - watermark).total_seconds(),
            )
    if current_hour is not None:
        for name, text, value in (
            ("success_ratio", "Success rate, current hour", current_hour.success_rate),
            (
                "duration_p50_seconds",
                "p50 duration, current hour",
                current_hour.p50_duration_seconds,
            ),
            (
                "duration_p95_seconds",
                "p95 duration, current hour",
                current_hour.p95_duration_seconds,
            ),
            (
                "duration_p99_seconds",
                "p99 duration, current hour",
                current_hour.p99_duration_seconds,
            ),
            ("cost_usd", "Total cost, current hour", current_hour.total_cost_usd),
            ("generations", "Finished generations, current hour", current_hour.total_generations),
        ):
            add(family(GaugeMetricFamily, f"codegen_metrics_current_hour_{name}", text), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _sum_maps(maps: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in maps:
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    return total

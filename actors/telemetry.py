"""Metrics the actors export through ``ray.util.metrics`` (Ray's dashboard and Prometheus
exporter, where Ray prefixes each name with ``ray_``)."""

from __future__ import annotations

from dataclasses import dataclass

from ray.util import metrics


@dataclass
class IngestMetrics:
    events: metrics.Counter
    rejects: metrics.Counter
    batch_ms: metrics.Histogram

    @classmethod
    def create(cls, actor: str) -> IngestMetrics:
        made = cls(
            metrics.Counter(
                "codegen_metrics_ingest_events", "Events decoded, by type", ("actor", "event_type")
            ),
            metrics.Counter("codegen_metrics_ingest_rejects", "Messages dead-lettered", ("actor",)),
            metrics.Histogram(
                "codegen_metrics_ingest_batch_latency_ms",
                "From consume to every window actor having applied the batch",
                [5, 20, 100, 500, 2000, 10000],
                ("actor",),
            ),
        )
        for metric in (made.events, made.rejects, made.batch_ms):
            metric.set_default_tags({"actor": actor})
        return made


@dataclass
class WindowMetrics:
    events: metrics.Counter
    apply_ms: metrics.Histogram
    lag: metrics.Gauge

    @classmethod
    def create(cls, actor: str) -> WindowMetrics:
        made = cls(
            metrics.Counter(
                "codegen_metrics_window_events_applied", "Events folded into panes", ("actor",)
            ),
            metrics.Histogram(
                "codegen_metrics_window_apply_ms",
                "Time to fold one batch",
                [1, 5, 20, 100, 500],
                ("actor",),
            ),
            metrics.Gauge(
                "codegen_metrics_window_lag_seconds",
                "Wall clock minus this actor's watermark",
                ("actor",),
            ),
        )
        for metric in (made.events, made.apply_ms, made.lag):
            metric.set_default_tags({"actor": actor})
        return made

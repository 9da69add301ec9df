"""Breakdown rows and Prometheus text, without Ray."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from actors.kafka import consumer_lags
from actors.observability import BREAKDOWNS, breakdown_rows, prometheus_text
from reducer import MetricsAggregator
from reducer.nodes.stats import CoordinatorStats, ExecutorStats, IngestStats, PipelineStats
from tests.datasets import mixed_events

INGEST = IngestStats(index=0, running=True, seconds_since_poll=0.2)
COORDINATOR = CoordinatorStats(seconds_since_tick=1.0, open_windows=3)
EXECUTOR = ExecutorStats(published=7)


def test_every_breakdown_becomes_rows_with_a_key() -> None:
    metrics = MetricsAggregator.aggregate_events(mixed_events(300, seed=3))
    for by in BREAKDOWNS:
        rows = breakdown_rows(metrics, by)
        assert rows and all("key" in row for row in rows), by
    assert {r["key"] for r in breakdown_rows(metrics, "model")} == set(metrics.model_metrics)


def test_prometheus_text_parses_and_sums_counters_across_ingest_actors() -> None:
    ingest = [
        replace(
            INGEST,
            events_by_type={"CODEGEN_STARTED": 2},
            rejects_by_reason={"oversized": 1},
            batches_in_flight=1,
        ),
        None,  # an actor that did not answer counts nothing
        replace(INGEST, events_by_type={"CODEGEN_STARTED": 3}, batches_in_flight=2),
    ]
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    coordinator = replace(COORDINATOR, watermark=(now - timedelta(seconds=90)).isoformat())
    hour = MetricsAggregator.aggregate_events(mixed_events(100, seed=4))
    stats = PipelineStats(ingest, [], coordinator, EXECUTOR)
    text = prometheus_text(stats, hour, now=now, pipeline="team-a").decode()
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "pipeline"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("codegen_metrics_events_total", (("event_type", "CODEGEN_STARTED"),))] == 5
    assert samples[("codegen_metrics_bad_events_total", (("category", "oversized"),))] == 1
    assert samples[("codegen_metrics_batches_in_flight", ())] == 3
    assert samples[("codegen_metrics_watermark_lag_seconds", ())] == 90
    assert samples[("codegen_metrics_published_updates_total", ())] == 7
    assert samples[("codegen_metrics_current_hour_success_ratio", ())] == hour.success_rate
    assert all('pipeline="team-a"' in line for line in text.splitlines() if line[:1] != "#")


def test_prometheus_text_has_no_created_series_and_reports_ages_lags_and_failures() -> None:
    ingest = replace(INGEST, consumer_lag={"dev.codegen.started.v1[0]": 12, "t[3]": 0})
    coordinator = replace(
        COORDINATOR,
        checkpoint_failures=2,
        seconds_since_checkpoint=41.5,
        seconds_since_tick=0.75,
        windows_set_aside=1,
    )
    executor = replace(EXECUTOR, publish_failures=4, dead_lettered=1)
    text = prometheus_text(PipelineStats([ingest], [], coordinator, executor), None).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert "_created" not in text
    lag = "codegen_metrics_consumer_lag_messages"
    labels = (("partition", "0"), ("pipeline", ""), ("topic", "dev.codegen.started.v1"))
    assert samples[(lag, labels)] == 12
    only = (("pipeline", ""),)
    assert samples[("codegen_metrics_checkpoint_failures_total", only)] == 2
    assert samples[("codegen_metrics_checkpoint_age_seconds", only)] == 41.5
    assert samples[("codegen_metrics_tick_age_seconds", only)] == 0.75
    assert samples[("codegen_metrics_publish_failures_total", only)] == 4
    assert samples[("codegen_metrics_intents_dead_lettered_total", only)] == 1
    assert samples[("codegen_metrics_windows_set_aside_total", only)] == 1


def test_consumer_lags_come_from_the_active_partitions_of_a_librdkafka_report() -> None:
    report = {
        "topics": {
            "dev.codegen.started.v1": {
                "partitions": {
                    "0": {"fetch_state": "active", "consumer_lag": 7},
                    "1": {"fetch_state": "active", "consumer_lag": -1},  # not known yet
                    "2": {"fetch_state": "none", "consumer_lag": 0},  # not ours
                    "-1": {"fetch_state": "none", "consumer_lag": -1},  # librdkafka's UA
                }
            }
        }
    }
    assert consumer_lags(report) == {"dev.codegen.started.v1[0]": 7}
    assert consumer_lags({}) == {}

"""Health rules, breakdown rows and Prometheus text, without Ray."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from actors.observability import (
    BREAKDOWNS,
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    breakdown_rows,
    evaluate_health,
    prometheus_text,
    unowned_partitions,
)
from reducer import MetricsAggregator
from tests.datasets import mixed_events

INGEST = {"running": True, "seconds_since_poll": 0.2, "error": None}
WINDOW = {"events_applied": 10}
COORDINATOR = {"error": None, "seconds_since_tick": 1.0, "open_windows": 3}
EXECUTOR = {"error": None, "published": 7}


def test_all_actors_answering_and_polling_is_healthy() -> None:
    assert evaluate_health([INGEST, INGEST], [WINDOW], COORDINATOR, EXECUTOR, 30) == (
        HEALTHY,
        [],
    )


def test_a_stopped_or_stalled_ingest_actor_makes_it_degraded_with_the_reason() -> None:
    stalled = {**INGEST, "seconds_since_poll": 45.0}
    status, reasons = evaluate_health([INGEST, stalled], [WINDOW], COORDINATOR, EXECUTOR, 30)
    assert status == DEGRADED and reasons == ["ingest-1 has not polled Kafka for 45 s"]
    status, reasons = evaluate_health([INGEST, None], [WINDOW], COORDINATOR, EXECUTOR, 30)
    assert status == DEGRADED and reasons == ["ingest-1 is down"]


def test_no_consuming_ingest_a_dead_window_actor_or_coordinator_is_unhealthy() -> None:
    assert evaluate_health([None], [WINDOW], COORDINATOR, EXECUTOR, 30)[0] == UNHEALTHY
    assert evaluate_health([INGEST], [WINDOW, None], COORDINATOR, EXECUTOR, 30)[0] == UNHEALTHY
    status, reasons = evaluate_health([INGEST], [WINDOW], None, EXECUTOR, 30)
    assert status == UNHEALTHY and reasons == ["coordinator is down"]


def test_a_dead_intent_executor_degrades_but_metrics_still_merge() -> None:
    status, reasons = evaluate_health([INGEST], [WINDOW], COORDINATOR, None, 30)
    assert status == DEGRADED and reasons == ["intent executor is down"]


def test_unowned_partitions_are_those_no_running_ingest_actor_owns() -> None:
    every = ["in[0]", "in[1]", "in[2]", "in[3]"]
    a = {"running": True, "partitions": every, "assigned": ["in[0]", "in[1]"]}
    b = {"running": True, "partitions": every, "assigned": ["in[2]", "in[3]"]}
    assert unowned_partitions([a, b]) == []
    assert unowned_partitions([a, {**b, "assigned": []}]) == ["in[2]", "in[3]"]
    # A stopped actor's (stale) assignment owns nothing; a dead one (None) is skipped.
    assert unowned_partitions([a, {**b, "running": False}]) == ["in[2]", "in[3]"]
    assert unowned_partitions([a, None]) == ["in[2]", "in[3]"]
    # Partitions only one actor has heard of still count (metadata refreshes at its own pace).
    assert unowned_partitions([a, {**b, "partitions": [*every, "in[4]"]}]) == ["in[4]"]
    assert unowned_partitions([None]) == []


def test_every_breakdown_becomes_rows_with_a_key() -> None:
    metrics = MetricsAggregator.aggregate_events(mixed_events(300, seed=3))
    for by in BREAKDOWNS:
        rows = breakdown_rows(metrics, by)
        assert rows and all("key" in row for row in rows), by
    assert {r["key"] for r in breakdown_rows(metrics, "model")} == set(metrics.model_metrics)


def test_prometheus_text_parses_and_sums_counters_across_ingest_actors() -> None:
    ingest = [
        {
            **INGEST,
            "events_by_type": {"CODEGEN_STARTED": 2},
            "rejects_by_reason": {"late": 1},
            "batches_in_flight": 1,
        },
        {
            **INGEST,
            "events_by_type": {"CODEGEN_STARTED": 3},
            "rejects_by_reason": {},
            "batches_in_flight": 2,
        },
    ]
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    coordinator = {**COORDINATOR, "watermark": (now - timedelta(seconds=90)).isoformat()}
    hour = MetricsAggregator.aggregate_events(mixed_events(100, seed=4))
    text = prometheus_text(ingest, coordinator, EXECUTOR, hour, now=now).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("codegen_metrics_events_total", (("event_type", "CODEGEN_STARTED"),))] == 5
    assert samples[("codegen_metrics_bad_events_total", (("reason", "late"),))] == 1
    assert samples[("codegen_metrics_batches_in_flight", ())] == 3
    assert samples[("codegen_metrics_watermark_lag_seconds", ())] == 90
    assert samples[("codegen_metrics_published_updates_total", ())] == 7
    assert samples[("codegen_metrics_current_hour_success_rate", ())] == hour.success_rate

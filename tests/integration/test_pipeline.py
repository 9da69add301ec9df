"""The streaming pipeline end to end: real Tansu, real local Ray."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime

import pytest
import ray

from actors import kafka
from actors.fleet import produce_events
from actors.pipeline import Pipeline
from cli.simulator import simulate_fleet
from models import EnumMetricsWindow, ModelEventMetricsRecorded, Settings, decode_one
from models.metrics import MetricsBody
from models.settings import KafkaSettings, PipelineSettings
from reducer import MetricsAggregator, window_id
from reducer.nodes.routing import owner

# Crosses an hour, a day and a month boundary, all long closed (their finals must appear).
START = datetime(2026, 9, 30, 22, 30, tzinfo=UTC)
# late_events depends on arrival order, not on the event set: checked in its own test.
COMPARED = set(MetricsBody.model_fields) - {"events_invalid", "late_events"}


def fleet(workflows: int, seed: int) -> list[dict]:
    # 0.05 workflows/s spreads 300 workflows over ~100 minutes: several hours, two days.
    return list(simulate_fleet(workflows, seed, start=START, workflows_per_second=0.05))


def expected_windows(events: list[dict], window: EnumMetricsWindow) -> dict[str, dict]:
    parsed = [decode_one(json.dumps(e)) for e in events]
    return {
        window_id(window, m.window_start): m.model_dump(mode="json", include=COMPARED)
        for m in MetricsAggregator.aggregate_windows(parsed, window)
    }


def expected_all(events: list[dict], windows: tuple[EnumMetricsWindow, ...]) -> dict[str, dict]:
    """MetricsAggregator's answer for every window of every published type."""
    expected: dict[str, dict] = {}
    for window in windows:
        expected.update(expected_windows(events, window))
    return expected


def assert_exact(finals: dict[str, dict], expected: dict[str, dict]) -> None:
    """Every expected window has a final, and each equals the exact answer."""
    assert set(finals) == set(expected)
    for key, payload in finals.items():
        assert body(payload) == expected[key], key


def settings_for(kafka_settings: KafkaSettings, **pipeline: object) -> Settings:
    defaults = {
        "storage_path": tempfile.mkdtemp(prefix="ckpt"),
        "tick_seconds": 0.5,
        "allowed_lateness_seconds": 0,
        "idle_partition_timeout_seconds": 2,
        "window_actors": 2,
    }
    return Settings(kafka=kafka_settings, pipeline=PipelineSettings(**{**defaults, **pipeline}))


def read_finals(settings: KafkaSettings, expected: int, timeout: float) -> dict[str, dict]:
    """Latest final payload per window id from the target topic."""
    deadline = time.monotonic() + timeout
    finals: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for message in kafka.consume_all(settings, settings.target_topic, None, timeout=1.0):
            payload = json.loads(message.value())
            assert message.key().decode() == payload["window_id"]
            if payload["is_final"]:
                finals[payload["window_id"]] = payload
        if len(finals) >= expected:
            break
    return finals


def body(payload: dict) -> dict:
    return ModelEventMetricsRecorded.model_validate(payload).model_dump(
        mode="json", include=COMPARED
    )


@pytest.mark.parametrize("window_actors", [1, 3])
def test_final_metrics_of_every_window_equal_the_aggregator_on_the_same_events(
    ray_session: None, kafka_settings: KafkaSettings, window_actors: int
) -> None:
    events = fleet(300, seed=window_actors)
    settings = settings_for(kafka_settings, window_actors=window_actors)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        expected = expected_all(events, settings.pipeline.windows)
        finals = read_finals(kafka_settings, len(expected), timeout=60)
    finally:
        pipeline.stop()
    assert_exact(finals, expected)
    assert len({p["correlation_id"] for p in finals.values()}) == len(finals)


def test_every_event_of_a_workflow_reaches_the_same_window_actor() -> None:
    events = fleet(200, seed=7)
    by_workflow: dict[str, set[int]] = {}
    for event in events:
        parsed = decode_one(json.dumps(event))
        by_workflow.setdefault(event["workflow_id"], set()).add(owner(parsed.workflow_id, 4))
    assert all(len(owners) == 1 for owners in by_workflow.values())
    assert len({next(iter(o)) for o in by_workflow.values()}) == 4  # and all actors get work


def test_window_actors_receive_events_partitioned_by_workflow(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(120, seed=11)
    settings = settings_for(kafka_settings, window_actors=3)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            applied = [w.events_applied for w in pipeline.stats().windows]
            if sum(applied) == len(events):
                break
            time.sleep(0.3)
        windows = pipeline.windows
        per_actor = ray.get([w.stats.remote() for w in windows])
    finally:
        pipeline.stop()
    expected = [0, 0, 0]
    for event in events:
        expected[owner(decode_one(json.dumps(event)).workflow_id, 3)] += 1
    assert [s.events_applied for s in per_actor] == expected


def test_every_long_lived_actor_settles_its_garbage_collector_as_configured(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    settings = settings_for(kafka_settings, gc_young_threshold=12_345)
    pipeline = Pipeline(settings).start()
    try:
        stats = pipeline.stats()
    finally:
        pipeline.stop()
    actors = [*stats.ingest, *stats.windows, stats.coordinator]
    assert len(actors) == 5  # two ingest actors by default, two window actors, the coordinator
    for actor in actors:
        assert actor.gc["thresholds"][0] == 12_345
        assert actor.gc["frozen"] > 10_000  # Ray's and pydantic's start-up heap


def hourly_totals(settings: KafkaSettings) -> int:
    """Events in the latest revision of each hourly window on the target topic, summed."""
    latest: dict[str, tuple[int, int]] = {}
    for message in kafka.consume_all(settings, settings.target_topic, None, timeout=1.0):
        payload = json.loads(message.value())
        if payload["aggregation_type"] == "hourly":
            revision = (payload["revision"], payload["events_processed"])
            latest[payload["window_id"]] = max(latest.get(payload["window_id"], revision), revision)
    return sum(events for _, events in latest.values())


def test_a_backlog_read_to_its_end_is_published_without_waiting_for_the_tick(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(300, seed=7)
    produce_events(kafka_settings, events)
    # A tick far longer than the test: only the ingest actor's catch-up can publish in time.
    settings = settings_for(kafka_settings, tick_seconds=600, batch_size=100)
    pipeline = Pipeline(settings).start()
    try:
        deadline = time.monotonic() + 120
        while hourly_totals(kafka_settings) < len(events) and time.monotonic() < deadline:
            time.sleep(0.5)
        published = hourly_totals(kafka_settings)
        coordinator = pipeline.stats().coordinator
    finally:
        pipeline.stop()
    assert published == len(events)
    assert coordinator is not None and coordinator.ticks == coordinator.early_ticks >= 1

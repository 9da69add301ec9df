"""The intent pattern: coordinator -> intent topic -> intent executor -> target topic."""

from __future__ import annotations

import json
import time
import uuid

import ray

from actors import kafka
from actors.intents import IntentExecutorActor
from models import ModelEventPublishIntent
from models.intents import ModelRetryPolicy
from models.settings import KafkaSettings


def _intent(target_topic: str, key: str, policy: ModelRetryPolicy | None = None) -> bytes:
    intent = ModelEventPublishIntent(
        correlation_id=uuid.uuid4(),
        created_by="test",
        target_topic=target_topic,
        target_key=key,
        target_event_type="CODEGEN_METRICS_RECORDED",
        target_event_payload={"window_id": key, "n": 1},
        retry_policy=policy or ModelRetryPolicy(),
    )
    return intent.model_dump_json().encode()


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_executor_republishes_each_intent_payload_to_its_target_with_its_key(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    kafka.ensure_topics(kafka_settings, [kafka_settings.intent_topic, kafka_settings.target_topic])
    executor = IntentExecutorActor.remote(kafka_settings)
    ray.get(executor.start.remote())
    try:
        producer = kafka.make_producer(kafka_settings)
        keys = [f"hourly:2026-10-01T0{i}:00:00Z" for i in range(5)]
        kafka.produce_batch(
            producer,
            kafka_settings.intent_topic,
            [(k.encode(), _intent(kafka_settings.target_topic, k)) for k in keys],
        )
        published = kafka.consume_all(kafka_settings, kafka_settings.target_topic, 5, timeout=30)
        stats = ray.get(executor.stop.remote(5))
    finally:
        ray.kill(executor)
    assert sorted(m.key().decode() for m in published) == keys
    assert all(json.loads(m.value())["window_id"] == m.key().decode() for m in published)
    assert stats.published == 5 and stats.dead_lettered == 0


def test_a_failing_target_write_is_retried_with_backoff_then_dead_lettered_with_the_reason(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    kafka.ensure_topics(
        kafka_settings, [kafka_settings.intent_topic, kafka_settings.dead_letter_topic]
    )
    # A tiny message.max.bytes makes every target write fail in the client, deterministically.
    executor = IntentExecutorActor.remote(kafka_settings, {"message.max.bytes": 1000})
    ray.get(executor.start.remote())
    try:
        policy = ModelRetryPolicy(max_attempts=3, initial_backoff_ms=200, backoff_multiplier=2.0)
        big = _intent(kafka_settings.target_topic, "w", policy)
        payload = json.loads(big)
        payload["target_event_payload"]["padding"] = "x" * 2000
        began = time.monotonic()
        kafka.produce_batch(
            kafka.make_producer(kafka_settings),
            kafka_settings.intent_topic,
            [(b"w", json.dumps(payload).encode())],
        )
        letters = kafka.consume_all(kafka_settings, kafka_settings.dead_letter_topic, 1, timeout=30)
        elapsed = time.monotonic() - began
        stats = ray.get(executor.stop.remote(1))
    finally:
        ray.kill(executor)
    assert len(letters) == 1
    headers = dict(letters[0].headers())
    assert b"after 3 attempts" in headers["reason"]
    assert stats.publish_failures == 3 and stats.dead_lettered == 1
    assert stats.published == 0
    assert elapsed >= 0.2 + 0.4  # both backoffs were waited
    assert json.loads(letters[0].value())["target_key"] == "w"


def test_an_unreadable_intent_is_dead_lettered_not_fatal(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    kafka.ensure_topics(kafka_settings, [kafka_settings.intent_topic, kafka_settings.target_topic])
    executor = IntentExecutorActor.remote(kafka_settings)
    ray.get(executor.start.remote())
    try:
        kafka.produce_batch(
            kafka.make_producer(kafka_settings),
            kafka_settings.intent_topic,
            [(b"a", b"not an intent"), (b"b", _intent(kafka_settings.target_topic, "b"))],
        )
        published = kafka.consume_all(kafka_settings, kafka_settings.target_topic, 1, timeout=30)
        letters = kafka.consume_all(kafka_settings, kafka_settings.dead_letter_topic, 1, timeout=30)
        stats = ray.get(executor.stop.remote(2))
    finally:
        ray.kill(executor)
    assert [m.key() for m in published] == [b"b"]
    assert b"invalid intent" in dict(letters[0].headers())["reason"]
    assert stats.invalid_intents == 1 and stats.error is None


def test_a_fresh_coordinator_rebuilds_history_of_closed_windows_from_the_metrics_topic(
    ray_session: None, kafka_settings: KafkaSettings, tmp_path
) -> None:
    from actors.coordinator import CoordinatorActor
    from models.settings import PipelineSettings, ReducerSettings

    kafka.ensure_topics(kafka_settings, [kafka_settings.target_topic])
    finals = [
        {
            "window_id": f"hourly:2026-10-01T0{h}:00:00Z",
            "window_start": f"2026-10-01T0{h}:00:00Z",
            "aggregation_type": "hourly",
            "is_final": True,
            "revision": 3,
        }
        for h in range(4)
    ]
    open_update = {**finals[0], "window_id": "hourly:2026-10-01T05:00:00Z", "is_final": False}
    # Thousands of updates of open windows, a stale revision, and junk, all before the newest
    # final: history comes from the whole topic, read to its end.
    updates = [{**open_update, "revision": r} for r in range(20_000)]
    stale = {**finals[3], "revision": 2, "total_generations": -1}
    messages = [
        *[(p["window_id"].encode(), json.dumps(p).encode()) for p in [*finals[:3], stale]],
        *[(p["window_id"].encode(), json.dumps(p).encode()) for p in updates],
        (b"junk", b"not json"),
        (finals[3]["window_id"].encode(), json.dumps(finals[3]).encode()),
    ]
    kafka.produce_batch(kafka.make_producer(kafka_settings), kafka_settings.target_topic, messages)
    coordinator = CoordinatorActor.remote(
        kafka_settings,
        PipelineSettings(tick_seconds=60, history_size=2),
        ReducerSettings(),
        [],
        [],
        str(tmp_path),
    )
    try:
        ray.get(coordinator.start.remote())
        recent = ray.get(coordinator.recent.remote("hourly", 10))
    finally:
        ray.kill(coordinator)
    # Newest first, each at its latest revision, as many as history_size keeps.
    assert recent == finals[::-1][:2]

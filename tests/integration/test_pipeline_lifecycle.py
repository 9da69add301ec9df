"""Pipeline lifecycle: intents, shared consumer group, clean shutdown, restart."""

from __future__ import annotations

import json
import time

import confluent_kafka
import ray

from actors import kafka
from actors.fleet import produce_events
from actors.pipeline import Pipeline
from models.settings import KafkaSettings
from reducer.nodes.supervisor import unowned_partitions
from tests.integration.test_pipeline import (
    assert_exact,
    body,
    expected_all,
    fleet,
    read_finals,
    settings_for,
)

NEVER_CLOSES = 3600 * 24 * 3650  # lateness so large no window is final during the test


def _wait(predicate, timeout: float = 60.0, step: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _applied(pipeline: Pipeline) -> int:
    return sum(w.events_applied for w in pipeline.stats().windows)


def _latest(settings: KafkaSettings, topic: str) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for message in kafka.consume_all(settings, topic, None, timeout=2.0):
        payload = json.loads(message.value())
        key = message.key().decode()
        if key not in latest or payload["revision"] > latest[key]["revision"]:
            latest[key] = payload
    return latest


def _committed(settings: KafkaSettings) -> int:
    """Sum of the group's committed offsets over the input topics."""
    consumer = kafka.make_consumer(settings)
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            confluent_kafka.TopicPartition(topic, p)
            for topic in settings.input_topics
            for p in metadata.topics[topic].partitions
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def test_each_intent_reaches_the_intent_topic_and_is_republished_to_the_target(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(60, seed=5)
    pipeline = Pipeline(settings_for(kafka_settings)).start()
    try:
        produce_events(kafka_settings, events)
        assert _wait(lambda: _applied(pipeline) == len(events))
        final = pipeline.stop()
    finally:
        pipeline.stop()
    sent = final.coordinator.intents_published
    intents = kafka.consume_all(kafka_settings, kafka_settings.intent_topic, sent, timeout=20)
    targets = kafka.consume_all(kafka_settings, kafka_settings.target_topic, sent, timeout=20)
    assert sent > 0 and len(intents) == sent and len(targets) == sent
    assert final.intent_executor.published == sent
    payloads = [json.loads(m.value()) for m in intents]
    assert {p["target_key"] for p in payloads} == {m.key().decode() for m in targets}
    assert all(p["target_topic"] == kafka_settings.target_topic for p in payloads)


def test_two_ingest_actors_share_the_partitions_and_stopping_one_mid_stream_loses_nothing(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(240, seed=9)
    half = len(events) // 2
    # Idle timeout above the hand-over gap (leave + rebalance, ~5 s): otherwise the quiet
    # partitions would let the watermark jump to wall-clock time and close these old windows.
    settings = settings_for(kafka_settings, ingest_actors=2, idle_partition_timeout_seconds=12)
    pipeline = Pipeline(settings).start()
    try:
        assert _wait(lambda: all(i.assigned for i in pipeline.stats().ingest), 40)
        owned = [set(i.assigned) for i in pipeline.stats().ingest]
        assert not owned[0] & owned[1]
        # Each actor reports librdkafka's view of its membership (reported every 5 s).
        assert _wait(
            lambda: all(i.group.get("join_state") == "steady" for i in pipeline.stats().ingest),
            20,
        )
        groups = [i.group for i in pipeline.stats().ingest]
        assert [g["assignment_size"] for g in groups] == [len(o) for o in owned]
        produce_events(kafka_settings, events[:half])
        assert _wait(lambda: _applied(pipeline) == half)
        pipeline.stop_ingest(1)
        produce_events(kafka_settings, events[half:])
        expected = expected_all(events, settings.pipeline.windows)
        finals = read_finals(kafka_settings, len(expected), timeout=90)
    finally:
        pipeline.stop()
    assert_exact(finals, expected)


def test_clean_shutdown_publishes_latest_results_commits_and_a_restart_rereads_nothing(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(80, seed=13)
    settings = settings_for(kafka_settings, allowed_lateness_seconds=NEVER_CLOSES, tick_seconds=30)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        assert _wait(lambda: _applied(pipeline) == len(events))
        final = pipeline.stop()  # the 30 s tick never fired: only the shutdown publish did
    finally:
        pipeline.stop()
    assert final.coordinator.ticks == 1
    latest = _latest(kafka_settings, kafka_settings.target_topic)
    expected = expected_all(events, settings.pipeline.windows)
    assert set(latest) == set(expected)
    for key, payload in latest.items():
        assert not payload["is_final"]
        assert body(payload) == expected[key], key
    assert _committed(kafka_settings) == len(events)

    again = Pipeline(settings).start()
    try:
        assert _wait(lambda: all(i.assigned for i in again.stats().ingest), 40), [
            (i.assigned, i.group, i.error, i.rebalances) for i in again.stats().ingest
        ]
        time.sleep(3)
        stats = again.stats()
    finally:
        again.stop()
    assert sum(i.messages_in for i in stats.ingest) == 0
    assert ray.is_initialized()


def test_restarts_of_two_ingest_actors_each_own_every_partition_within_two_joins(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    """Two members leaving together can leave Tansu's group waiting for a leader that left
    (reducer/nodes/resume.py); a restart rebuilds the group from the checkpoint first. Three
    restarts: without the rebuild, about a third of restarts stay unassigned."""
    events = fleet(20, seed=5)
    settings = settings_for(kafka_settings, ingest_actors=2, tick_seconds=30)
    produce_events(kafka_settings, events)
    for round_ in range(4):
        pipeline = Pipeline(settings).start()
        try:
            owned = _wait(
                lambda p=pipeline: (
                    all(i.assigned for i in p.stats().ingest)
                    and not unowned_partitions(p.stats().ingest)
                ),
                15,
            )
            groups = [i.group for i in pipeline.stats().ingest]
            if round_ == 0:
                assert _wait(lambda p=pipeline: _applied(p) == len(events))
        finally:
            pipeline.stop()
        assert owned, (round_, groups)


def test_an_ingest_actor_that_leaves_for_a_rebuild_hands_every_partition_on_at_once(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    """Before a rebuild kills them, ingest actors leave the group: the actor below is still
    alive (its consumer would keep heartbeating and holding its share), yet a new member of the
    group gets every partition."""
    settings = settings_for(kafka_settings, ingest_actors=1)
    pipeline = Pipeline(settings).start()
    newcomer = None
    try:
        assert _wait(lambda: pipeline.stats().ingest[0].assigned, 40)
        assert ray.get(pipeline.ingests[0].leave.remote()) is True
        left = pipeline.stats().ingest[0]
        assert left.running is False and left.error is None
        newcomer = kafka.make_consumer(kafka_settings)
        newcomer.subscribe(kafka_settings.input_topics)
        every = set(kafka.topic_partitions(newcomer, kafka_settings.input_topics))

        def owns_all() -> bool:
            newcomer.poll(0.2)
            return {(tp.topic, tp.partition) for tp in newcomer.assignment()} == every

        assert _wait(owns_all, 40, step=0), [tp.partition for tp in newcomer.assignment()]
    finally:
        if newcomer is not None:
            newcomer.close()
        pipeline.stop()


def test_a_consumer_group_stuck_on_a_silent_leader_is_reset_and_nothing_is_lost(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    """The group's leader stays a member but never completes a rebalance (here a consumer that
    joined first and stopped polling; in the multi-node test, an ingest actor lost with its
    node). On Tansu every later member then waits to sync forever, even when replaced: a
    restore alone does not help. The supervisor sees partitions without an owner for
    ``assignment_stall_seconds`` and rebuilds from the checkpoint with the group deleted;
    every event still counts exactly once."""
    events = fleet(240, seed=13)
    settings = settings_for(kafka_settings, ingest_actors=2, assignment_stall_seconds=4)
    kafka.ensure_topics(kafka_settings, kafka_settings.input_topics)
    leader = kafka.make_consumer(kafka_settings)
    leader.subscribe(kafka_settings.input_topics)

    def leads() -> bool:
        leader.poll(0.2)
        return bool(leader.assignment())

    assert _wait(leads, 40, step=0)  # then it stops polling: librdkafka still heartbeats
    pipeline = Pipeline(settings).start()
    actions: list[str] = []

    def supervised() -> bool:  # the supervisor runs all along, as in `codegen-metrics run`
        if action := pipeline.supervise():
            actions.append(action)
        return not unowned_partitions(pipeline.stats().ingest)

    try:
        produce_events(kafka_settings, events)
        assert _wait(supervised, 90), (
            actions,
            [(i.assigned, i.group) for i in pipeline.stats().ingest],
        )
        assert len(actions) == 1 and "owned by no ingest actor" in actions[0], actions
        assert "consumer group deleted" in actions[0], actions
        expected = expected_all(events, settings.pipeline.windows)
        finals = read_finals(kafka_settings, len(expected), timeout=90)
    finally:
        kafka.leave_and_close(leader)  # its group was deleted under it: close() alone can hang
        pipeline.stop()
    assert_exact(finals, expected)

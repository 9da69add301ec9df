"""A start resumes only from a checkpoint that matches the broker and the group (real broker).

Each case is refused with an error naming the checkpoint location, the group, the broker and the
ways forward; ``reset_state`` starts over from the earliest retained offsets, and the final
metrics then cover every event exactly once.
"""

from __future__ import annotations

import tempfile

import pytest

from actors import kafka
from actors.checkpoint import CheckpointStore
from actors.fleet import produce_events
from actors.pipeline import Pipeline
from models.settings import KafkaSettings, Settings
from reducer.nodes.checkpoint import Checkpoint, Source
from reducer.nodes.resume import ResumeRefused
from tests.integration.test_faults import FAST, applied, drive, latest_finals
from tests.integration.test_pipeline import assert_exact, expected_all, fleet, settings_for


def refused(settings: Settings) -> str:
    with pytest.raises(ResumeRefused) as caught:
        Pipeline(settings).start()
    message = str(caught.value)
    k = settings.kafka
    assert f"consumer group {k.group_id!r} on {k.bootstrap_servers}" in message
    assert settings.checkpoint_location in message
    assert "--reset-state" in message
    return message


def with_checkpoint(kafka_settings: KafkaSettings, **fields: object) -> Settings:
    """Settings whose checkpoint location holds one crafted (empty-state) checkpoint."""
    settings = settings_for(kafka_settings)
    kafka.ensure_topics(kafka_settings, kafka_settings.input_topics)
    produce_events(kafka_settings, fleet(5, seed=1))
    defaults = {"sequence": 1, "epoch": 0, "offsets": {}, "windows": []}
    CheckpointStore(settings.checkpoint_location).write(Checkpoint(**{**defaults, **fields}))
    return settings


def test_commits_without_a_checkpoint_are_refused_and_reset_state_counts_everything_once(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(60, seed=31)
    settings = settings_for(kafka_settings, **FAST)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events[:150])
        drive(pipeline, lambda: applied(pipeline) >= 150)
    finally:
        pipeline.stop()  # the final checkpoint commits the group's offsets
    produce_events(kafka_settings, events[150:])
    elsewhere = settings.model_copy(
        update={
            "pipeline": settings.pipeline.model_copy(
                update={"storage_path": tempfile.mkdtemp(prefix="ckpt-lost")}
            )
        }
    )

    message = refused(elsewhere)
    assert "has committed offsets on" in message and "no checkpoint was found" in message

    reset = elsewhere.model_copy(
        update={"pipeline": elsewhere.pipeline.model_copy(update={"reset_state": True})}
    )
    pipeline = Pipeline(reset).start()
    try:
        drive(pipeline, lambda: applied(pipeline) >= len(events), timeout=120)
        expected = expected_all(events, reset.pipeline.windows)
        drive(pipeline, lambda: pipeline.stats().coordinator.finals_published > 0)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
    finally:
        pipeline.stop()
    assert_exact(finals, expected)


def test_a_checkpoint_from_another_kafka_cluster_is_refused(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    source = Source("some-other-cluster", kafka_settings.group_id, {})
    message = refused(with_checkpoint(kafka_settings, source=source))
    assert "comes from Kafka cluster 'some-other-cluster'" in message


def test_a_checkpointed_offset_beyond_the_partitions_end_is_refused(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    topic = kafka_settings.input_topics[0]
    message = refused(with_checkpoint(kafka_settings, offsets={(topic, 0): 1_000_000}))
    assert f"offset 1000000 of {topic}[0] is beyond the partition's end" in message


def test_a_missing_topic_or_a_changed_partition_count_is_refused(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    gone = f"{kafka_settings.topic_prefix}.codegen.gone.v1"
    message = refused(with_checkpoint(kafka_settings, offsets={(gone, 0): 3}))
    assert f"checkpointed topic {gone} does not exist" in message

    topic = kafka_settings.input_topics[1]
    source = Source(None, kafka_settings.group_id, {topic: 2})
    message = refused(with_checkpoint(kafka_settings, source=source))
    assert f"topic {topic} had 2 partition(s) at the checkpoint and has 4 now" in message

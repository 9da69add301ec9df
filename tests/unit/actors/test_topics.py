"""The topics the pipeline creates, and with which configs (no broker: Tansu accepts topic
configs but cannot describe them)."""

from __future__ import annotations

from actors.kafka import topic_configs
from models.settings import KafkaSettings


def test_the_target_topic_is_created_compacted_and_the_others_with_broker_defaults() -> None:
    settings = KafkaSettings(topic_prefix="p")
    configs = topic_configs(settings)
    assert configs.pop("p.codegen.metrics_recorded.v1") == {"cleanup.policy": "compact"}
    assert set(configs) == {
        *settings.input_topics,
        settings.intent_topic,
        settings.dead_letter_topic,
        settings.late_topic,
    }
    assert all(config == {} for config in configs.values())

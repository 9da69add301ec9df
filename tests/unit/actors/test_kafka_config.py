"""The librdkafka configuration of the ingest actors' consumers."""

from __future__ import annotations

from actors.kafka import consumer_config
from models.settings import KafkaSettings


def test_a_consumer_joins_with_a_six_second_session_and_one_second_heartbeats_by_default() -> None:
    config = consumer_config(KafkaSettings(group_id="g"))

    assert (config["session.timeout.ms"], config["heartbeat.interval.ms"]) == (6000, 1000)
    assert (config["group.id"], config["enable.auto.commit"]) == ("g", False)


def test_a_shorter_session_keeps_three_heartbeats_within_it() -> None:
    short = consumer_config(KafkaSettings(session_timeout_ms=1500))
    longer = consumer_config(KafkaSettings(session_timeout_ms=45000))

    assert (short["session.timeout.ms"], short["heartbeat.interval.ms"]) == (1500, 500)
    assert (longer["session.timeout.ms"], longer["heartbeat.interval.ms"]) == (45000, 1000)


def test_librdkafka_properties_set_by_the_operator_win_over_the_setting() -> None:
    config = consumer_config(
        KafkaSettings(
            session_timeout_ms=3000,
            extra_config={"session.timeout.ms": "10000", "heartbeat.interval.ms": "2000"},
        )
    )

    assert (config["session.timeout.ms"], config["heartbeat.interval.ms"]) == ("10000", "2000")

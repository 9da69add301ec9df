"""Messages at and past the size limits, with the default limits: a message too large to
dead-letter whole is set aside cut to fit, and the pipeline goes on (real broker, real Ray).
Dead-lettering it whole failed with MSG_SIZE_TOO_LARGE, stopped the ingest actor, and every
rebuild replayed it into the same failure."""

from __future__ import annotations

import json

from actors import kafka
from actors.fleet import produce_events
from actors.pipeline import Pipeline
from models.dead_letter import DeadLetter
from models.settings import KafkaSettings
from tests.integration.conftest import CRASH_MARKER
from tests.integration.test_faults import applied, drive, latest_finals
from tests.integration.test_pipeline import assert_exact, expected_all, fleet, settings_for


def test_messages_too_large_to_dead_letter_whole_are_set_aside_and_the_pipeline_goes_on(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(60, seed=41)
    big = kafka_settings.model_copy(update={"extra_config": {"message.max.bytes": "5000000"}})
    producer = kafka.make_producer(big)
    topic = kafka_settings.input_topics[0]
    kafka.ensure_topics(kafka_settings, kafka_settings.input_topics)
    poison = [
        (None, b"{" + b" " * 2_500_000 + b"}"),  # oversized: 2.5 MB
        # Under max_message_bytes, so a window actor reads and refuses it; whole, it would not
        # fit the dead-letter topic beside its headers.
        (None, json.dumps({"event_type": "NOPE", "pad": "y" * 999_900}).encode()),
    ]
    kafka.produce_batch(producer, topic, poison)
    settings = settings_for(kafka_settings)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        drive(pipeline, lambda: applied(pipeline) >= len(events), timeout=120)
        expected = expected_all(events, settings.pipeline.windows)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
        stats = pipeline.stats()
        letters = kafka.consume_all(kafka_settings, kafka_settings.dead_letter_topic, 2, 30)
    finally:
        pipeline.stop()
    assert all(i.error is None for i in stats.ingest), [i.error for i in stats.ingest]
    assert_exact(finals, expected)
    read = sorted(
        ((DeadLetter.from_headers(m.headers()), len(m.value())) for m in letters),
        key=lambda pair: pair[0].category,
    )
    assert [(r.category, r.original_bytes) for r, _ in read] == [
        ("oversized", 2_500_002),
        ("unknown_event_type", len(poison[1][1])),
    ]
    assert all(900_000 < size < 1_000_000 for _, size in read)
    assert sum(i.set_aside_failures for i in stats.ingest) == 0


def test_a_message_that_kills_its_window_actor_is_quarantined_after_three_deaths(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    """A message that ends the window actor's process (as a native crash would) is replayed by
    every rebuild; the third death with it in flight quarantines it: dead-lettered as
    processing_error, every valid event around it applied exactly once."""
    events = fleet(40, seed=42)
    poison = {**events[5], "event_id": "00000000-0000-4000-8000-000000000001", "n": CRASH_MARKER}
    settings = settings_for(kafka_settings, batch_size=50)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events[:20])
        drive(pipeline, lambda: applied(pipeline) >= 20, timeout=60)
        produce_events(kafka_settings, [poison, *events[20:]])
        actions = drive(pipeline, lambda: applied(pipeline) >= len(events), timeout=300)
        expected = expected_all(events, settings.pipeline.windows)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
        letters = kafka.consume_all(kafka_settings, kafka_settings.dead_letter_topic, 1, 30)
    finally:
        pipeline.stop()
    assert len([a for a in actions if "restored" in a]) == 3, actions
    assert_exact(finals, expected)
    (letter,) = letters
    read = DeadLetter.from_headers(letter.headers())
    assert read.category == "processing_error" and "died 3 times" in read.reason
    assert CRASH_MARKER.encode() in letter.value()

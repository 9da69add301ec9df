"""Hostile input, duplicates, late and future events against the real pipeline."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from actors import kafka
from actors.fleet import produce_events
from actors.pipeline import Pipeline
from cli.simulator import simulate_fleet
from models import EnumMetricsWindow
from models.settings import KafkaSettings
from reducer import window_bounds, window_id
from tests.hostile import CATEGORY, hostile_stream
from tests.integration.test_faults import applied, drive, latest_finals
from tests.integration.test_pipeline import assert_exact, body, expected_all, fleet, settings_for
from tests.unit.reducer.test_budget import BREAKDOWN_FIELDS

MAX_BYTES = 4096


def test_a_flood_of_hostile_messages_is_dead_lettered_and_every_valid_event_counted_exactly(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    valid = fleet(300, seed=31)
    hostile = list(hostile_stream(valid, 100_000, seed=31, max_bytes=MAX_BYTES))
    rng = random.Random(31)
    duplicates = rng.sample(valid, 200)  # producer retries: same event_id, counted once
    settings = settings_for(
        kafka_settings, max_message_bytes=MAX_BYTES, batch_size=1000, window_actors=2
    )
    pipeline = Pipeline(settings).start()
    try:
        producer = kafka.make_producer(kafka_settings)
        topic = kafka_settings.input_topics[0]
        kafka.produce_batch(producer, topic, [(None, m) for _, m in hostile[:50_000]])
        produce_events(kafka_settings, valid + duplicates)
        kafka.produce_batch(producer, topic, [(None, m) for _, m in hostile[50_000:]])
        total = len(valid) + len(duplicates) + len(hostile)

        def consumed() -> bool:
            stats = pipeline.stats()
            ingest = stats.ingest
            return (
                sum(i.messages_in for i in ingest) >= total
                and applied(pipeline) >= len(valid)
                # rejects are counted when the window actors' verdicts come back
                and sum(i.events_rejected for i in ingest) >= len(hostile)
            )

        actions = drive(pipeline, consumed, timeout=240)
        stats = pipeline.stats()
        expected = expected_all(valid, settings.pipeline.windows)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
        letters = kafka.consume_all(
            kafka_settings, kafka_settings.dead_letter_topic, len(hostile), timeout=60
        )
    finally:
        pipeline.stop()
    assert actions == []  # no actor died
    assert all(i.error is None for i in stats.ingest)
    rejected = sum(i.events_rejected for i in stats.ingest)
    assert rejected == len(hostile)
    assert len(letters) == len(hostile)
    categories = Counter(dict(m.headers())["category"].decode() for m in letters)
    assert {"invalid_json", "not_an_object", "unknown_event_type", "missing_field"} <= set(
        categories
    )
    assert {"oversized", "invalid_utf8", "future_timestamp", "non_finite_number"} <= set(
        categories
    ), categories
    # The values buggy producers really emitted, one category each (random bytes aside).
    made = Counter(CATEGORY.get(kind, kind) for kind, _ in hostile)
    for category in ("out_of_range", "unknown_event_type", "invalid_field", "missing_field"):
        assert categories[category] == made[category], (category, categories)
    for message in letters[:200]:
        headers = dict(message.headers())
        assert headers["reason"] and headers["source_topic"].decode() == topic
        assert int(headers["source_offset"]) >= 0
    assert sum(w.duplicates_dropped for w in stats.windows) == len(duplicates)
    assert_exact(finals, expected)


def test_late_events_go_to_the_late_topic_with_the_reason_and_leave_finals_untouched(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    events = fleet(120, seed=32)
    settings = settings_for(kafka_settings)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        expected = expected_all(events, settings.pipeline.windows)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
        # The same windows, long closed, receive new (not duplicate) events.
        stragglers = list(simulate_fleet(5, 99, start=datetime(2026, 9, 30, 23, 0, tzinfo=UTC)))
        produce_events(kafka_settings, stragglers)
        late = kafka.consume_all(
            kafka_settings, kafka_settings.late_topic, len(stragglers), timeout=60
        )
        time.sleep(2)
        stats = pipeline.stats()
        after = latest_finals(kafka_settings, len(expected), timeout=5)
    finally:
        pipeline.stop()
    assert len(late) == len(stragglers)
    assert all(b"already closed" in dict(m.headers())["reason"] for m in late)
    assert sum(i.events_late for i in stats.ingest) == len(stragglers)
    assert sum(w.late_events for w in stats.windows) == len(stragglers)
    per_window: dict[str, int] = {}
    for window_stats in stats.windows:
        for key, n in window_stats.late_by_window.items():
            per_window[key] = per_window.get(key, 0) + n
    expected_late: dict[str, int] = {}
    for event in stragglers:
        key = window_id(
            EnumMetricsWindow.HOURLY,
            window_bounds(datetime.fromisoformat(event["timestamp"]), EnumMetricsWindow.HOURLY)[0],
        )
        expected_late[key] = expected_late.get(key, 0) + 1
    assert per_window == expected_late
    assert {k: body(v) for k, v in after.items()} == {k: body(v) for k, v in finals.items()}
    for key, payload in finals.items():
        assert body(payload) == expected[key], key


def test_events_from_the_far_future_are_dead_lettered_not_opening_windows(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    future = datetime.now(UTC) + timedelta(hours=2)
    events = list(simulate_fleet(3, 7, start=future))
    pipeline = Pipeline(settings_for(kafka_settings)).start()
    try:
        produce_events(kafka_settings, events)
        letters = kafka.consume_all(
            kafka_settings, kafka_settings.dead_letter_topic, len(events), timeout=60
        )
        stats = pipeline.stats()
    finally:
        pipeline.stop()
    assert len(letters) == len(events)
    assert {dict(m.headers())["category"] for m in letters} == {b"future_timestamp"}
    assert sum(w.open_panes for w in stats.windows) == 0
    assert {json.loads(m.value())["event_id"] for m in letters} == {e["event_id"] for e in events}


def test_an_hour_of_a_thousand_long_names_publishes_trimmed_events_with_exact_totals(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    """1,000 distinct 256-character model, node-type, stage and error-code names in one hour
    (3,000 events, about 2 MB of breakdowns): the events are trimmed under the producer's 1 MB
    limit, keep publishing, and every number outside the breakdowns is exact."""
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)
    valid = fleet(40, seed=33)
    flood = []
    for i, event in enumerate(simulate_fleet(1000, 34, start=start, workflows_per_second=0.4)):
        name = f"{i:05d}-".ljust(256, "x")
        for field in ("primary_model", "node_type", "stage_name", "failed_stage", "error_code"):
            if field in event:
                event[field] = f"{field[:2]}{name}"[:256]
        flood.append(event)
        if len(flood) == 3000:
            break
    events = valid + flood
    settings = settings_for(kafka_settings, batch_size=1000)
    pipeline = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events)
        drive(pipeline, lambda: applied(pipeline) == len(events), timeout=240)
        expected = expected_all(events, settings.pipeline.windows)
        finals = latest_finals(kafka_settings, len(expected), timeout=120)
        stats = pipeline.stats()
    finally:
        pipeline.stop()
    assert set(finals) == set(expected)
    truncated = [k for k, v in finals.items() if v["breakdowns_truncated"]]
    assert truncated, "the flooded windows were not trimmed"
    assert stats.coordinator.windows_set_aside == 0
    for key, payload in finals.items():
        assert len(json.dumps(payload).encode()) <= 1_000_000
        trimmed = {*BREAKDOWN_FIELDS, "breakdowns_truncated"}
        got = {k: v for k, v in body(payload).items() if k not in trimmed}
        want = {k: v for k, v in expected[key].items() if k not in trimmed}
        assert got == want, key
        if key not in truncated:
            assert body(payload) == expected[key], key

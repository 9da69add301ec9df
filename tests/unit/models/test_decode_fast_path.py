"""The batch decoder agrees with an independent reference (one message at a time, json.loads,
the bounds restated) on every message: the same events (same classes, values, timestamp tzinfo
and fields set), and the same reject category and field."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.simulator import fleet_json_lines
from models import decode_batch
from models.bounds import EventBounds
from models.decode import _FAST_BATCH
from tests.datasets import DICT_FACTORIES, completed_dict, stage_dict, started_dict, to_json
from tests.hostile import HOSTILE_KINDS, hostile
from tests.unit.models import reference_decode
from tests.unit.models.test_decode import BAD_MESSAGES, raw_with, without


def assert_same_as_reference(messages: list) -> None:
    now = time.time()
    fast = decode_batch(messages, EventBounds(), now)
    events = dict(zip(fast.indices, fast.events, strict=True))
    rejects = {r.index: r for r in fast.rejects}
    assert sorted([*events, *rejects]) == list(range(len(messages)))  # each exactly once
    for index, message in enumerate(messages):
        expected = reference_decode.decode(message, now)
        if expected.event is None:
            assert index in rejects, (message, "decoded, but the reference rejects it", expected)
            reject = rejects[index]
            assert reject.category == expected.category, (message, reject)
            if expected.fields:
                assert reject.reason.split(":")[0] in expected.fields, (message, reject)
            continue
        assert index in events, (message, rejects.get(index))
        ours, theirs = events[index], expected.event
        assert type(ours) is type(theirs)
        assert ours.model_fields_set == theirs.model_fields_set
        # A missing event_id or timestamp is a fresh default (uuid4, now) on each side.
        fresh = {"event_id", "timestamp"} - ours.model_fields_set
        if fresh:
            assert ours.model_dump(exclude=fresh) == theirs.model_dump(exclude=fresh)
        else:
            assert ours == theirs
        assert type(ours.timestamp.tzinfo) is type(theirs.timestamp.tzinfo)
        if "timestamp" not in fresh:
            assert ours.timestamp.utcoffset() == theirs.timestamp.utcoffset()


TIMESTAMPS = [
    "2026-03-02T10:15:00",  # naive: UTC, through the reference path
    "2026-03-02T10:15:00.123456",
    "2026-03-02 10:15:00",
    "2026-03-02T10:15:00Z",
    "2026-03-02T10:15:00+00:00",
    "2026-03-02T12:15:00+02:00",
    "2026-03-02T10:15:00-05:30",
    "2026-03-02",
    "2026-03-02T25:00:00",
    "not a time",
    "",
    1_772_446_500,
    1_772_446_500.25,
    0,
    -1,
    None,
    True,
    [],
]


@pytest.mark.parametrize("timestamp", TIMESTAMPS, ids=repr)
@pytest.mark.parametrize("factory", list(DICT_FACTORIES.values()), ids=list(DICT_FACTORIES))
def test_every_timestamp_form_decodes_as_the_reference(factory, timestamp) -> None:
    good = to_json(stage_dict())
    assert_same_as_reference([good, to_json(factory(timestamp=timestamp)), good])


def test_a_message_without_a_timestamp_gets_a_default_one_in_both() -> None:
    message = to_json(without(started_dict(), "timestamp"))

    (event,) = decode_batch([message]).events
    reference = reference_decode.decode(message, time.time()).event

    assert event.timestamp.tzinfo is not None
    assert type(event.timestamp.tzinfo) is type(reference.timestamp.tzinfo)
    assert abs(event.timestamp - reference.timestamp) < timedelta(seconds=5)


@pytest.mark.parametrize(("message", "category"), BAD_MESSAGES)
def test_bad_messages_get_the_reference_reject(message: bytes, category: str) -> None:
    good_before, good_after = to_json(started_dict()), to_json(completed_dict())
    assert_same_as_reference([good_before, message, good_after])
    assert decode_batch([message]).rejects[0].category == category


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_messages_between_good_ones_decode_as_the_reference(kind: str) -> None:
    rng = random.Random(kind)
    valid = [json.loads(line) for line in fleet_json_lines(5, seed=2)]
    messages = []
    for event in valid:
        messages.append(json.dumps(event).encode())
        messages.append(hostile(kind, event, rng, max_bytes=2000))
    assert_same_as_reference(messages)


def test_a_simulated_fleet_decodes_as_the_reference_without_any_reject() -> None:
    messages = list(fleet_json_lines(60, seed=9))

    assert_same_as_reference(messages)
    assert not decode_batch(messages).rejects


def test_odd_inputs_decode_as_the_reference() -> None:
    event = completed_dict()
    messages = [
        json.dumps(event),  # str, not bytes
        bytearray(to_json(event)),
        to_json({**event, "event_type": "codegen_completed"}),  # another case
        to_json({**event, "event_type": "Codegen_Completed", "quality_score": 2}),
        to_json({**event, "unknown_field": [1, {"x": None}]}),  # ignored
        to_json({**event, "quality_score": "0.5", "total_tokens": "12"}),  # lax numbers
        to_json({**event, "total_tokens": 12.0}),
        to_json({**event, "total_tokens": 12.5}),
        to_json({**event, "workflow_id": event["workflow_id"].upper()}),
        to_json({**event, "workflow_id": event["workflow_id"].replace("-", "")}),
        to_json({**event, "workflow_id": "urn:uuid:" + event["workflow_id"]}),
        to_json({**event, "test_coverage": None, "complexity_score": None}),
        raw_with(event, "complexity_score", "-Infinity"),
        b'{"event_type": "CODEGEN_COMPLETED", "event_type": "CODEGEN_STARTED"}',
        b"   ",
        7,
        None,
        {"event_type": "CODEGEN_STARTED"},
    ]
    assert_same_as_reference(messages)


def test_event_objects_passed_as_messages_are_rejected_as_before() -> None:
    (event,) = decode_batch([to_json(started_dict())]).events
    assert_same_as_reference([event, to_json(started_dict())])


def test_the_fast_path_hands_refused_messages_back_as_they_are_and_decodes_the_rest() -> None:
    bad, naive, aware = b"{not json", stage_dict(timestamp="2026-03-02T10:15:00"), stage_dict()
    items = _FAST_BATCH.validate_python([bad, to_json(naive), to_json(aware)])

    assert items[0] is bad  # refused: handed back as is, for the reference path
    assert items[1].timestamp == items[2].timestamp == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A valid event with fields removed, replaced by arbitrary JSON values or retimed."""
    factory = draw(st.sampled_from(list(DICT_FACTORIES.values())))
    event = factory()
    for field in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        action = draw(st.sampled_from(["drop", "replace", "timestamp"]))
        if action == "drop":
            event.pop(field, None)
        elif action == "replace":
            event[field] = draw(json_values)
        else:
            offset = draw(st.integers(-14 * 60, 14 * 60))
            when = datetime(2026, 3, 2, 10, 15, tzinfo=timezone(timedelta(minutes=offset)))
            event["timestamp"] = draw(
                st.sampled_from([when.isoformat(), when.replace(tzinfo=None).isoformat()])
            )
    text = json.dumps(event, allow_nan=True)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_messages(), min_size=1, max_size=6))
def test_mutated_events_decode_as_the_reference(messages: list[bytes]) -> None:
    assert_same_as_reference(messages)

"""The batch decoder: good events out, every bad message back as (index, reason, category)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from models import (
    ModelEventCodegenCompleted,
    ModelEventCodegenStarted,
    decode_batch,
    decode_one,
)
from models.decode import MAX_REASON_LENGTH
from tests.datasets import DICT_FACTORIES, completed_dict, started_dict, to_json


def without(data: dict, field: str) -> dict:
    return {k: v for k, v in data.items() if k != field}


def raw_with(data: dict, field: str, literal: str) -> bytes:
    """JSON of ``data`` with ``field`` set to a raw JSON literal (NaN, Infinity, 1e999)."""
    marker = "__literal__"
    return json.dumps({**data, field: marker}).replace(f'"{marker}"', literal).encode()


BAD_MESSAGES = [
    pytest.param(b"{not json", "invalid_json", id="invalid-json"),
    pytest.param(b"", "invalid_json", id="empty-message"),
    pytest.param(b'{"event_type": "CODEGEN_STARTED"', "invalid_json", id="truncated-json"),
    pytest.param(b"\xff\xfe{}", "invalid_utf8", id="invalid-utf8"),
    pytest.param(
        json.dumps(completed_dict(service_name="caf\u00e9")).encode().replace(b"\\u00e9", b"\xe9"),
        "invalid_utf8",
        id="latin1-inside-a-valid-event",
    ),
    pytest.param(b"[1, 2]", "not_an_object", id="array"),
    pytest.param(b"42", "not_an_object", id="number"),
    pytest.param(b'"CODEGEN_STARTED"', "not_an_object", id="string"),
    pytest.param(b"null", "not_an_object", id="null"),
    pytest.param(to_json(started_dict(event_type="CODEGEN_EXPLODED")), "unknown_event_type"),
    pytest.param(to_json(started_dict(event_type=7)), "unknown_event_type", id="non-string-type"),
    pytest.param(to_json(without(started_dict(), "event_type")), "missing_event_type"),
    pytest.param(to_json(without(completed_dict(), "primary_model")), "missing_field"),
    pytest.param(to_json(completed_dict(quality_score=1.5)), "invalid_field", id="quality>1"),
    pytest.param(to_json(completed_dict(quality_score=-0.1)), "invalid_field", id="quality<0"),
    pytest.param(to_json(completed_dict(total_tokens=-5)), "invalid_field", id="tokens<0"),
    pytest.param(to_json(completed_dict(workflow_id="nope")), "invalid_field", id="bad-uuid"),
    pytest.param(raw_with(completed_dict(), "quality_score", "NaN"), "non_finite_number"),
    pytest.param(raw_with(completed_dict(), "total_cost_usd", "Infinity"), "non_finite_number"),
    pytest.param(
        raw_with(completed_dict(), "total_duration_seconds", "1e999"),
        "non_finite_number",
        id="overflowing-literal",
    ),
]


def test_a_batch_of_good_messages_decodes_in_order_with_their_indices() -> None:
    messages = [to_json(factory()) for factory in DICT_FACTORIES.values()]

    decoded = decode_batch(messages)

    assert [e.event_type for e in decoded.events] == list(DICT_FACTORIES)
    assert decoded.indices == [0, 1, 2, 3]
    assert decoded.rejects == []


def test_an_empty_batch_decodes_to_nothing() -> None:
    decoded = decode_batch([])

    assert (decoded.events, decoded.indices, decoded.rejects) == ([], [], [])


@pytest.mark.parametrize(("message", "category"), BAD_MESSAGES)
def test_a_bad_message_is_rejected_with_its_category_and_index(
    message: bytes, category: str
) -> None:
    good_before, good_after = to_json(started_dict()), to_json(completed_dict())

    decoded = decode_batch([good_before, message, good_after])

    assert [r.index for r in decoded.rejects] == [1]
    assert decoded.rejects[0].category == category
    assert decoded.rejects[0].reason
    assert len(decoded.rejects[0].reason) <= MAX_REASON_LENGTH
    assert decoded.indices == [0, 2]
    assert [e.event_type for e in decoded.events] == ["CODEGEN_STARTED", "CODEGEN_COMPLETED"]


def test_good_events_around_many_bad_ones_keep_their_own_indices() -> None:
    messages = [
        b"{oops",  # 0
        to_json(started_dict(prompt="first")),  # 1
        b"\xc3\x28",  # 2
        b"[]",  # 3
        to_json(completed_dict(service_name="second")),  # 4
        to_json(without(completed_dict(), "node_type")),  # 5
        to_json(started_dict(event_type="codegen_started", prompt="third")),  # 6
        raw_with(completed_dict(), "quality_score", "NaN"),  # 7
    ]

    decoded = decode_batch(messages)

    assert decoded.indices == [1, 4, 6]
    assert [r.index for r in decoded.rejects] == [0, 2, 3, 5, 7]
    assert [r.category for r in decoded.rejects] == [
        "invalid_json",
        "invalid_utf8",
        "not_an_object",
        "missing_field",
        "non_finite_number",
    ]
    assert decoded.events[0].prompt == "first"
    assert decoded.events[1].service_name == "second"
    assert decoded.events[2].prompt == "third"


def test_the_reason_names_the_failing_field_path() -> None:
    message = to_json(completed_dict(quality_score=2.0))

    (reject,) = decode_batch([message]).rejects

    assert reject.reason.startswith("quality_score:")


def test_the_reason_names_a_missing_field() -> None:
    (reject,) = decode_batch([to_json(without(completed_dict(), "contract_yaml"))]).rejects

    assert reject.reason.startswith("contract_yaml:")
    assert "required" in reject.reason.lower()


def test_an_unknown_event_type_reason_names_the_tag() -> None:
    (reject,) = decode_batch([to_json(started_dict(event_type="CODEGEN_EXPLODED"))]).rejects

    assert "CODEGEN_EXPLODED" in reject.reason


def test_a_huge_invalid_message_gets_a_bounded_reason() -> None:
    message = b'{"event_type": "' + b"X" * 10_000 + b'"}'

    (reject,) = decode_batch([message]).rejects

    assert len(reject.reason) <= MAX_REASON_LENGTH


@pytest.mark.parametrize(
    "event_type", ["codegen_completed", "Codegen_Completed", "CODEGEN_completed"]
)
def test_decode_batch_matches_event_type_case_insensitively(event_type: str) -> None:
    messages = [to_json(started_dict()), to_json(completed_dict(event_type=event_type))]

    decoded = decode_batch(messages)

    assert decoded.rejects == []
    assert decoded.indices == [0, 1]
    assert isinstance(decoded.events[1], ModelEventCodegenCompleted)
    assert decoded.events[1].event_type == "CODEGEN_COMPLETED"


@pytest.mark.parametrize("event_type", ["codegen_completed", "Codegen_Completed"])
def test_decode_one_matches_event_type_case_insensitively(event_type: str) -> None:
    event = decode_one(to_json(completed_dict(event_type=event_type)))

    assert isinstance(event, ModelEventCodegenCompleted)


def test_a_lower_case_event_type_still_gets_its_fields_validated() -> None:
    message = to_json(completed_dict(event_type="codegen_completed", quality_score=3.0))

    (reject,) = decode_batch([message]).rejects

    assert reject.category == "invalid_field"
    assert reject.reason.startswith("quality_score:")


def test_decode_one_accepts_str_and_bytes() -> None:
    data = started_dict()

    assert isinstance(decode_one(json.dumps(data)), ModelEventCodegenStarted)
    assert isinstance(decode_one(json.dumps(data).encode()), ModelEventCodegenStarted)


def test_decode_one_raises_a_validation_error_for_a_bad_message() -> None:
    with pytest.raises(ValidationError):
        decode_one(b"{broken")
    with pytest.raises(ValidationError):
        decode_one(to_json(started_dict(event_type="NOPE")))


def test_decode_batch_ignores_unknown_fields() -> None:
    decoded = decode_batch([to_json(completed_dict(brand_new_field={"x": 1}))])

    assert decoded.rejects == []
    assert "brand_new_field" not in decoded.events[0].model_dump()


def test_messages_with_surrounding_whitespace_decode() -> None:
    decoded = decode_batch([b"  " + to_json(started_dict()) + b"\n"])

    assert decoded.indices == [0]


def test_two_invalid_halves_cannot_join_into_valid_events() -> None:
    # Each message alone is invalid JSON; only if the batch were parsed as one joined document
    # would they combine into two "valid" events.
    event = json.dumps(started_dict())
    first_half = (event[:-1] + ', "extra": [{}').encode()
    second_half = ("{}]}, " + event).encode()

    decoded = decode_batch([first_half, second_half])

    assert decoded.events == []
    assert [r.index for r in decoded.rejects] == [0, 1]
    assert {r.category for r in decoded.rejects} == {"invalid_json"}


def test_a_message_holding_two_events_is_rejected_not_split() -> None:
    two = to_json(started_dict()) + b"," + to_json(started_dict())

    decoded = decode_batch([two, to_json(started_dict())])

    assert decoded.indices == [1]
    assert [r.index for r in decoded.rejects] == [0]
    assert decoded.rejects[0].category == "invalid_json"

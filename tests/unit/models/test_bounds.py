"""Domain bounds: each value a buggy producer really emitted is refused as ``out_of_range`` with
the field's name, and the values at the bounds themselves are accepted (known answers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models import decode_batch
from models.bounds import EventBounds
from models.settings import PipelineSettings
from tests.datasets import completed_dict, failed_dict, stage_dict, started_dict, to_json
from tests.unit.models.test_decode import raw_with

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
BOUNDS = EventBounds()


def verdict(message: bytes, bounds: EventBounds = BOUNDS) -> tuple[str, str] | str:
    """("accepted" or (category, field named by the reason))."""
    decoded = decode_batch([message], bounds, NOW)
    if decoded.events:
        return "accepted"
    (reject,) = decoded.rejects
    return reject.category, reject.reason.split(":")[0]


REFUSED = [
    pytest.param(
        to_json(completed_dict(timestamp="0001-01-01T00:30:00+01:00")), "timestamp", id="year-1"
    ),
    pytest.param(to_json(started_dict(timestamp="0999-06-01T00:00:00Z")), "timestamp", id="y999"),
    pytest.param(to_json(stage_dict(timestamp="1999-12-31T23:59:59Z")), "timestamp", id="y1999"),
    pytest.param(to_json(failed_dict(timestamp=-62135596800)), "timestamp", id="numeric-year-1"),
    pytest.param(raw_with(completed_dict(), "total_tokens", "9" * 4300), "total_tokens", id="4300"),
    pytest.param(to_json(completed_dict(total_tokens=10**400)), "total_tokens", id="10**400"),
    pytest.param(to_json(completed_dict(total_tokens=2**53 + 1)), "total_tokens", id="2**53+1"),
    pytest.param(to_json(failed_dict(retry_count=2**60)), "retry_count", id="retries"),
    pytest.param(
        to_json(started_dict(estimated_duration_seconds=-(2**53) - 1)),
        "estimated_duration_seconds",
        id="estimate",
    ),
    pytest.param(to_json(completed_dict(total_cost_usd=1e308)), "total_cost_usd", id="cost"),
    pytest.param(to_json(completed_dict(total_cost_usd=10_000.01)), "total_cost_usd", id="cost+"),
    pytest.param(
        to_json(completed_dict(total_duration_seconds=1e308)), "total_duration_seconds", id="dur"
    ),
    pytest.param(to_json(stage_dict(duration_seconds=604_801)), "duration_seconds", id="stage"),
    pytest.param(
        to_json(failed_dict(partial_duration_seconds=1e9)), "partial_duration_seconds", id="part"
    ),
    pytest.param(to_json(completed_dict(complexity_score=-1e13)), "complexity_score", id="cx"),
]


@pytest.mark.parametrize(("message", "field"), REFUSED)
def test_values_no_generator_emits_are_out_of_range_naming_the_field(
    message: bytes, field: str
) -> None:
    assert verdict(message) == ("out_of_range", field)


ACCEPTED = [
    pytest.param(to_json(stage_dict(timestamp="2000-01-01T00:00:00Z")), id="first-instant"),
    pytest.param(to_json(stage_dict(timestamp="2000-01-01T01:00:00+01:00")), id="first-offset"),
    pytest.param(to_json(completed_dict(total_tokens=2**53)), id="2**53"),
    pytest.param(to_json(completed_dict(total_cost_usd=10_000)), id="cost-limit"),
    pytest.param(to_json(stage_dict(duration_seconds=604_800)), id="seven-days"),
    pytest.param(to_json(completed_dict(complexity_score=-1e12)), id="complexity-limit"),
    pytest.param(to_json(started_dict(timestamp=NOW + 300)), id="skew-limit"),
]


@pytest.mark.parametrize("message", ACCEPTED)
def test_values_at_the_bounds_are_accepted(message: bytes) -> None:
    assert verdict(message) == "accepted"


def test_numeric_timestamps_are_unix_seconds_whatever_their_size() -> None:
    seconds = datetime(2026, 3, 2, 10, 15, tzinfo=UTC).timestamp()
    for value in (int(seconds), seconds + 0.25):
        (event,) = decode_batch([to_json(stage_dict(timestamp=value))], BOUNDS, NOW).events
        assert event.timestamp == datetime.fromtimestamp(value, UTC)


def test_milliseconds_are_not_read_as_seconds_nor_guessed() -> None:
    # Unix milliseconds of 2026-03-02 as seconds are beyond the year 9999: not a date at all.
    assert verdict(to_json(failed_dict(timestamp=1_772_449_200_000))) == (
        "invalid_field",
        "timestamp",
    )
    assert verdict(to_json(failed_dict(timestamp=1_772_449_200))) == "accepted"  # seconds
    # A number that is a date in seconds but too early (1970-01-21) is out of range.
    assert verdict(to_json(failed_dict(timestamp=1_772_449))) == ("out_of_range", "timestamp")


def test_a_timestamp_beyond_the_skew_keeps_its_own_category() -> None:
    assert verdict(to_json(started_dict(timestamp=NOW + 301))) == ("future_timestamp", "timestamp")


def test_the_configurable_bounds_come_from_the_pipeline_settings() -> None:
    strict = EventBounds.of(
        PipelineSettings(max_cost_usd=5, max_duration_seconds=60, max_future_skew_seconds=0)
    )
    assert verdict(to_json(completed_dict(total_cost_usd=6)), strict) == (
        "out_of_range",
        "total_cost_usd",
    )
    assert verdict(to_json(stage_dict(duration_seconds=61)), strict) == (
        "out_of_range",
        "duration_seconds",
    )
    assert verdict(to_json(started_dict(timestamp=NOW + 1)), strict)[0] == "future_timestamp"
    assert verdict(to_json(completed_dict(total_cost_usd=6))) == "accepted"


def test_event_type_is_upper_cased_in_ascii_only() -> None:
    assert verdict(to_json(started_dict(event_type="codegen_started"))) == "accepted"
    # U+017F (long s) upper-cases to "S" in Unicode, but no producer means CODEGEN_STARTED by it.
    assert verdict(to_json(started_dict(event_type="codegen_\u017ftarted"))) == (
        "unknown_event_type",
        "event_type",
    )


def test_without_bounds_the_decoder_checks_only_the_schema() -> None:
    (event,) = decode_batch([to_json(completed_dict(total_cost_usd=1e308))]).events
    assert event.total_cost_usd == 1e308

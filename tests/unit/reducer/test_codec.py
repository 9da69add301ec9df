"""The versioned bytes of AggregationState: round trips, and corruption always detected."""

from __future__ import annotations

import json
import zlib

import pytest

from models import ReducerSettings
from reducer import AggregationState, StateCodecError
from reducer.codec import MAGIC, VERSION
from tests.datasets import mixed_events

VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}
HEADER = len(MAGIC) + 1 + 4

SMALL_CAPS = ReducerSettings(
    exact_percentile_cap=20,
    max_keys_per_breakdown=2,
    max_workflows=5,
    exact_distinct_cap=10,
    cost_bucket_edges=(0.5, 1.0),
    quality_bucket_edges=(0.3, 0.9),
)


def metrics(state: AggregationState) -> dict:
    return state.to_metrics().model_dump(exclude=VOLATILE)


@pytest.fixture(scope="module")
def state() -> AggregationState:
    return AggregationState().add_batch(mixed_events(400, seed=1))


@pytest.mark.parametrize(
    "settings", [ReducerSettings(), SMALL_CAPS], ids=["defaults", "tiny-caps-overflowing"]
)
def test_a_state_round_trips_to_identical_metrics_and_bytes(settings: ReducerSettings) -> None:
    original = AggregationState(settings).add_batch(mixed_events(400, seed=2))

    data = original.to_bytes()
    copy = AggregationState.from_bytes(data)

    assert copy.settings == settings
    assert metrics(copy) == metrics(original)
    assert copy.to_bytes() == data


def test_an_empty_state_round_trips() -> None:
    empty = AggregationState()

    copy = AggregationState.from_bytes(empty.to_bytes())

    assert metrics(copy) == metrics(empty)
    assert copy.is_empty


def test_a_decoded_state_keeps_aggregating_and_merging_like_the_original() -> None:
    events = mixed_events(300, seed=3)
    original = AggregationState(SMALL_CAPS).add_batch(events[:150])
    copy = AggregationState.from_bytes(original.to_bytes())

    original.add_batch(events[150:])
    copy.add_batch(events[150:])
    merged = AggregationState.from_bytes(original.to_bytes()).merge(copy)
    twice = AggregationState(SMALL_CAPS).add_batch(events + events)

    assert metrics(copy) == metrics(original)
    assert metrics(merged) == metrics(twice)


def test_the_bytes_start_with_the_magic_and_the_format_version(state: AggregationState) -> None:
    data = state.to_bytes()

    assert data[:4] == MAGIC
    assert data[4] == VERSION


def test_the_format_is_compact(state: AggregationState) -> None:
    assert len(state.to_bytes()) < 64 * 1024
    assert len(AggregationState().to_bytes()) < 1024


def test_the_body_is_plain_json_never_pickle(state: AggregationState) -> None:
    body = json.loads(zlib.decompress(state.to_bytes()[HEADER:]))

    assert isinstance(body, dict)
    assert "settings" in body


@pytest.mark.parametrize(
    "position",
    [0, 3, 4, 5, 8, HEADER, HEADER + 10, -1],
    ids=["magic0", "magic3", "version", "crc0", "crc3", "body0", "body10", "last"],
)
def test_a_flipped_byte_anywhere_raises_state_codec_error(
    state: AggregationState, position: int
) -> None:
    data = bytearray(state.to_bytes())
    data[position] ^= 0x01

    with pytest.raises(StateCodecError):
        AggregationState.from_bytes(bytes(data))


def test_a_wrong_magic_is_reported_as_such(state: AggregationState) -> None:
    with pytest.raises(StateCodecError, match="magic"):
        AggregationState.from_bytes(b"XXXX" + state.to_bytes()[4:])


def test_another_format_version_is_reported_as_such(state: AggregationState) -> None:
    data = state.to_bytes()

    with pytest.raises(StateCodecError, match="version 2"):
        AggregationState.from_bytes(data[:4] + bytes([VERSION + 1]) + data[5:])


@pytest.mark.parametrize("keep", [0, 3, HEADER - 1, HEADER, HEADER + 1, -1])
def test_truncated_bytes_raise_state_codec_error(state: AggregationState, keep: int) -> None:
    with pytest.raises(StateCodecError):
        AggregationState.from_bytes(state.to_bytes()[:keep])


def test_trailing_garbage_raises_state_codec_error(state: AggregationState) -> None:
    with pytest.raises(StateCodecError):
        AggregationState.from_bytes(state.to_bytes() + b"\x00")


def _framed(payload: bytes) -> bytes:
    return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    "payload",
    [
        b"not zlib at all",
        zlib.compress(b"not json"),
        zlib.compress(b"[]"),
        zlib.compress(b"{}"),
        zlib.compress(json.dumps({"settings": {"exact_percentile_cap": 0}}).encode()),
    ],
    ids=["not-zlib", "not-json", "not-an-object", "missing-keys", "invalid-settings"],
)
def test_a_well_framed_but_unreadable_body_raises_state_codec_error(payload: bytes) -> None:
    with pytest.raises(StateCodecError):
        AggregationState.from_bytes(_framed(payload))


def test_state_codec_error_is_a_value_error() -> None:
    assert issubclass(StateCodecError, ValueError)

"""Hostile state bytes: well framed (a correct CRC) around a body no reducer wrote.

``AggregationState.from_bytes`` must raise StateCodecError and nothing else, with bounded
memory, for any bytes: a zip bomb, a tiny body that asks for a huge allocation, nesting that
would recurse, and random mutations of real bodies. Each guard has a known-answer test; the
fuzz tests also require that no error came from a gap in the checks (``from_bytes`` marks
those "(unchecked)").
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import ReducerSettings
from reducer import AggregationState, StateCodecError
from reducer.codec import (
    MAGIC,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_TOKENS,
    MAX_WIDE_CHARS,
    VERSION,
    inflate,
    scan_json,
)
from tests.datasets import completed, failed, mixed_events, stage

MEMORY_BOUND = 64 * 1024 * 1024
"""Peak traced memory allowed for decoding any input under 1 MB."""

SMALL_CAPS = ReducerSettings(
    exact_percentile_cap=20,
    max_keys_per_breakdown=2,
    max_workflows=5,
    exact_distinct_cap=10,
    cost_bucket_edges=(0.5, 1.0),
)


def frame(payload: bytes) -> bytes:
    """Framing written independently of reducer.codec: magic, version, CRC-32, payload."""
    return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload


def frame_body(body: Any) -> bytes:
    return frame(zlib.compress(json.dumps(body).encode(), 1))


def peak_while(action: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``action`` returned or raised, peak bytes traced while it ran)."""
    tracemalloc.start()
    try:
        try:
            outcome: Any = action()
        except Exception as exc:  # the caller asserts on the exception's type
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused(data: bytes) -> StateCodecError:
    """The StateCodecError ``from_bytes`` raises for ``data``, checked to be a deliberate
    refusal within the memory bound."""
    outcome, peak = peak_while(lambda: AggregationState.from_bytes(data))
    assert isinstance(outcome, StateCodecError), f"expected StateCodecError, got {outcome!r}"
    assert "(unchecked)" not in str(outcome), f"a gap in the checks: {outcome}"
    assert peak < MEMORY_BOUND, f"decoding took {peak / 2**20:.0f} MiB"
    return outcome


@pytest.fixture(scope="module")
def bodies() -> list[dict]:
    """Real bodies: default settings, and tiny caps (sketches, __other__, HyperLogLog)."""
    plain = AggregationState().add_batch(mixed_events(60, seed=11))
    overflowing = AggregationState(SMALL_CAPS).add_batch(mixed_events(400, seed=12))
    assert not overflowing.duration_quantiles.exact
    assert not overflowing.distinct_workflows.exact
    return [plain.to_obj(), overflowing.to_obj(), AggregationState().to_obj()]


def body_with(body: dict, path: tuple, value: Any) -> dict:
    mutated = copy.deepcopy(body)
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return mutated


# -- known answers: one per guard ----------------------------------------------------------------


def test_a_well_formed_body_still_decodes(bodies: list[dict]) -> None:
    for body in bodies:
        state = AggregationState.from_bytes(frame_body(body))
        assert state.to_obj() == body


def test_a_zip_bomb_of_one_gib_is_refused_after_inflating_at_most_the_limit() -> None:
    compressor = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    payload = compressor.compress(b'{"settings":') + b"".join(
        compressor.compress(chunk) for _ in range(1024)
    )
    payload += compressor.flush()
    assert len(payload) < 1_100_000  # 1 GiB of JSON whitespace in about 1 MB

    error = refused(frame(payload))

    assert f"beyond the limit of {MAX_BODY_BYTES} bytes" in str(error)


def test_a_649_byte_state_whose_sum_is_shifted_by_two_to_the_31_is_refused(
    bodies: list[dict],
) -> None:
    # Decoded, 1 << 2**31 is a 256 MiB integer.
    data = frame_body(body_with(bodies[2], ("means", "durations"), [["1", 2**31], 1]))
    assert len(data) < 700

    error = refused(data)

    assert "durations" in str(error)


def test_a_sum_no_count_of_finite_values_can_reach_is_refused(bodies: list[dict]) -> None:
    # 2**2100 / 2**1074 = 2**1026: beyond the largest double, with a count of one.
    body = body_with(bodies[2], ("means", "cost"), [["1", 2100], 1])

    assert "cost" in str(refused(frame_body(body)))


def test_a_sketch_of_a_million_bins_is_refused_before_decoding_them(bodies: list[dict]) -> None:
    sketch = dict(bodies[1]["quantiles"]["k"])
    sketch["c"] = base64.b64encode(bytes(8 * 1_000_000)).decode()  # 8 MB of zero counts
    body = body_with(bodies[1], ("quantiles", "k"), sketch)

    assert "quantiles.k.c" in str(refused(frame_body(body)))


@pytest.mark.parametrize("offset", [2**62, -(2**62), 10**6])
def test_a_sketch_offset_beyond_any_double_is_refused(bodies: list[dict], offset: int) -> None:
    body = body_with(bodies[1], ("quantiles", "k", "o"), offset)

    assert "quantiles.k.o" in str(refused(frame_body(body)))


def test_a_sketch_that_does_not_hold_its_count_is_refused(bodies: list[dict]) -> None:
    body = body_with(bodies[1], ("quantiles", "n"), bodies[1]["quantiles"]["n"] + 1)

    refused(frame_body(body))


def test_more_exact_samples_than_the_cap_are_refused(bodies: list[dict]) -> None:
    samples = base64.b64encode(bytes(8 * 10_001)).decode()
    body = body_with(bodies[2], ("quantiles",), {"n": 10_001, "lo": 0.0, "hi": 0.0, "s": samples})

    assert "exact samples" in str(refused(frame_body(body)))


def test_non_finite_samples_and_bounds_are_refused(bodies: list[dict]) -> None:
    nan = base64.b64encode(bytes.fromhex("000000000000f87f")).decode()
    for quantiles in (
        {"n": 1, "lo": 0.0, "hi": 0.0, "s": nan},
        {"n": 1, "lo": float("nan"), "hi": 1.0, "s": nan},
        {"n": 1, "lo": 1e999, "hi": 1e999, "s": nan},
    ):
        refused(frame_body(body_with(bodies[2], ("quantiles",), quantiles)))


def test_a_breakdown_of_more_keys_than_the_settings_allow_is_refused(bodies: list[dict]) -> None:
    entry = bodies[0]["breakdowns"]["failures_by_error_code"][0][1]
    keys = [[f"code-{i}", entry] for i in range(1002)]  # max_keys_per_breakdown + 2

    error = refused(
        frame_body(body_with(bodies[0], ("breakdowns", "failures_by_error_code"), keys))
    )

    assert "failures_by_error_code has 1002 items, more than 1001" in str(error)


def test_a_breakdown_key_longer_than_the_settings_allow_is_refused(bodies: list[dict]) -> None:
    keys = [["x" * 257, 1]]

    error = refused(frame_body(body_with(bodies[0], ("breakdowns", "failures_by_stage"), keys)))

    assert "257 characters" in str(error)


def test_more_workflow_summaries_than_max_workflows_are_refused(bodies: list[dict]) -> None:
    summary = bodies[0]["workflows"][0][1]
    rows = [[f"{i:036d}", summary] for i in range(1002)]

    refused(frame_body(body_with(bodies[0], ("workflows",), rows)))


def test_more_distinct_ids_than_the_exact_cap_are_refused(bodies: list[dict]) -> None:
    ids = [format(i, "x") for i in range(10_001)]

    assert "distinct ids" in str(
        refused(frame_body(body_with(bodies[0], ("distinct",), {"ids": ids})))
    )


@pytest.mark.parametrize("value", ["-1", "1" * 33, "zz", ""])
def test_a_distinct_id_that_is_not_128_bit_hex_is_refused(bodies: list[dict], value: str) -> None:
    refused(frame_body(body_with(bodies[0], ("distinct",), {"ids": [value]})))


def test_registers_a_hyperloglog_cannot_hold_are_refused(bodies: list[dict]) -> None:
    too_high = base64.b64encode(bytes([50]) * 65536).decode()
    too_few = base64.b64encode(bytes(100)).decode()
    for registers in (too_high, too_few):
        refused(frame_body(body_with(bodies[1], ("distinct",), {"hll": registers})))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 100_000])
def test_deep_nesting_is_refused_before_parsing(bodies: list[dict], depth: int) -> None:
    text = json.dumps(bodies[2])[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}"

    error = refused(frame(zlib.compress(text.encode())))

    assert "nested" in str(error)


def test_a_body_of_more_values_than_the_limit_is_refused_before_parsing(bodies: list[dict]) -> None:
    text = json.dumps(bodies[2])[:-1] + ',"many":[' + "[]," * MAX_TOKENS + "[]]}"

    assert "values exceeds" in str(refused(frame(zlib.compress(text.encode()))))


def test_brackets_inside_strings_are_neither_values_nor_depth(bodies: list[dict]) -> None:
    key = '[{"\\"' * 40  # 200 characters of brackets, quotes and escapes in one key
    state = AggregationState().add_batch(mixed_events(30, seed=13))
    body = state.to_obj()
    body["breakdowns"]["failures_by_error_code"] = [[key + str(i), 1] for i in range(3)]
    body["invalid"] = 0

    decoded = AggregationState.from_bytes(frame_body(body))

    assert {k for k, _ in decoded.failures_by_error_code.items()} >= {key + "0", key + "2"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("by_type",), [1, 2, 3]),
        (("by_type",), [True, 0, 0, 0]),
        (("by_type",), [1.5, 0, 0, 0]),
        (("invalid",), -1),
        (("invalid",), 10**4000),
        (("tokens",), "12"),
        (("means",), []),
        (("means", "cost"), [["zz", 0], 0]),
        (("means", "cost"), [["1", -3], 1]),
        (("means", "cost"), [["1" * 600, 0], 1]),
        (("means", "cost"), [["0", 0], 5]),
        (("cost_buckets",), [[0], [[["0", 0], 0]]]),
        (("quality_buckets",), [0, 0, 7]),
        (("intelligence",), [1, 0]),
        (("settings", "exact_percentile_cap"), 0),
        (("settings", "sketch_relative_accuracy"), 1e-300),
        (("settings", "cost_bucket_edges"), [1.0, 1e999]),
        (("workflows",), [["w", [16, 0, [["0", 0], 0], [["0", 0], 0], [["0", 0], 0]]]]),
        (("workflows",), [["w", [0, 1, [["0", 0], 0], [["0", 0], 0], [["0", 0], 0]]]]),
        (("distinct",), {"ids": [], "hll": ""}),
        (("breakdowns", "stages"), [["a", 1], ["a", 1]]),
        (("breakdowns", "stages"), {"a": 1}),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_values_of_the_wrong_type_range_or_count_are_refused(
    bodies: list[dict], path: tuple, value: Any
) -> None:
    refused(frame_body(body_with(bodies[2], path, value)))


def test_a_body_missing_any_part_is_refused(bodies: list[dict]) -> None:
    for key in bodies[0]:
        if key == "late":  # optional: older bodies lack it
            continue
        body = dict(bodies[0])
        del body[key]
        assert key in str(refused(frame_body(body)))


def test_json_that_is_not_ascii_is_refused(bodies: list[dict]) -> None:
    text = json.dumps(bodies[2], ensure_ascii=False)[:-1] + ',"key":"😀"}'

    assert "not ASCII" in str(refused(frame(zlib.compress(text.encode()))))


def test_long_strings_widened_by_one_escape_are_refused(bodies: list[dict]) -> None:
    # Each string is 4 bytes a character once parsed: 4,000 x 4,001 would be 64 MB.
    wide = ",".join(['"\\ud83d\\ude00' + "b" * 4000 + '"'] * 4000)
    text = json.dumps(bodies[2])[:-1] + ',"wide":[' + wide + "]}"

    error = refused(frame(zlib.compress(text.encode())))

    assert f"exceeds the limit of {MAX_WIDE_CHARS}" in str(error)


def test_a_state_whose_every_breakdown_is_full_of_long_non_ascii_keys_round_trips() -> None:
    # The flood a producer can cause: 1,000 keys of 256 characters beyond U+FFFF per breakdown.
    def key(i: int, tag: str) -> str:
        return (f"{tag}{i:04d}" + "\U0001f600" * 256)[:256]

    events = []
    for i in range(1000):
        events.append(completed(primary_model=key(i, "m"), node_type=key(i, "n")))
        events.append(stage(stage_name=key(i, "s")))
        events.append(failed(error_code=key(i, "e"), failed_stage=key(i, "f")))
    state = AggregationState().add_batch(events)

    copy_ = AggregationState.from_bytes(state.to_bytes())

    assert {k for k, _ in copy_.models.items()} == {key(i, "m") for i in range(1000)}
    assert copy_.to_obj() == state.to_obj()


# -- inflate, on its own -------------------------------------------------------------------------


def test_inflate_returns_a_stream_of_exactly_the_limit() -> None:
    assert inflate(zlib.compress(b"a" * 1000), 1000) == b"a" * 1000


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (zlib.compress(b"a" * 1001), "beyond the limit of 1000"),
        (zlib.compress(b"a" * 10)[:-3], "truncated"),
        (zlib.compress(b"a" * 10) + b"x", "1 bytes after"),
        (b"not zlib", "corrupt"),
    ],
    ids=["over", "truncated", "trailing", "corrupt"],
)
def test_inflate_refuses_what_is_not_one_stream_within_the_limit(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        inflate(data, 1000)


# -- fuzz ----------------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=14_000).map(lambda bits: 2**bits),
    st.integers(min_value=0, max_value=14_000).map(lambda bits: -(2**bits)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=50),
    st.text(alphabet="0123456789abcdef-", max_size=600),
)


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


hostile_values = st.one_of(
    hostile_scalars,
    st.lists(hostile_scalars, max_size=8),
    st.dictionaries(
        st.sampled_from(["n", "lo", "hi", "s", "k", "ids", "hll", "a"]), hostile_scalars
    ),
    st.integers(min_value=1, max_value=900).map(nested),  # json.dumps recurses too
    st.integers(min_value=0, max_value=200_000).map(lambda n: [0] * n),
    st.integers(min_value=0, max_value=300_000).map(lambda n: "A" * n),
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position in a JSON tree (dict keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def survives_use(state: AggregationState) -> None:
    """A decoded state can be merged, encoded and turned into metrics (or refuse with
    ValueError, for a sum beyond the float range)."""
    merged = state.merge(state)
    AggregationState.from_bytes(merged.to_bytes())
    with contextlib.suppress(ValueError):
        state.to_metrics()


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_raise_only_state_codec_error(data: bytes) -> None:
    refused(data)


@FUZZ
@given(payload=st.binary(max_size=2000), compress=st.booleans())
def test_random_payloads_with_a_correct_crc_raise_only_state_codec_error(
    payload: bytes, compress: bool
) -> None:
    refused(frame(zlib.compress(payload) if compress else payload))


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_mutated_bodies_with_a_correct_crc_decode_to_a_usable_state_or_are_refused(
    bodies: list[dict], data: st.DataObject
) -> None:
    original = bodies[data.draw(st.integers(min_value=0, max_value=len(bodies) - 1))]
    body = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(paths(original)))
        parent = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed it
            continue
        if not isinstance(parent, dict | list):  # an earlier mutation made it a string
            continue
        action = data.draw(st.sampled_from(["replace", "drop", "duplicate"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = data.draw(hostile_values)
    encoded = frame_body(body)
    assert len(encoded) < 1_000_000

    outcome, peak = peak_while(lambda: AggregationState.from_bytes(encoded))

    assert peak < MEMORY_BOUND, f"decoding took {peak / 2**20:.0f} MiB"
    if isinstance(outcome, AggregationState):
        survives_use(outcome)
    else:
        assert isinstance(outcome, StateCodecError), f"expected StateCodecError, got {outcome!r}"
        assert "(unchecked)" not in str(outcome), f"a gap in the checks: {outcome}"


# -- the pre-parse scan, against a reference that counts the parsed value ------------------------


def escapes(string: str) -> int:
    """The \\uXXXX escapes json.dumps (ensure_ascii) writes for a string."""
    return sum(
        2 if ord(c) > 0xFFFF else 1
        for c in string
        if ord(c) > 126 or (ord(c) < 32 and c not in "\n\r\t\b\f")
    )


def reference_shape(value: Any) -> tuple[int, int, int]:
    """(values, depth, wide characters) counted on the parsed value: a list of n items has
    n - 1 commas and one bracket, an object of n pairs n colons, n - 1 commas and one brace;
    a string with escapes counts its encoded length (opening quote included) less 5 an escape."""
    if isinstance(value, str):
        n = escapes(value)
        return 0, 0, (len(json.dumps(value)) - 1 - 5 * n) if n else 0
    if isinstance(value, list):
        parts = [reference_shape(v) for v in value]
        tokens = max(len(value), 1)
    elif isinstance(value, dict):
        parts = [reference_shape(k) for k in value] + [reference_shape(v) for v in value.values()]
        tokens = max(2 * len(value), 1)
    else:
        return 0, 0, 0
    return (
        tokens + sum(p[0] for p in parts),
        1 + max((p[1] for p in parts), default=0),
        sum(p[2] for p in parts),
    )


tricky_text = st.text(
    alphabet=st.one_of(st.sampled_from(list('"\\[]{},:u a\n\x01\x7fé中😀')), st.characters())
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, chunk=st.integers(min_value=1, max_value=64), spaced=st.booleans())
def test_the_scan_counts_what_the_parsed_value_holds(value: Any, chunk: int, spaced: bool) -> None:
    text = json.dumps(value, separators=(", ", ": ") if spaced else (",", ":")).encode()

    assert scan_json(text, chunk=chunk) == reference_shape(value)

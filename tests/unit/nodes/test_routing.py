"""Routing: which window actor owns a workflow, by a stable hash of workflow_id."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from reducer.nodes.routing import message_owner, message_owners, owner, route_messages
from tests.datasets import mixed_events, workflow

ROOT = Path(__file__).resolve().parents[3]

#: Owners for 2, 4, 7 and 16 actors, computed once from the formula; they must never change
#: between runs, processes or releases (a changed mapping moves workflows between actors).
FIXED = {
    "00000000-0000-0000-0000-000000000000": [0, 0, 0, 0],
    "123e4567-e89b-12d3-a456-426614174000": [0, 0, 1, 3],
    "c0ffee00-1234-4abc-9def-0123456789ab": [0, 1, 2, 4],
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8": [1, 2, 5, 11],
    "3f2504e0-4f89-41d3-9a0c-0305e82c3301": [0, 1, 1, 4],
    "a8098c1a-f86e-11da-bd1a-00112444be1e": [1, 2, 4, 9],
}
ACTOR_COUNTS = (2, 4, 7, 16)


def random_uuids(count: int, seed: int = 7) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def assert_balanced(ids: list[uuid.UUID], actors: int, tolerance: float = 0.10) -> None:
    counts = Counter(owner(workflow_id, actors) for workflow_id in ids)
    fair = len(ids) / actors
    assert set(counts) == set(range(actors))
    assert all(abs(n - fair) <= tolerance * fair for n in counts.values()), sorted(counts.items())


def test_the_owner_of_a_workflow_matches_values_fixed_once_from_the_formula() -> None:
    for text, expected in FIXED.items():
        assert [owner(uuid.UUID(text), n) for n in ACTOR_COUNTS] == expected, text


def test_the_owner_of_a_workflow_is_the_same_on_every_call() -> None:
    ids = random_uuids(100)

    assert [owner(i, 4) for i in ids] == [owner(i, 4) for i in ids]


def test_the_owner_of_a_workflow_is_the_same_in_another_process_with_another_hash_seed() -> None:
    ids = [str(i) for i in random_uuids(200)]
    script = (
        "import json, sys, uuid\n"
        "from reducer.nodes.routing import owner\n"
        "ids = json.loads(sys.stdin.read())\n"
        "print(json.dumps([owner(uuid.UUID(i), 4) for i in ids]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=True,
    )

    assert json.loads(result.stdout) == [owner(uuid.UUID(i), 4) for i in ids]


@pytest.mark.parametrize("actors", [1, 2, 3, 4, 7, 16])
def test_an_owner_is_always_a_valid_actor_index(actors: int) -> None:
    extremes = [uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1), uuid.UUID(int=1 << 127)]

    assert {owner(i, actors) for i in [*random_uuids(500), *extremes]} <= set(range(actors))


def test_ten_thousand_random_workflows_spread_over_four_actors_within_ten_percent() -> None:
    assert_balanced(random_uuids(10_000), 4)


@pytest.mark.parametrize("actors", [2, 3, 7])
def test_random_workflows_spread_evenly_over_other_actor_counts(actors: int) -> None:
    assert_balanced(random_uuids(10_000, seed=actors), actors)


def test_time_based_uuid1_workflows_spread_evenly_too() -> None:
    """uuid1 varies in its high (time) bits, in steps of the clock's resolution."""
    assert_balanced([uuid.uuid1() for _ in range(10_000)], 2)
    assert_balanced([uuid.uuid1() for _ in range(10_000)], 4)


@pytest.mark.parametrize("step", [1, 10, 16, 1024])
def test_workflows_differing_only_in_the_high_bits_spread_evenly(step: int) -> None:
    ids = [uuid.UUID(int=((i * step) << 96) | 0x1234_5678) for i in range(4000)]

    assert_balanced(ids, 4)


def test_all_events_of_a_workflow_go_to_the_same_actor() -> None:
    events = [e for _ in range(50) for e in workflow(stages=4)] + mixed_events(400, seed=5)
    random.Random(1).shuffle(events)
    messages = [e.model_dump_json().encode() for e in events]

    parts = route_messages(messages, 4)

    owners: dict[uuid.UUID, set[int]] = {}
    for index, part in enumerate(parts):
        for position in part:
            owners.setdefault(events[position].workflow_id, set()).add(index)
    assert all(len(found) == 1 for found in owners.values())


# -- raw messages: routed without decoding --------------------------------------------------------


def raw(event: object) -> bytes:
    return event.model_dump_json().encode()  # type: ignore[attr-defined]


@pytest.mark.parametrize("actors", ACTOR_COUNTS)
def test_a_raw_message_goes_to_the_owner_of_its_workflow(actors: int) -> None:
    events = mixed_events(300, seed=9)

    assert [message_owner(raw(e), actors) for e in events] == [
        owner(e.workflow_id, actors) for e in events
    ]


@pytest.mark.parametrize(
    "text",
    [
        "123E4567-E89B-12D3-A456-426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "123e4567e89b12d3a456426614174000",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_every_spelling_pydantic_accepts_of_a_workflow_id_routes_like_the_canonical_one(
    text: str,
) -> None:
    message = json.dumps({"event_type": "CODEGEN_STARTED", "workflow_id": text}).encode()
    workflow_id = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")

    assert [message_owner(message, n) for n in ACTOR_COUNTS] == FIXED[str(workflow_id)]


def test_whitespace_and_key_order_do_not_change_the_route() -> None:
    text = "c0ffee00-1234-4abc-9def-0123456789ab"
    messages = [
        json.dumps({"workflow_id": text, "event_type": "CODEGEN_STARTED"}).encode(),
        json.dumps({"event_type": "CODEGEN_STARTED", "workflow_id": text}, indent=2).encode(),
        b'{"a":1,"workflow_id"  :\t"' + text.encode() + b'"}',
    ]

    assert {tuple(message_owner(m, n) for n in ACTOR_COUNTS) for m in messages} == {
        tuple(FIXED[text])
    }


@pytest.mark.parametrize(
    "message",
    [
        b"not json at all",
        b'{"workflow_id": "not-a-uuid"}',
        b'{"workflow_id": 42}',
        b"\xff\xfe\x00 random bytes",
        b"[" * 5000,
        b"",
    ],
)
def test_a_message_without_a_usable_workflow_id_is_routed_by_its_bytes_the_same_every_time(
    message: bytes,
) -> None:
    owners = [message_owner(message, 7) for _ in range(3)]

    assert len(set(owners)) == 1 and 0 <= owners[0] < 7


def test_messages_without_a_workflow_id_still_spread_over_every_actor() -> None:
    messages = [f"garbage {i}".encode() for i in range(4000)]

    counts = Counter(message_owner(m, 4) for m in messages)

    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(n - 1000) <= 100 for n in counts.values()), counts


def test_route_messages_keeps_every_position_once_in_order_with_empty_parts() -> None:
    messages = [raw(e) for e in mixed_events(200, seed=10)] + [b"junk"]

    parts = route_messages(messages, 5)

    assert len(parts) == 5
    assert sorted(p for part in parts for p in part) == list(range(len(messages)))
    assert all(part == sorted(part) for part in parts)
    for index, part in enumerate(parts):
        assert all(message_owner(messages[p], 5) == index for p in part)
    assert route_messages([], 3) == [[], [], []]


@pytest.mark.parametrize("actors", ACTOR_COUNTS)
def test_route_messages_sends_each_canonical_message_to_the_fixed_owner(actors: int) -> None:
    texts = list(FIXED)
    messages = [json.dumps({"workflow_id": t}, separators=(",", ":")).encode() for t in texts]

    parts = route_messages(messages * 3, actors)

    for index, part in enumerate(parts):
        assert all(FIXED[texts[p % len(texts)]][ACTOR_COUNTS.index(actors)] == index for p in part)
    assert sum(map(len, parts)) == 3 * len(texts)


NEAR_MISSES = [
    b'{"workflow_id":"123E4567-E89B-12D3-A456-426614174000"}',  # upper case: same owner
    b'{"workflow_id":"123e4567-e89b-12d3-a456-42661417400"}',  # 35 characters
    b'{"workflow_id":"123e4567-e89b-12d3-a456-4266141740000"}',  # 37 characters
    b'{"workflow_id":"123e4567_e89b-12d3-a456-426614174000"}',  # a dash replaced
    b'{"workflow_id":"123e4567-e89b-12d3-a456-42661417400g"}',  # not hex
    b'{"workflow_id":"+23e4567-e89b-12d3-a456-426614174000"}',  # int() would take a sign
    b'{"workflow_id":"1_3e4567-e89b-12d3-a456-426614174000"}',  # or an underscore
    b'{"workflow_id":"123e4567-e89b-12d3-a456-42661417400\\"}',  # an escape
    b'{"workflow_id" : "123e4567-e89b-12d3-a456-426614174000"}',  # spaced
    b'{"workflow_id":123}',
    b'{"workflow_id":"123e4567-e89b-12d3-a456-426614174000',  # cut before the quote
    b'{"workflow_id":"',
    b'"workflow_id"',
    b'x"workflow_id":"c0ffee00-1234-4abc-9def-0123456789ab"',  # no object around it: still used
    b'{"a":"\\"workflow_id\\":\\"c0ffee00-1234-4abc-9def-0123456789ab\\""}',  # inside a string
    b'{"workflow_id":"zz","workflow_id":"c0ffee00-1234-4abc-9def-0123456789ab"}',  # the first
    b'{"workflow_id":"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9-e89b-12d3-a456-426614174000"}',
    b"",
    b"\x00\x00\x00\x00\x07" + b'{"workflow_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}',
]


@pytest.mark.parametrize("actors", [1, 2, 3, 16, 1000, 2**31 - 1, 2**31, 2**40])
def test_message_owners_agrees_with_message_owner_on_near_misses_of_the_common_shape(
    actors: int,
) -> None:
    messages = NEAR_MISSES + [raw(e) for e in mixed_events(50, seed=12)]
    random.Random(actors).shuffle(messages)

    assert message_owners(messages, actors).tolist() == [message_owner(m, actors) for m in messages]


def test_route_messages_agrees_with_message_owner_on_near_misses() -> None:
    messages = NEAR_MISSES * 2

    parts = route_messages(messages, 3)

    assert [sorted(p for p in part) for part in parts] == parts
    assert {p: i for i, part in enumerate(parts) for p in part} == {
        p: message_owner(m, 3) for p, m in enumerate(messages)
    }
    assert message_owners([], 4).tolist() == []

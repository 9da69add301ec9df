"""Quarantine: deaths counted per offset across rebuilds; suspects sent alone; a message in
flight at three deaths dead-lettered unread."""

from __future__ import annotations

import uuid

from reducer.nodes.ingest import IngestDispatcher
from reducer.nodes.quarantine import Quarantine
from tests.unit.nodes.test_ingest_dispatcher import EOF_CODE, TOPIC, Message, event


def offsets(*numbers: int) -> list[tuple[str, int, int]]:
    return [(TOPIC, 0, n) for n in numbers]


def test_a_poison_offset_is_narrowed_down_and_quarantined_after_three_deaths() -> None:
    book = Quarantine()
    book.record(offsets(*range(10, 20)))  # a whole batch was in flight
    assert book.careful() == frozenset(offsets(*range(10, 20)))
    assert book.quarantined() == {}
    book.record(offsets(14))  # sent alone, it died again
    book.record(offsets(14, 14))  # one death, however often it is listed
    assert book.quarantined() == {(TOPIC, 0, 14): 3}
    assert (TOPIC, 0, 14) not in book.careful() and (TOPIC, 0, 13) in book.careful()


def messages(*numbers: int) -> list[Message]:
    return [Message(TOPIC, 0, n, event(uuid.UUID(int=n))) for n in numbers]


def test_suspects_are_split_into_chunks_of_their_own_in_order() -> None:
    core = IngestDispatcher(0, 2, 1000, EOF_CODE, careful=frozenset(offsets(2, 3, 6)))
    chunks = core.split(messages(*range(8)))
    assert [([m.offset() for m in c], alone) for c, alone in chunks] == [
        ([0, 1], False),
        ([2], True),
        ([3], True),
        ([4, 5], False),
        ([6], True),
        ([7], False),
    ]
    plain = IngestDispatcher(0, 2, 1000, EOF_CODE)
    assert [(len(c), alone) for c, alone in plain.split(messages(1, 2))] == [(2, False)]


def test_a_quarantined_offset_is_dead_lettered_unread_and_the_position_moves_past_it() -> None:
    core = IngestDispatcher(0, 2, 1000, EOF_CODE, quarantined={(TOPIC, 0, 5): 3})
    dispatch = core.plan(messages(4, 5, 6))

    assert [m.offset() for part in dispatch.parts for m in part] in ([4, 6], [6, 4])
    ((message, letter),) = dispatch.dead_letters
    assert message.offset() == 5 and letter.category == "processing_error"
    assert "died 3 times" in letter.reason and letter.source_offset == 5
    assert core.position[(TOPIC, 0)] == 7


def test_in_flight_lists_the_offsets_routed_to_the_dead_windows_only() -> None:
    core = IngestDispatcher(0, 2, 1000, EOF_CODE)
    dispatch = core.plan(messages(*range(20)))
    to_zero = sorted(m.offset() for m in dispatch.parts[0])
    assert 0 < len(to_zero) < 20
    assert sorted(o for _, _, o in core.in_flight([dispatch], [0])) == to_zero
    assert sorted(o for _, _, o in core.in_flight([dispatch], [0, 1])) == list(range(20))

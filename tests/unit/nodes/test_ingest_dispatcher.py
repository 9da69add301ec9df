"""IngestDispatcher and CheckpointGate: an ingest actor's decisions, with stand-in messages."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass

from models.dead_letter import DeadLetter
from reducer.nodes.ingest import CheckpointGate, IngestDispatcher
from reducer.nodes.messages import Applied
from reducer.nodes.routing import owner

EOF_CODE = -191
TOPIC = "dev.codegen.started.v1"


@dataclass
class FakeError:
    value: int

    def code(self) -> int:
        return self.value


@dataclass
class Message:
    """What confluent_kafka.Message offers the dispatcher."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None = b"{}"
    _error: FakeError | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"k"

    def error(self) -> FakeError | None:
        return self._error


def event(workflow: uuid.UUID) -> bytes:
    return json.dumps({"event_type": "CODEGEN_STARTED", "workflow_id": str(workflow)}).encode()


def dispatcher(windows: int = 2, limit: int = 1000, **kwargs: object) -> IngestDispatcher:
    return IngestDispatcher(3, windows, limit, EOF_CODE, **kwargs)


def test_plan_routes_each_message_to_its_workflows_owner_and_records_offset_ranges() -> None:
    workflows = [uuid.uuid4() for _ in range(20)]
    messages = [Message(TOPIC, i % 2, 100 + i, event(w)) for i, w in enumerate(workflows)]

    plan = dispatcher().plan(messages)

    assert plan is not None
    for window, part in enumerate(plan.parts):
        for message in part:
            workflow = uuid.UUID(json.loads(message.value())["workflow_id"])
            assert owner(workflow, 2) == window
    assert sorted(m.offset() for part in plan.parts for m in part) == list(range(100, 120))
    assert [(s.partition, s.first_offset, s.last_offset) for s in plan.sources] == [
        (0, 100, 118),
        (1, 101, 119),
    ]
    for part, values, origins in zip(plan.parts, plan.values, plan.origins, strict=True):
        assert values == [m.value() for m in part]
        assert [plan.sources[o].partition for o in origins] == [m.partition() for m in part]


def test_oversized_messages_are_dead_lettered_with_their_source_and_positions_advance() -> None:
    core = dispatcher(limit=100)
    big = Message(TOPIC, 1, 7, b"x" * 101)
    plan = core.plan([Message(TOPIC, 1, 6, event(uuid.uuid4())), big])

    assert plan is not None and [m for m, _ in plan.dead_letters] == [big]
    letter = plan.dead_letters[0][1]
    assert (letter.category, letter.source, letter.source_offset) == ("oversized", "ingest-3", 7)
    assert "101 bytes exceeds 100" in letter.reason
    assert core.position == {(TOPIC, 1): 8}
    assert core.counts.messages_in == 2


def test_partition_ends_and_errors_are_tracked_not_sent() -> None:
    core = dispatcher()
    eof = Message(TOPIC, 0, 5, None, FakeError(EOF_CODE))
    broken = Message(TOPIC, 1, 0, None, FakeError(-1))

    assert core.plan([eof, broken]) is None
    assert core.drained == {(TOPIC, 0): 5} and core.counts.consumer_errors == 1
    core.plan([Message(TOPIC, 0, 5, event(uuid.uuid4()))])
    assert core.drained == {}  # read past its end: may hold a backlog again


def test_each_window_actor_gets_one_batch_with_a_new_id_and_the_partition_view() -> None:
    core = dispatcher(windows=3)
    core.assign([(TOPIC, 0)])
    core.known = [(TOPIC, 0), (TOPIC, 1)]
    plan = core.plan([Message(TOPIC, 0, i, event(uuid.uuid4())) for i in range(30)])
    assert plan is not None

    first = core.batches(plan, drained=[])
    second = core.batches(core.heartbeat(), drained=[(TOPIC, 0)])

    assert [b.batch_id for b in first] == [(3, 1)] * 3
    assert [b.batch_id for b in second] == [(3, 2)] * 3
    assert sum(len(b.values) for b in first) == 30
    assert all(b.values == [] and b.drained == [(TOPIC, 0)] for b in second)
    assert all(b.assigned == [(TOPIC, 0)] and b.known == core.known for b in first)


def test_settle_turns_window_answers_into_dead_letters_late_events_and_counts() -> None:
    core = dispatcher()
    messages = [Message(TOPIC, 0, i, event(uuid.uuid4())) for i in range(10)]
    plan = core.plan(messages)
    assert plan is not None
    answers = [
        Applied(
            rejects=[(0, "invalid_json", "broken")] if len(part) > 0 else [],
            late=[(len(part) - 1, "hour closed")] if len(part) > 1 else [],
            duplicates=1,
            events_by_type={"CODEGEN_STARTED": len(part) - 1} if part else {},
        )
        for part in plan.parts
    ]

    letters, by_type = core.settle(plan.parts, answers)
    for _, letter in letters:
        core.count_set_aside(letter)

    expected = [(part[0].offset(), "invalid_json") for part in plan.parts if part] + [
        (part[-1].offset(), "late") for part in plan.parts if len(part) > 1
    ]
    assert sorted((m.offset(), d.category) for m, d in letters) == sorted(expected)
    assert all(m.offset() == d.source_offset for m, d in letters)
    stats = core.stats(batches_in_flight=0)
    assert stats.events_in == by_type.total() == 10 - sum(1 for p in plan.parts if p)
    assert stats.duplicates_dropped == 2
    assert stats.events_late == sum(1 for p in plan.parts if len(p) > 1)
    assert stats.rejects_by_reason == {"invalid_json": sum(1 for p in plan.parts if p)}


def test_a_restore_seeks_to_the_checkpoint_until_the_first_commit() -> None:
    start = {(TOPIC, 0): 40, (TOPIC, 1): 7}
    core = dispatcher(start_offsets=start)

    assert core.assign([(TOPIC, 1), (TOPIC, 2)]) == {(TOPIC, 1): 7}
    assert core.commit_share({(TOPIC, 0): 41, (TOPIC, 1): 9}) == {(TOPIC, 1): 9}
    assert core.assign([(TOPIC, 0)]) == {}  # committed since: the group's offsets hold
    assert core.counts.commits == 1 and core.counts.rebalances == 2


def test_revoked_partitions_leave_the_assignment_position_and_drained_sets() -> None:
    core = dispatcher()
    core.assign([(TOPIC, 0), (TOPIC, 1)])
    core.plan(
        [Message(TOPIC, 0, 3, event(uuid.uuid4())), Message(TOPIC, 1, 0, None, FakeError(EOF_CODE))]
    )
    core.revoke([(TOPIC, 0), (TOPIC, 1)])

    assert core.assigned == [] and core.position == {} and core.drained == {}
    assert core.stats(0).assigned == []


def test_dead_letter_headers_round_trip_and_reasons_are_cut_at_1_kb() -> None:
    letter = DeadLetter("processing_error", "é" * 2000, "window-1", TOPIC, 2, 99)
    back = DeadLetter.from_headers(letter.headers())

    assert back.source_topic == TOPIC and back.source_partition == 2 and back.source_offset == 99
    assert back.category == "processing_error" and back.source == "window-1"
    assert len(back.reason.encode()) <= 1024 and back.reason == "é" * 512
    no_source = DeadLetter.from_headers(
        DeadLetter("invalid_intent", "r", "intent-executor").headers()
    )
    assert no_source.source_topic is None and no_source.source_offset is None


def test_the_gate_returns_the_commit_to_a_holding_loop_and_times_out_without_one() -> None:
    gate = CheckpointGate()
    assert not gate.pause(timeout=0.05)  # no loop holds: the request is withdrawn
    assert not gate.requested

    held: list[object] = []

    def loop() -> None:
        while not gate.requested:
            pass
        held.append(gate.hold(timeout=5))

    thread = threading.Thread(target=loop)
    thread.start()
    assert gate.pause(timeout=5) and gate.held
    gate.resume({(TOPIC, 0): 12})
    thread.join(5)

    assert held == [{(TOPIC, 0): 12}] and not gate.held and not gate.requested


def test_a_loop_that_exits_releases_a_waiting_coordinator() -> None:
    gate = CheckpointGate()
    threading.Timer(0.05, gate.release).start()
    assert gate.pause(timeout=5)


def test_caught_up_once_per_backlog_when_every_assigned_partition_is_read_to_its_end() -> None:
    core = dispatcher()
    core.assign([(TOPIC, 0), (TOPIC, 1)])
    ends = {(TOPIC, 0): 40, (TOPIC, 1): 9}
    asked: list[bool] = []

    def at_end() -> list[tuple[str, int]]:
        asked.append(True)
        return sorted(ends)

    # A stream below capacity: partial batches, partitions at their end, never an early tick.
    core.plan([Message(TOPIC, 0, 39, event(uuid.uuid4()))])
    core.drained.update(ends)
    assert not core.caught_up(1, 1000, at_end)
    # A backlog: a full batch, then one that is not, with one partition still behind.
    assert not core.caught_up(1000, 1000, at_end)
    core.drained.pop((TOPIC, 1))
    assert not core.caught_up(300, 1000, at_end)
    assert not asked  # not every assigned partition drained: librdkafka is not asked
    core.drained[(TOPIC, 1)] = 9
    ends[(TOPIC, 1)] = 9
    assert core.caught_up(0, 1000, at_end)
    assert not core.caught_up(0, 1000, at_end)  # once per backlog


def test_not_caught_up_while_the_fetcher_has_seen_past_a_partitions_end() -> None:
    core = dispatcher()
    core.assign([(TOPIC, 0), (TOPIC, 1)])
    core.drained.update({(TOPIC, 0): 40, (TOPIC, 1): 9})
    assert not core.caught_up(1000, 1000, lambda: [])
    assert not core.caught_up(10, 1000, lambda: [(TOPIC, 0)])  # partition 1 has more fetched
    assert core.caught_up(10, 1000, lambda: [(TOPIC, 0), (TOPIC, 1)])


def test_batches_shrink_to_about_four_mib_when_messages_are_large() -> None:
    core = dispatcher(limit=2_000_000)
    assert core.batch_limit(4000) == 4000  # nothing read yet
    core.plan([Message(TOPIC, 0, i, event(uuid.uuid4())) for i in range(10)])
    assert core.batch_limit(4000) == 4000  # small events: the setting rules
    core.plan([Message(TOPIC, 0, 10 + i, b"x" * 1_048_576) for i in range(3)])
    assert core.batch_limit(4000) == 4  # 4 MiB of 1 MiB messages
    oversized = [Message(TOPIC, 0, 13, b"y" * 3_000_000)]  # dead-lettered, still in memory
    core.plan(oversized)
    assert core.batch_limit(4000) == 1

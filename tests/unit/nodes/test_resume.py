"""When a start may resume from the checkpoint it found, and what the operator is told."""

from __future__ import annotations

import pytest

from reducer.nodes.checkpoint import Checkpoint, Source
from reducer.nodes.resume import BrokerView, group_needs_reset, refusal, resume_problems

IN = "prod.codegen.started.v1"
OUT = "prod.codegen.failed.v1"


def checkpoint(offsets: dict, source: Source | None = None) -> Checkpoint:
    return Checkpoint(sequence=3, epoch=1, offsets=offsets, windows=[], source=source)


VIEW = BrokerView("kafka-a", {IN: 4, OUT: 4}, committed={}, ends={(IN, 0): 100, (IN, 1): 7})
SOURCE = Source("kafka-a", "group", {IN: 4, OUT: 4})


def test_a_matching_checkpoint_or_a_fresh_group_resumes() -> None:
    assert resume_problems(checkpoint({(IN, 0): 100, (IN, 1): 3}, SOURCE), VIEW) == []
    assert resume_problems(None, VIEW) == []
    # Files written before sources were recorded are checked on offsets alone.
    assert resume_problems(checkpoint({(IN, 0): 5}), VIEW) == []


@pytest.mark.parametrize(
    ("found", "view", "problem"),
    [
        (
            None,
            BrokerView("kafka-a", {IN: 4}, committed={(IN, 0): 12, (IN, 2): 1}),
            "the consumer group has committed offsets on 2 input partition(s) but no "
            "checkpoint was found",
        ),
        (
            checkpoint({(IN, 0): 1}, Source("kafka-b", "group", {IN: 4})),
            VIEW,
            "the checkpoint comes from Kafka cluster 'kafka-b'; the broker is cluster 'kafka-a'",
        ),
        (
            checkpoint({(IN, 1): 8}, SOURCE),
            VIEW,
            "checkpointed offset 8 of prod.codegen.started.v1[1] is beyond the partition's end (7)",
        ),
        (
            checkpoint({("prod.gone", 0): 1}, SOURCE),
            VIEW,
            "checkpointed topic prod.gone does not exist",
        ),
        (
            checkpoint({(IN, 6): 1}, SOURCE),
            VIEW,
            "checkpointed partition prod.codegen.started.v1[6] does not exist (the topic has 4 "
            "partition(s))",
        ),
        (
            checkpoint({(IN, 0): 1}, Source("kafka-a", "group", {IN: 4, OUT: 2})),
            VIEW,
            "topic prod.codegen.failed.v1 had 2 partition(s) at the checkpoint and has 4 now",
        ),
    ],
    ids=[
        "commits-without-checkpoint",
        "other-cluster",
        "beyond-end",
        "topic-gone",
        "partition-gone",
        "partitions-changed",
    ],
)
def test_resuming_without_matching_state_is_refused(
    found: Checkpoint | None, view: BrokerView, problem: str
) -> None:
    assert resume_problems(found, view) == [problem]


def test_the_refusal_names_the_location_group_broker_and_the_ways_forward() -> None:
    message = str(refusal(["x is wrong"], "s3://bucket/ckpt/prod", "prod-group", "kafka:9092"))
    assert "refusing to resume consumer group 'prod-group' on kafka:9092" in message
    assert "  - x is wrong" in message
    assert "s3://bucket/ckpt/prod" in message
    for way in ("--storage-path", "--group-id", "--reset-state"):
        assert way in message


@pytest.mark.parametrize(
    ("what", "attempt", "found", "asked", "reset"),
    [
        ("start", 1, None, False, False),  # a first start: nothing committed to rebuild from
        ("start", 1, checkpoint({(IN, 0): 5}), False, True),  # a restart: Tansu's stale leader
        ("start", 2, None, False, True),  # a retry: the killed consumers may have left mid-join
        ("restore", 1, None, False, True),
        ("start", 1, None, True, True),  # the supervisor saw the group stuck
    ],
)
def test_the_group_is_rebuilt_from_the_checkpoint_unless_a_first_start_finds_nothing(
    what: str, attempt: int, found: Checkpoint | None, asked: bool, reset: bool
) -> None:
    assert group_needs_reset(what, attempt, found, asked) is reset

"""Whether a start may resume: the checkpoint found must match the broker and the group.

A pipeline resumes from its latest checkpoint: the offsets there say where each input partition
continues, and the window states hold everything consumed before. Resuming is refused when that
would silently lose or double-count events:

- the consumer group has committed offsets but no checkpoint is found (a redeploy that lost its
  checkpoints would otherwise continue from the commits with empty windows, so the open windows'
  earlier events would be missing from their final metrics);
- the checkpoint was taken against another Kafka cluster (its offsets mean nothing here);
- a checkpointed topic no longer exists, or its partition count changed (keys moved partitions);
- a checkpointed offset is beyond its partition's end (the topic was recreated or truncated).

The operator's ways forward are in the error: point the pipeline at the right checkpoints, use
another group, or start over with ``--reset-state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reducer.nodes.checkpoint import Checkpoint

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class BrokerView:
    """What the broker says now about the cluster, the input topics and the group."""

    cluster_id: str | None
    partitions: dict[str, int]
    """Partition count of each input topic that exists."""
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    """The group's committed offsets on the input topics."""
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    """End offset (high watermark) of each input partition."""


class ResumeRefused(RuntimeError):
    """A start that would resume without matching state; the message says what to do."""


def resume_problems(checkpoint: Checkpoint | None, view: BrokerView) -> list[str]:
    """Why resuming from ``checkpoint`` (None: none found) would be wrong; empty when it is
    safe."""
    if checkpoint is None:
        if view.committed:
            return [
                f"the consumer group has committed offsets on {len(view.committed)} input "
                "partition(s) but no checkpoint was found"
            ]
        return []
    problems: list[str] = []
    source = checkpoint.source
    clusters = (source.cluster_id, view.cluster_id) if source is not None else (None, None)
    if all(clusters) and clusters[0] != clusters[1]:
        problems.append(
            f"the checkpoint comes from Kafka cluster {clusters[0]!r}; "
            f"the broker is cluster {clusters[1]!r}"
        )
    if source is not None:
        for topic, count in sorted(source.partitions.items()):
            now = view.partitions.get(topic)
            if now is not None and now != count:
                problems.append(
                    f"topic {topic} had {count} partition(s) at the checkpoint and has {now} now"
                )
    missing = sorted({t for t, _ in checkpoint.offsets if t not in view.partitions})
    problems += [f"checkpointed topic {topic} does not exist" for topic in missing]
    for (topic, partition), offset in sorted(checkpoint.offsets.items()):
        count = view.partitions.get(topic)
        if count is None:
            continue
        if partition >= count:
            problems.append(
                f"checkpointed partition {topic}[{partition}] does not exist "
                f"(the topic has {count} partition(s))"
            )
        else:
            end = view.ends.get((topic, partition))
            if end is not None and offset > end:
                problems.append(
                    f"checkpointed offset {offset} of {topic}[{partition}] is beyond the "
                    f"partition's end ({end})"
                )
    return problems


def refusal(problems: list[str], location: str, group_id: str, brokers: str) -> ResumeRefused:
    """The error an operator sees: what is wrong, where, and the ways forward."""
    lines = [
        f"refusing to resume consumer group {group_id!r} on {brokers}:",
        *(f"  - {p}" for p in problems),
        f"checkpoints looked for in: {location}",
        "ways forward:",
        "  - point --storage-path (CODEGEN_METRICS_PIPELINE__STORAGE_PATH) at this group's "
        "checkpoints, or --instance at the instance that wrote them;",
        "  - use another --group-id to run a separate pipeline;",
        "  - --reset-state (CODEGEN_METRICS_PIPELINE__RESET_STATE=true) to start over from the "
        "earliest retained offsets with empty state (existing checkpoints are set aside).",
    ]
    return ResumeRefused("\n".join(lines))


def group_needs_reset(what: str, attempt: int, checkpoint: Checkpoint | None, asked: bool) -> bool:
    """Whether to delete the consumer group (and commit the checkpoint's offsets to the new one)
    before the ingest actors join it.

    The checkpoint, not the group, says where to resume, and commits only ever follow
    checkpoints, so a group rebuilt from it loses nothing. It is rebuilt when asked (the
    supervisor saw it stuck), on every restore and retry (the consumers just killed may have
    left mid-join), and on a start that resumes a checkpoint: when a group's leader leaves while
    it rebalances (two members stopping together), Tansu 0.6 keeps it as the leader, and every
    later join waits for its assignment, which never comes (two consumers rejoining a group both
    had left: 6 of 16 restarts stuck over 40 s; with the group reset first, 0 of 20). A real Kafka
    refuses to delete a group while members remain, which is harmless. A first start (no
    checkpoint) has a group with nothing committed, or it would have been refused."""
    return asked or what == "restore" or attempt > 1 or checkpoint is not None

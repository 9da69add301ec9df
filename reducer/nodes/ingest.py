"""IngestDispatcher: an ingest actor's decisions, without Ray or Kafka.

Data path of an ingest actor (its consuming thread, actors/ingest_loop.py, does the I/O):

1. consume up to ``batch_limit`` messages (``batch_size``, fewer when messages are large);
   ``plan`` sets aside oversized ones as dead letters,
   tracks partition ends (librdkafka's partition EOF) and positions, and routes the raw messages
   by workflow_id hash (found without decoding, see routing.py) to the window actors;
2. ``batches`` builds one ``WindowBatch`` per window actor (empty ones too: they carry partition
   progress for the watermark), so only bytes cross the Ray boundary;
3. when every window actor has applied a batch, ``settle`` turns what they could not apply into
   dead letters (or late events) naming the source topic, partition and offset, and counts;
4. once it has read to the end of every assigned partition after being behind, ``caught_up``
   says so: the shell then asks the coordinator to publish without waiting for its next tick;
5. offsets are committed only at a checkpoint barrier (``CheckpointGate``): the coordinator
   pauses every ingest actor, each drains its in-flight batches and reports its position; once
   the checkpoint is written each commits exactly the checkpointed offsets of its partitions.

Replays (after a rebalance or a recovery) are harmless: window actors drop event ids they have
already applied.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from models.dead_letter import DeadLetter, DeadLetterCategory
from reducer.nodes.messages import Applied, SourceRange, WindowBatch
from reducer.nodes.quarantine import Offset
from reducer.nodes.routing import route_messages
from reducer.nodes.stats import IngestStats

TopicPartition = tuple[str, int]
BATCH_BYTES = 4 * 1024 * 1024
"""What a consumed batch should hold at most, in message bytes, whatever ``batch_size`` says:
a batch is in memory (and in flight, ``max_batches_in_flight`` times) at once, and below Ray's
inline limit (actors/ray_env.py) it crosses to the window actors without the object store."""


class Message(Protocol):
    """What the dispatcher reads of a consumed message (confluent_kafka.Message has it)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def error(self) -> Any: ...


def label(tp: TopicPartition) -> str:
    return f"{tp[0]}[{tp[1]}]"


@dataclass(slots=True)
class Dispatch:
    """One consumed batch, routed: per window actor its messages (kept to dead-letter by
    position), their bytes and their source index; every partition the batch read."""

    parts: list[list[Message]]
    values: list[list[bytes]]
    origins: list[list[int]]
    sources: list[SourceRange]
    dead_letters: list[tuple[Message, DeadLetter]] = field(default_factory=list)


class IngestDispatcher:
    """Routing, size checks, offsets and counters of one ingest actor (index ``index``)."""

    def __init__(
        self,
        index: int,
        windows: int,
        max_message_bytes: int,
        eof_code: int,
        start_offsets: dict[TopicPartition, int] | None = None,
        careful: frozenset[Offset] = frozenset(),
        quarantined: dict[Offset, int] | None = None,
    ) -> None:
        self.index = index
        self.careful = careful
        """Offsets to send alone (reducer/nodes/quarantine.py)."""
        self.quarantined = dict(quarantined or {})
        """Offsets to dead-letter unread, with the window-actor deaths they caused."""
        self.source = f"ingest-{index}"
        self.windows = windows
        self.max_message_bytes = max_message_bytes
        self.eof_code = eof_code
        self.start_offsets = dict(start_offsets or {})
        """Restoring: where to read each partition from (the checkpoint's offsets), until the
        first commit makes the group's committed offsets at least these."""
        self.assigned: list[TopicPartition] = []
        self.position: dict[TopicPartition, int] = {}
        """Next offset to read per assigned partition: what a checkpoint records."""
        self.drained: dict[TopicPartition, int] = {}
        """Assigned partitions read to the end of the log (partition EOF): the end offset
        then. Reported as drained only while nothing past it has been fetched."""
        self.known: list[TopicPartition] = []
        """Every partition of the input topics (refreshed from metadata by the shell)."""
        self.sequence = 0
        self.message_bytes = 0.0
        """Mean size of the messages of the last batch (``batch_limit``)."""
        self.behind = False
        """A consume returned a full batch since the last catch-up: there was a backlog."""
        self.counts = IngestStats(index=index)
        self._rejects: Counter[str] = Counter()
        self._by_type: Counter[str] = Counter()

    # -- consuming -----------------------------------------------------------------------------

    def plan(self, messages: Sequence[Message]) -> Dispatch | None:
        """Route one consumed batch; None when it held no message to send."""
        limit = self.max_message_bytes
        kept: list[Message] = []
        values: list[bytes] = []
        ranges: dict[TopicPartition, list[int]] = {}
        dead: list[tuple[Message, DeadLetter]] = []
        for message in messages:
            key = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == self.eof_code:
                    self.drained[key] = message.offset()
                else:
                    self.counts.consumer_errors += 1
                continue
            self.drained.pop(key, None)
            offset = message.offset()
            ranges.setdefault(key, [offset, offset])[1] = offset
            self.position[key] = offset + 1
            value = message.value() or b""
            deaths = self.quarantined.get((*key, offset)) if self.quarantined else None
            if deaths is not None:
                reason = f"a window actor died {deaths} times with this message in flight"
                category = DeadLetterCategory.PROCESSING_ERROR
                dead.append((message, self._letter(message, category, reason)))
                continue
            if len(value) > limit:
                reason = f"message of {len(value)} bytes exceeds {limit}"
                dead.append((message, self._letter(message, DeadLetterCategory.OVERSIZED, reason)))
                continue
            kept.append(message)
            values.append(value)
        self.counts.messages_in += len(kept) + len(dead)
        if kept or dead:
            size = sum(map(len, values)) + sum(len(m.value() or b"") for m, _ in dead)
            self.message_bytes = size / (len(kept) + len(dead))
        if not ranges:
            return None
        source_of = {key: index for index, key in enumerate(ranges)}
        sources = [SourceRange(t, p, first, last) for (t, p), (first, last) in ranges.items()]
        origins = [source_of[(m.topic(), m.partition())] for m in kept]
        routes = route_messages(values, self.windows)
        self.counts.batches += 1
        return Dispatch(
            parts=[[kept[p] for p in positions] for positions in routes],
            values=[[values[p] for p in positions] for positions in routes],
            origins=[[origins[p] for p in positions] for positions in routes],
            sources=sources,
            dead_letters=dead,
        )

    def batch_limit(self, batch_size: int) -> int:
        """How many messages to consume next: ``batch_size``, or fewer when the last batch's
        messages were large, so a batch holds about ``BATCH_BYTES`` (the simulated fleet's
        415-byte events: 10,000; a flood of 1 MB messages: 4)."""
        if self.message_bytes <= 0:
            return batch_size
        return max(1, min(batch_size, int(BATCH_BYTES / self.message_bytes)))

    def caught_up(
        self, consumed: int, batch_size: int, at_end: Callable[[], list[TopicPartition]]
    ) -> bool:
        """True once per backlog: when a consume returns less than a full batch, after one that
        was full, and ``at_end()`` (of ``self.drained``, the partitions still at their end) holds
        every assigned partition. A stream below capacity never fills a batch, so it never
        triggers an early publish: those ticks come only after a backlog is read."""
        if consumed >= batch_size:
            self.behind = True
            return False
        if not self.behind or not self.assigned or len(self.drained) < len(self.assigned):
            return False
        if set(self.assigned) <= set(at_end()):
            self.behind = False
            return True
        return False

    def split(self, messages: Sequence[Message]) -> list[tuple[list[Message], bool]]:
        """The consumed messages as (chunk, alone) in order: each suspect of the quarantine in
        a chunk of its own, to be sent with nothing else in flight."""
        if not self.careful:
            return [(list(messages), False)]
        chunks: list[tuple[list[Message], bool]] = []
        run: list[Message] = []
        for message in messages:
            if (message.topic(), message.partition(), message.offset()) in self.careful:
                if run:
                    chunks.append((run, False))
                    run = []
                chunks.append(([message], True))
            else:
                run.append(message)
        if run:
            chunks.append((run, False))
        return chunks

    def in_flight(self, dispatches: Sequence[Dispatch], windows: Sequence[int]) -> list[Offset]:
        """Offsets of the messages these dispatches route to window actors ``windows``."""
        return [
            (m.topic(), m.partition(), m.offset())
            for dispatch in dispatches
            for j in windows
            if j < len(dispatch.parts)
            for m in dispatch.parts[j]
        ]

    def heartbeat(self) -> Dispatch:
        """An empty batch for every window actor: "polled, found nothing" lets quiet windows
        close."""
        empty: list[list[Any]] = [[] for _ in range(self.windows)]
        return Dispatch(parts=empty, values=empty, origins=empty, sources=[])

    def batches(self, dispatch: Dispatch, drained: list[TopicPartition]) -> list[WindowBatch]:
        """One WindowBatch per window actor. ``drained``: of ``self.drained``, the partitions the
        fetcher has seen nothing past since (the shell asks librdkafka)."""
        self.sequence += 1
        batch_id = (self.index, self.sequence)
        assigned = list(self.assigned)
        return [
            WindowBatch(batch_id, values, origins, dispatch.sources, assigned, self.known, drained)
            for values, origins in zip(dispatch.values, dispatch.origins, strict=True)
        ]

    def settle(
        self, parts: list[list[Message]], results: list[Applied]
    ) -> tuple[list[tuple[Message, DeadLetter]], Counter[str]]:
        """Count what the window actors did with a batch. Returns the messages to set aside,
        with why (category ``late`` goes to the late-events topic, the rest to the dead-letter
        topic), and the batch's valid events by type."""
        out: list[tuple[Message, DeadLetter]] = []
        by_type: Counter[str] = Counter()
        for part, applied in zip(parts, results, strict=True):
            self.counts.duplicates_dropped += applied.duplicates
            by_type.update(applied.events_by_type)
            for position, category, reason in applied.rejects:
                out.append((part[position], self._letter(part[position], category, reason)))
            for position, reason in applied.late:
                late = self._letter(part[position], DeadLetterCategory.LATE, reason)
                out.append((part[position], late))
        self.counts.events_in += by_type.total()
        self._by_type.update(by_type)
        return out, by_type

    def count_set_aside(self, letter: DeadLetter) -> None:
        """A dead letter (or late event) was handed to the producer."""
        if letter.category == DeadLetterCategory.LATE:
            self.counts.events_late += 1
        else:
            self.counts.events_rejected += 1
            self._rejects[letter.category] += 1

    def count_unwritten(self, letter: DeadLetter) -> None:
        """The producer refused a dead letter (or late event) for good; the shell logged where
        it was read, so it stays findable in its source topic."""
        self.counts.set_aside_failures += 1

    def _letter(self, message: Message, category: str, reason: str) -> DeadLetter:
        return DeadLetter(
            category, reason, self.source, message.topic(), message.partition(), message.offset()
        )

    # -- rebalances and commits ----------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Partitions assigned to us; returns where to read those the checkpoint has offsets
        for (restoring reads from the checkpoint, not the group's commits)."""
        for key in partitions:  # unknown until its first fetch reaches the end
            self.drained.pop(key, None)
        self.assigned = sorted({*self.assigned, *partitions})
        self.counts.rebalances += 1
        return {tp: self.start_offsets[tp] for tp in partitions if tp in self.start_offsets}

    def revoke(self, partitions: list[TopicPartition]) -> None:
        revoked = set(partitions)
        self.assigned = [tp for tp in self.assigned if tp not in revoked]
        for key in revoked:
            self.drained.pop(key, None)
            self.position.pop(key, None)

    def commit_share(self, commit: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Of a checkpoint's offsets, those of our partitions (what we commit)."""
        mine = set(self.assigned)
        self.start_offsets = {}  # committed offsets are now at least the checkpoint's
        share = {tp: offset for tp, offset in commit.items() if tp in mine}
        if share:
            self.counts.commits += 1
        return share

    def stats(self, batches_in_flight: int) -> IngestStats:
        return replace(
            self.counts,
            rejects_by_reason=dict(self._rejects),
            events_by_type=dict(self._by_type),
            batches_in_flight=batches_in_flight,
            assigned=[label(tp) for tp in self.assigned],
            partitions=[label(tp) for tp in self.known],
            drained=[label(tp) for tp in sorted(self.drained)],
        )


class CheckpointGate:
    """The ingest side of a checkpoint barrier, between the coordinator's calls and the
    consuming thread.

    The coordinator calls ``pause`` (returns once the loop has drained and holds), then
    ``resume`` with the offsets to commit. The loop checks ``requested`` between batches and
    calls ``hold`` there, which returns those offsets (None when the checkpoint failed)."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._held = threading.Event()
        self._resumed = threading.Event()
        self._commit: dict[TopicPartition, int] | None = None

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def pause(self, timeout: float) -> bool:
        """Ask the loop to hold; False (and the request withdrawn) if it did not in time."""
        self._resumed.clear()
        self._requested.set()
        if self._held.wait(timeout):
            return True
        self._requested.clear()
        return False

    def hold(self, timeout: float) -> dict[TopicPartition, int] | None:
        """Loop side: report held, wait for ``resume``; the offsets to commit."""
        self._held.set()
        self._resumed.wait(timeout)
        self._held.clear()
        self._requested.clear()
        commit, self._commit = self._commit, None
        return commit

    def resume(self, commit: dict[TopicPartition, int] | None) -> None:
        self._commit = commit
        self._requested.clear()
        self._resumed.set()

    def release(self) -> None:
        """Loop side, on exit: never leave a coordinator waiting on a loop that is gone."""
        self._held.set()
        self._resumed.set()

"""KafkaIngestActor: consume in batches, decode, fan out to window actors.

Data path (the one place it is written down):
1. consume up to ``batch_size`` messages; dead-letter oversized ones;
2. route the raw messages by workflow_id hash (found without decoding, see actors/routing.py) and
   send every window actor one call for the batch (empty sub-batches too: they carry partition
   progress for the watermark). Window actors decode, so decoding spreads over their cores and
   only bytes cross the Ray boundary;
3. keep up to ``max_batches_in_flight`` batches outstanding (backpressure beyond that); when a
   batch is applied, dead-letter what its window actors could not decode (or found stamped too
   far in the future) and send events too late for their window to the late-events topic, each
   with headers naming the reason, source topic, partition and offset;
5. offsets are committed only at a checkpoint barrier: the coordinator pauses every ingest actor,
   each drains its in-flight batches and reports its position; after the checkpoint is written
   the coordinator resumes them and each commits exactly the checkpointed offsets.
Replays (after a rebalance or a recovery) are harmless: window actors drop event ids they have
already applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import ray
from ray.util import metrics

from actors import kafka
from actors.batches import Applied, SourceRange, WindowBatch
from actors.collector import collector_stats, settle_collector
from actors.routing import route_messages
from models.settings import KafkaSettings, PipelineSettings

log = logging.getLogger(__name__)
PAUSE_TIMEOUT_S = 60.0
HEARTBEAT_S = 1.0
TOPOLOGY_REFRESH_S = 30.0
LEAVE_TIMEOUT_S = 5.0
GROUP_STATS_MS = 5000
"""How often librdkafka reports its consumer-group state (shown in ``stats()["group"]``)."""

TopicPartition = tuple[str, int]


@dataclass
class _InFlight:
    refs: list[Any]
    parts: list[list[Any]]
    """Per window actor, the source messages of its values (to dead-letter by position)."""
    began: float


@ray.remote
class KafkaIngestActor:
    def __init__(
        self,
        index: int,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        window_actors: list[Any],
        start_offsets: dict[TopicPartition, int] | None = None,
    ) -> None:
        self.index = index
        self.kafka = kafka_settings
        self.pipeline = pipeline
        self.windows = window_actors
        self.start_offsets = dict(start_offsets or {})
        self.inflight: deque[_InFlight] = deque()
        self.assigned: list[TopicPartition] = []
        self.position: dict[TopicPartition, int] = {}
        self.sequence = 0
        self._last_sent = 0.0
        self.known: list[TopicPartition] = []
        """Every partition of the input topics (refreshed from metadata)."""
        self._known_at = -TOPOLOGY_REFRESH_S
        self._drained: dict[TopicPartition, int] = {}
        """Assigned partitions read to the end of the log (librdkafka's partition EOF): the end
        offset then. Reported as drained only while nothing past it has been fetched."""
        self.counters: Counter[str] = Counter()
        self.rejects_by_reason: Counter[str] = Counter()
        self.events_by_type: Counter[str] = Counter()
        self.last_poll: float | None = None
        self.group: dict[str, Any] = {}
        """librdkafka's view of our group membership (join state, rebalances, assignment size):
        why an actor without partitions has none."""
        self.error: str | None = None
        self._stop = threading.Event()
        self._abandon = False
        """Leaving for a rebuild: in-flight batches no longer matter (see ``leave``)."""
        self._pause = threading.Event()
        self._paused = threading.Event()
        self._resume = threading.Event()
        self._commit_on_resume: dict[TopicPartition, int] | None = None
        self._thread: threading.Thread | None = None
        self.consumer: Any = None
        self.producer: Any = None
        # Exported to the Ray dashboard's metrics views.
        self.metric_events = metrics.Counter(
            "codegen_metrics_ingest_events", "Events decoded, by type", ("actor", "event_type")
        )
        self.metric_rejects = metrics.Counter(
            "codegen_metrics_ingest_rejects", "Messages dead-lettered", ("actor",)
        )
        self.metric_batch_ms = metrics.Histogram(
            "codegen_metrics_ingest_batch_latency_ms",
            "From consume to every window actor having applied the batch",
            [5, 20, 100, 500, 2000, 10000],
            ("actor",),
        )
        for metric in (self.metric_events, self.metric_rejects, self.metric_batch_ms):
            metric.set_default_tags({"actor": f"ingest-{index}"})
        settle_collector(pipeline.gc_young_threshold)

    # -- lifecycle (called by the driver and the coordinator) ---------------------------------

    def start(self) -> bool:
        # Partition EOF events tell window actors which partitions have no backlog left.
        self.consumer = kafka.make_consumer(
            self.kafka,
            **{
                "enable.partition.eof": True,
                "statistics.interval.ms": GROUP_STATS_MS,
                "stats_cb": self._on_client_stats,
            },
        )
        self.producer = kafka.make_producer(self.kafka)
        self.consumer.subscribe(
            self.kafka.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.index}", daemon=True)
        self._thread.start()
        return True

    def barrier(self) -> dict[TopicPartition, int]:
        """Pause consuming, drain in-flight batches, return the position reached."""
        self._resume.clear()
        self._pause.set()
        if not self._paused.wait(PAUSE_TIMEOUT_S):
            self._pause.clear()
            raise TimeoutError(f"ingest-{self.index} did not pause")
        if self.error:
            raise RuntimeError(f"ingest-{self.index} failed: {self.error}")
        return dict(self.position)

    def resume(self, commit: dict[TopicPartition, int] | None, final: bool = False) -> bool:
        """Continue after a barrier; commit ``commit``'s offsets of our partitions first.
        ``final``: stop after committing (clean shutdown)."""
        self._commit_on_resume = commit
        if final:
            self._stop.set()
        self._pause.clear()
        self._resume.set()
        return True

    def stop(self) -> dict[str, Any]:
        """Stop consuming, drain in-flight batches, leave the group. Commits happen only at
        checkpoints: a clean shutdown stops through the coordinator's final checkpoint."""
        self._stop.set()
        self._resume.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        return self.stats()

    def leave(self) -> bool:
        """Leave the consumer group now, abandoning in-flight batches: the pipeline is being
        rebuilt from its checkpoint, so their results no longer matter. A consumer killed
        without leaving stays a member until its session times out, and the broker may make
        it the leader of the next rebalance meanwhile (on Tansu that can strand the group:
        see the README's reliability section). True when the consumer is closed."""
        self._abandon = True
        self._stop.set()
        self._resume.set()
        if self._thread is not None:
            self._thread.join(timeout=LEAVE_TIMEOUT_S)
        return self._thread is None or not self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "node_id": ray.get_runtime_context().get_node_id(),
            **self.counters,
            "rejects_by_reason": dict(self.rejects_by_reason),
            "events_by_type": dict(self.events_by_type),
            "batches_in_flight": len(self.inflight),
            "assigned": [f"{t}[{p}]" for t, p in self.assigned],
            "partitions": [f"{t}[{p}]" for t, p in self.known],
            "drained": [f"{t}[{p}]" for t, p in sorted(self._drained)],
            "seconds_since_poll": None if self.last_poll is None else time.time() - self.last_poll,
            "running": self._thread is not None and self._thread.is_alive(),
            "paused": self._paused.is_set(),
            "group": self.group,
            "gc": collector_stats(),
            "error": self.error,
        }

    def _on_client_stats(self, report: str) -> None:
        self.group = kafka.group_state(report)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() - self._known_at >= TOPOLOGY_REFRESH_S:
                    self._refresh_known()
                if self._pause.is_set():
                    self._hold()
                    continue
                messages = self.consumer.consume(self.pipeline.batch_size, timeout=0.25)
                self.last_poll = time.time()
                sent = self._dispatch(messages) if messages else False
                if not sent and self.assigned and self.last_poll - self._last_sent >= HEARTBEAT_S:
                    # "polled, found nothing": lets quiet windows close
                    empty = [[] for _ in self.windows]
                    self._send(empty, empty, empty, [])
                self._reap(block=False)
            if not self._abandon:
                self._drain()
        except Exception as exc:  # the actor stays up to report it; offsets stay uncommitted
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("ingest-%d stopped", self.index)
        finally:
            self._paused.set()  # never leave a barrier waiting on a dead loop
            try:
                self.producer.flush(1 if self._abandon else 10)
                kafka.leave_and_close(self.consumer, 1 if self._abandon else 5)
            except Exception:  # pragma: no cover - best effort on the way out
                log.exception("ingest-%d close failed", self.index)

    def _refresh_known(self) -> None:
        self._known_at = time.monotonic()
        try:
            self.known = kafka.topic_partitions(self.consumer, self.kafka.input_topics)
        except Exception as exc:  # keep the last known list; retried at the next refresh
            log.warning("ingest-%d: topic metadata unavailable: %s", self.index, exc)

    def _hold(self) -> None:
        """At a barrier: drain, report paused, wait for resume, commit the checkpoint."""
        self._drain()
        self.producer.flush(10)
        self._paused.set()
        self._resume.wait(PAUSE_TIMEOUT_S)
        self._paused.clear()
        self._pause.clear()
        commit, self._commit_on_resume = self._commit_on_resume, None
        if commit:
            mine = {tp: o for tp, o in commit.items() if tp in set(self.assigned)}
            if mine:
                kafka.commit_offsets(self.consumer, mine)
                self.counters["commits"] += 1
            self.start_offsets = {}  # committed offsets are now at least the checkpoint's

    def _dispatch(self, messages: list[Any]) -> bool:
        """Route and send one consumed batch; False when it held no message to send."""
        limit = self.pipeline.max_message_bytes
        kept: list[Any] = []
        values: list[bytes] = []
        ranges: dict[TopicPartition, list[int]] = {}
        oversized = 0
        for message in messages:
            key = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == kafka.PARTITION_EOF:
                    self._drained[key] = message.offset()
                else:
                    self.counters["consumer_errors"] += 1
                continue
            self._drained.pop(key, None)
            ranges.setdefault(key, [message.offset(), message.offset()])[1] = message.offset()
            self.position[key] = message.offset() + 1
            value = message.value() or b""
            if len(value) > limit:
                reason = f"message of {len(value)} bytes exceeds {limit}"
                self._dead_letter(message, "oversized", reason)
                oversized += 1
                continue
            kept.append(message)
            values.append(value)
        self.counters["messages_in"] += len(kept) + oversized
        if not ranges:
            return False
        source_of = {key: index for index, key in enumerate(ranges)}
        sources = [SourceRange(t, p, first, last) for (t, p), (first, last) in ranges.items()]
        origins = [source_of[(m.topic(), m.partition())] for m in kept]
        routes = route_messages(values, len(self.windows))
        self._send(
            [[kept[p] for p in positions] for positions in routes],
            [[values[p] for p in positions] for positions in routes],
            [[origins[p] for p in positions] for positions in routes],
            sources,
        )
        self.counters["batches"] += 1
        return True

    def _send(
        self,
        parts: list[list[Any]],
        values: list[list[bytes]],
        origins: list[list[int]],
        sources: list[SourceRange],
    ) -> None:
        """One call per window actor (empty sub-batches too: they carry progress). ``parts`` are
        the messages (kept for dead-lettering by position), ``values`` and ``origins`` their
        bytes and source index, per window actor."""
        self.sequence += 1
        self._last_sent = time.time()
        drained = kafka.still_at_end(self.consumer, self._drained)
        assigned = list(self.assigned)
        batch_id = (self.index, self.sequence)
        refs = [
            window.apply.remote(
                WindowBatch(batch_id, value, origin, sources, assigned, self.known, drained)
            )
            for window, value, origin in zip(self.windows, values, origins, strict=True)
        ]
        self.inflight.append(_InFlight(refs, parts, time.monotonic()))
        while len(self.inflight) >= self.pipeline.max_batches_in_flight:
            self._reap(block=True)

    def _dead_letter(self, message: Any, category: str, reason: str, topic: str = "") -> None:
        """Route a message that will not be counted, with why; the dead-letter topic unless
        ``topic`` says otherwise (late events have their own)."""
        if topic:
            self.counters["events_late"] += 1
        else:
            self.rejects_by_reason[category] += 1
            self.counters["events_rejected"] += 1
        headers = [
            ("reason", reason.encode()),
            ("category", category.encode()),
            ("source_topic", message.topic().encode()),
            ("source_partition", str(message.partition()).encode()),
            ("source_offset", str(message.offset()).encode()),
        ]
        while True:
            try:
                self.producer.produce(
                    topic or self.kafka.dead_letter_topic,
                    value=message.value(),
                    key=message.key(),
                    headers=headers,
                )
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)
        if not topic:
            self.metric_rejects.inc()

    def _settle(self, batch: _InFlight) -> None:
        results: list[Applied] = ray.get(batch.refs)
        by_type: Counter[str] = Counter()
        for part, applied in zip(batch.parts, results, strict=True):
            self.counters["duplicates_dropped"] += applied.duplicates
            by_type.update(applied.events_by_type)
            for position, category, reason in applied.rejects:
                self._dead_letter(part[position], category, reason)
            for position, reason in applied.late:
                self._dead_letter(part[position], "late", reason, topic=self.kafka.late_topic)
        self.counters["events_in"] += by_type.total()
        self.events_by_type.update(by_type)
        for event_type, n in by_type.items():
            self.metric_events.inc(n, {"event_type": event_type})
        self.metric_batch_ms.observe((time.monotonic() - batch.began) * 1000)

    def _reap(self, block: bool) -> None:
        """Settle the oldest batches every window actor has applied, in order."""
        while self.inflight:
            batch = self.inflight[0]
            if not block:
                ready, _ = ray.wait(batch.refs, num_returns=len(batch.refs), timeout=0)
                if len(ready) < len(batch.refs):
                    break
            self._settle(batch)
            self.inflight.popleft()
            block = False

    def _drain(self) -> None:
        while self.inflight:
            self._settle(self.inflight.popleft())

    # -- rebalances (run inside consume(), on the loop thread) ---------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        new = {(p.topic, p.partition) for p in partitions}
        for key in new:  # unknown until its first fetch reaches the end
            self._drained.pop(key, None)
        self.assigned = sorted({*self.assigned, *new})
        self.counters["rebalances"] += 1
        if self.start_offsets:  # restoring: read from the checkpoint, not the group's commits
            for tp in partitions:
                offset = self.start_offsets.get((tp.topic, tp.partition))
                if offset is not None:
                    tp.offset = offset
            consumer.assign(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        if not self._abandon:
            self._drain()
        revoked = {(p.topic, p.partition) for p in partitions}
        self.assigned = [tp for tp in self.assigned if tp not in revoked]
        for key in revoked:
            self._drained.pop(key, None)
            self.position.pop(key, None)

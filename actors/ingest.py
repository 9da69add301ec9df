"""KafkaIngestActor: consume in batches, decode, fan out to window actors, commit when applied.

Commit order (the one place it is written down):
1. consume up to ``batch_size`` messages;
2. decode them with the core's batch decoder; dead-letter each reject with its reason;
3. route events by workflow_id hash and send every window actor one call for the batch (empty
   sub-batches too: they carry partition progress for the watermark);
4. keep up to ``max_batches_in_flight`` batches outstanding (backpressure beyond that);
5. when every window actor has applied a batch, and every earlier batch, commit its offsets.
On a rebalance the revoked partitions' batches are drained and committed before they move.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from datetime import datetime
from typing import Any

import ray

from actors import kafka
from actors.batches import SourceRange, WindowBatch
from actors.routing import route
from models.decode import decode_batch
from models.settings import KafkaSettings, PipelineSettings

log = logging.getLogger(__name__)


@ray.remote
class KafkaIngestActor:
    def __init__(
        self,
        index: int,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        window_actors: list[Any],
    ) -> None:
        self.index = index
        self.kafka = kafka_settings
        self.pipeline = pipeline
        self.windows = window_actors
        self.inflight: deque[tuple[list[Any], dict[tuple[str, int], int]]] = deque()
        self.assigned: list[tuple[str, int]] = []
        self.sequence = 0
        self.counters: Counter[str] = Counter()
        self.rejects_by_reason: Counter[str] = Counter()
        self.events_by_type: Counter[str] = Counter()
        self.last_poll: float | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consumer: Any = None
        self.dead_letters: Any = None

    # -- lifecycle (called by the driver) ----------------------------------------------------

    def start(self) -> bool:
        self.consumer = kafka.make_consumer(self.kafka)
        self.dead_letters = kafka.make_producer(self.kafka)
        self.consumer.subscribe(
            self.kafka.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.index}", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> dict[str, Any]:
        """Stop consuming, drain in-flight batches, commit, leave the group."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {
            "index": self.index,
            **self.counters,
            "rejects_by_reason": dict(self.rejects_by_reason),
            "events_by_type": dict(self.events_by_type),
            "batches_in_flight": len(self.inflight),
            "assigned": [f"{t}[{p}]" for t, p in self.assigned],
            "seconds_since_poll": None if self.last_poll is None else time.time() - self.last_poll,
            "running": self._thread is not None and self._thread.is_alive(),
            "error": self.error,
        }

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(self.pipeline.batch_size, timeout=0.25)
                self.last_poll = time.time()
                if messages:
                    self._dispatch(messages)
                self._reap(block=False)
            self._drain()
        except Exception as exc:  # the actor stays up to report it; offsets stay uncommitted
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("ingest-%d stopped", self.index)
        finally:
            try:
                self.dead_letters.flush(10)
                self.consumer.close()
            except Exception:  # pragma: no cover - best effort on the way out
                log.exception("ingest-%d close failed", self.index)

    def _dispatch(self, messages: list[Any]) -> None:
        values: list[bytes] = []
        origin: list[Any] = []
        next_offsets: dict[tuple[str, int], int] = {}
        ranges: dict[tuple[str, int], list[int]] = {}
        for message in messages:
            if message.error() is not None:
                self.counters["consumer_errors"] += 1
                continue
            key = (message.topic(), message.partition())
            next_offsets[key] = message.offset() + 1
            ranges.setdefault(key, [message.offset(), message.offset()])[1] = message.offset()
            values.append(message.value() or b"")
            origin.append(message)
        if not origin:
            return
        decoded = decode_batch(values)
        self.counters["messages_in"] += len(values)
        self.counters["events_in"] += len(decoded.events)
        self.events_by_type.update(event.event_type for event in decoded.events)
        if decoded.rejects:
            self._dead_letter(decoded.rejects, origin)
        max_time: dict[tuple[str, int], datetime] = {}
        for event, index in zip(decoded.events, decoded.indices, strict=True):
            message = origin[index]
            key = (message.topic(), message.partition())
            if key not in max_time or event.timestamp > max_time[key]:
                max_time[key] = event.timestamp
        sources = [
            SourceRange(topic, partition, first, last, max_time.get((topic, partition)))
            for (topic, partition), (first, last) in ranges.items()
        ]
        self.sequence += 1
        parts = route(decoded.events, len(self.windows))
        refs = [
            window.apply.remote(
                WindowBatch((self.index, self.sequence), part, sources, list(self.assigned))
            )
            for window, part in zip(self.windows, parts, strict=True)
        ]
        self.inflight.append((refs, next_offsets))
        self.counters["batches"] += 1
        while len(self.inflight) >= self.pipeline.max_batches_in_flight:
            self._reap(block=True)

    def _dead_letter(self, rejects: list[Any], origin: list[Any]) -> None:
        for reject in rejects:
            message = origin[reject.index]
            self.rejects_by_reason[reject.category] += 1
            headers = [
                ("reason", reject.reason.encode()),
                ("category", reject.category.encode()),
                ("source_topic", message.topic().encode()),
                ("source_partition", str(message.partition()).encode()),
                ("source_offset", str(message.offset()).encode()),
            ]
            self.dead_letters.produce(
                self.kafka.dead_letter_topic,
                value=message.value(),
                key=message.key(),
                headers=headers,
            )
        self.dead_letters.poll(0)
        self.counters["events_rejected"] += len(rejects)

    def _reap(self, block: bool) -> None:
        """Commit the oldest batches every window actor has applied, in order."""
        committable: dict[tuple[str, int], int] = {}
        while self.inflight:
            refs, offsets = self.inflight[0]
            if not block:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                if len(ready) < len(refs):
                    break
            late = sum(ray.get(refs))
            self.counters["events_late"] += late
            self.inflight.popleft()
            committable.update(offsets)
            block = False
        if committable:
            self._commit(committable, asynchronous=True)

    def _drain(self) -> None:
        committable: dict[tuple[str, int], int] = {}
        while self.inflight:
            refs, offsets = self.inflight.popleft()
            self.counters["events_late"] += sum(ray.get(refs))
            committable.update(offsets)
        if committable:
            self._commit(committable, asynchronous=False)

    def _commit(self, offsets: dict[tuple[str, int], int], asynchronous: bool) -> None:
        kafka.commit_offsets(self.consumer, offsets, asynchronous)
        self.counters["commits"] += 1

    # -- rebalances (run inside consume(), on the loop thread) ---------------------------------

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.assigned = sorted({*self.assigned, *((p.topic, p.partition) for p in partitions)})
        self.counters["rebalances"] += 1

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self._drain()
        revoked = {(p.topic, p.partition) for p in partitions}
        self.assigned = [tp for tp in self.assigned if tp not in revoked]

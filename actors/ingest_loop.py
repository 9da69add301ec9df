"""IngestLoop: the consuming thread of an ingest actor (actors/ingest.py).

Consume a batch, let the IngestDispatcher (reducer/nodes/ingest.py) route it, send one Ray call
per window actor, settle the answers (dead letters and late events to their topics), hold at a
checkpoint barrier and commit what it says; once a backlog is read to its end, let the batches
settle and call ``caught_up`` (the coordinator publishes then, not at its next tick). Every
decision is the dispatcher's; this class only moves data between Kafka, Ray and it, on one
thread, so the dispatcher is never shared.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from actors import kafka
from actors.inflight import InFlight, Sent
from actors.telemetry import IngestMetrics
from models.dead_letter import DeadLetter, DeadLetterCategory
from models.settings import KafkaSettings, PipelineSettings
from reducer.nodes.ingest import CheckpointGate, Dispatch, IngestDispatcher
from reducer.nodes.messages import Applied

log = logging.getLogger(__name__)
PAUSE_TIMEOUT_S = 60.0
HEARTBEAT_S = 1.0
TOPOLOGY_REFRESH_S = 30.0
GROUP_STATS_MS = 5000
"""How often librdkafka reports its consumer-group state (``IngestStats.group``)."""


class IngestLoop:
    def __init__(
        self,
        core: IngestDispatcher,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.core, self.kafka, self.pipeline = core, kafka_settings, pipeline
        self.windows: list[Any] = []
        self.caught_up = caught_up
        self.inflight = InFlight(pipeline.max_batches_in_flight, self._settle)
        self.gate = CheckpointGate()
        self.metrics = IngestMetrics.create(core.source)
        self.group: dict[str, Any] = {}
        self.lags: dict[str, int] = {}
        self.last_poll: float | None = None
        self.error: str | None = None
        self.stopping = threading.Event()
        self.abandon = False
        """Leaving for a rebuild: in-flight batches no longer matter."""
        self.thread: threading.Thread | None = None
        self.consumer: Any = None
        self.producer: Any = None

    def connect(self) -> None:
        """Create the clients and subscribe: the group join (seconds: Tansu answers after half
        the session timeout, Kafka after group.initial.rebalance.delay.ms) runs in librdkafka's
        threads while the rest of the graph starts; the assignment arrives at the first
        consume."""
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

    def start(self, window_actors: list[Any]) -> None:
        """Consume on a thread of our own (``connect`` first), sending to ``window_actors``."""
        self.windows = window_actors
        self.thread = threading.Thread(target=self._run, name=self.core.source, daemon=True)
        self.thread.start()

    def halt(self, abandon: bool = False, timeout: float | None = None) -> bool:
        """Stop the loop (a loop holding at a barrier stops without committing) and wait at
        most ``timeout``; True when it has ended."""
        self.abandon = self.abandon or abandon
        self.stopping.set()
        self.gate.resume(None)
        if self.thread is not None:
            self.thread.join(timeout=timeout)
        elif self.consumer is not None:  # connected, never started: leave the group
            kafka.leave_and_close(self.consumer, 1 if self.abandon else 5)
            self.consumer = None
        return not self.running

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def dispatches_in_flight(self) -> list[Dispatch]:
        return [sent.dispatch for sent in list(self.inflight.batches)]

    def _on_client_stats(self, report: str) -> None:
        parsed = json.loads(report)
        self.group = kafka.group_state(parsed)
        self.lags = kafka.consumer_lags(parsed)

    def _run(self) -> None:
        last_sent = known_at = -TOPOLOGY_REFRESH_S
        try:
            while not self.stopping.is_set():
                if time.monotonic() - known_at >= TOPOLOGY_REFRESH_S:
                    known_at = time.monotonic()
                    self._refresh_known()
                if self.gate.requested:
                    self._hold()
                    continue
                limit = self.core.batch_limit(self.pipeline.batch_size)
                messages = self.consumer.consume(limit, timeout=0.25)
                self.last_poll = now = time.time()
                for chunk, alone in self.core.split(messages) if messages else [([], False)]:
                    if alone:  # a quarantine suspect: nothing else in flight with it
                        self.inflight.drain()
                    dispatch = self.core.plan(chunk) if chunk else None
                    if dispatch is None and self.core.assigned and now - last_sent >= HEARTBEAT_S:
                        dispatch = self.core.heartbeat()
                    if dispatch is not None:
                        self._set_aside(dispatch.dead_letters)
                        self._send(dispatch)
                        last_sent = now
                    if alone:
                        self.inflight.drain()
                self.inflight.reap(block=False)
                if self.core.caught_up(len(messages), limit, self._at_end):
                    self.inflight.drain()  # applied before the coordinator collects
                    self.caught_up()
            if not self.abandon:
                self.inflight.drain()
        except Exception as exc:  # the actor stays up to report it; offsets stay uncommitted
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("%s stopped", self.core.source)
        finally:
            self.gate.release()
            try:
                self.producer.flush(1 if self.abandon else 10)
                kafka.leave_and_close(self.consumer, 1 if self.abandon else 5)
            except Exception:  # pragma: no cover - best effort on the way out
                log.exception("%s close failed", self.core.source)

    def _refresh_known(self) -> None:
        try:
            self.core.known = kafka.topic_partitions(self.consumer, self.kafka.input_topics)
        except Exception as exc:  # keep the last known list; retried at the next refresh
            log.warning("%s: topic metadata unavailable: %s", self.core.source, exc)

    def _hold(self) -> None:
        """At a barrier: drain, report held, wait for resume, commit the checkpoint."""
        self.inflight.drain()
        self.producer.flush(10)
        commit = self.gate.hold(PAUSE_TIMEOUT_S)
        if commit:
            share = self.core.commit_share(commit)
            if share:
                kafka.commit_offsets(self.consumer, share)

    def _at_end(self) -> list[tuple[str, int]]:
        return kafka.still_at_end(self.consumer, self.core.drained)

    def _send(self, dispatch: Dispatch) -> None:
        drained = self._at_end()
        batches = self.core.batches(dispatch, drained)
        self.inflight.add(
            [w.apply.remote(b) for w, b in zip(self.windows, batches, strict=True)], dispatch
        )

    def _set_aside(self, letters: list[tuple[Any, DeadLetter]]) -> None:
        """Produce dead letters (and late events, to their own topic)."""
        for message, letter in letters:
            late = letter.category == DeadLetterCategory.LATE
            topic = self.kafka.late_topic if late else self.kafka.dead_letter_topic
            key, value, headers = letter.record(
                message.key(), message.value(), self.kafka.producer_max_bytes
            )
            try:
                kafka.produce_waiting(self.producer, topic, key, value, headers)
            except kafka.KafkaException as exc:  # refused for good: never stop the loop for it
                self.core.count_unwritten(letter)
                log.error(
                    "%s: could not set aside %s[%s]@%s (%s): %s",
                    self.core.source,
                    letter.source_topic,
                    letter.source_partition,
                    letter.source_offset,
                    letter.category,
                    exc,
                )
                continue
            self.core.count_set_aside(letter)
            if not late:
                self.metrics.rejects.inc()

    def _settle(self, batch: Sent, results: list[Applied]) -> None:
        letters, by_type = self.core.settle(batch.dispatch.parts, results)
        self._set_aside(letters)
        for event_type, n in by_type.items():
            self.metrics.events.inc(n, {"event_type": event_type})
        self.metrics.batch_ms.observe((time.monotonic() - batch.began) * 1000)

    # -- rebalances (run inside consume(), on the loop thread) ---------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        seeks = self.core.assign([(p.topic, p.partition) for p in partitions])
        if seeks:
            for tp in partitions:
                tp.offset = seeks.get((tp.topic, tp.partition), tp.offset)
            consumer.assign(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        if not self.abandon:
            self.inflight.drain()
        self.core.revoke([(p.topic, p.partition) for p in partitions])

"""KafkaIngestActor: the Ray face of an ingest actor.

Its consuming thread is an IngestLoop (actors/ingest_loop.py) and every decision (routing, size
checks, offsets, what to dead-letter, the quarantine's suspects) is the IngestDispatcher's
(reducer/nodes/ingest.py, where the data path is written down). The methods here are what the
driver and the coordinator call: start, the checkpoint barrier, stop, leave, stats.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray

from actors import kafka
from actors.collector import collector_stats, settle_collector
from actors.ingest_loop import PAUSE_TIMEOUT_S, IngestLoop
from models.settings import KafkaSettings, PipelineSettings
from reducer.nodes.ingest import IngestDispatcher, TopicPartition
from reducer.nodes.quarantine import Offset
from reducer.nodes.stats import IngestStats

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 60.0
LEAVE_TIMEOUT_S = 5.0


@ray.remote
class KafkaIngestActor:
    def __init__(
        self,
        index: int,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        windows: int,
        start_offsets: dict[TopicPartition, int] | None = None,
        careful: frozenset[Offset] = frozenset(),
        quarantined: dict[Offset, int] | None = None,
    ) -> None:
        self.core = IngestDispatcher(
            index,
            windows,
            pipeline.max_message_bytes,
            kafka.PARTITION_EOF,
            start_offsets,
            careful,
            quarantined,
        )
        self.loop = IngestLoop(self.core, kafka_settings, pipeline, self._publish_soon)
        self.coordinator: Any = None
        self.loop.connect()  # join the group while the other actors start
        settle_collector(pipeline.gc_young_threshold)

    def start(self, window_actors: list[Any], coordinator: Any = None) -> bool:
        """Start consuming into ``window_actors`` (one per window index); ``coordinator`` is
        asked to publish as soon as a backlog has been read. Both are created after us: the
        group join, the longest step of a start, runs meanwhile."""
        if len(window_actors) != self.core.windows:
            raise ValueError(f"{len(window_actors)} window actors, expected {self.core.windows}")
        self.coordinator = coordinator
        self.loop.start(window_actors)
        return True

    def _publish_soon(self) -> None:
        """A backlog is read and applied: ask the coordinator to publish now (not waited for)."""
        if self.coordinator is None:
            return
        try:
            self.coordinator.publish_soon.remote()
        except Exception as exc:  # its next tick publishes all the same
            log.warning("%s: could not reach the coordinator: %s", self.core.source, exc)

    def barrier(self) -> dict[TopicPartition, int]:
        """Pause consuming, drain in-flight batches, return the position reached."""
        if not self.loop.gate.pause(PAUSE_TIMEOUT_S):
            raise TimeoutError(f"{self.core.source} did not pause")
        if self.loop.error:
            raise RuntimeError(f"{self.core.source} failed: {self.loop.error}")
        return dict(self.core.position)

    def resume(self, commit: dict[TopicPartition, int] | None, final: bool = False) -> bool:
        """Continue after a barrier, committing ``commit``'s offsets of our partitions first;
        ``final``: stop after committing (clean shutdown)."""
        if final:
            self.loop.stopping.set()
        self.loop.gate.resume(commit)
        return True

    def stop(self) -> IngestStats:
        """Stop consuming, drain in-flight batches, leave the group. Commits happen only at
        checkpoints: a clean shutdown stops through the coordinator's final checkpoint."""
        self.loop.halt(timeout=STOP_TIMEOUT_S)
        return self.stats()

    def leave(self) -> bool:
        """Leave the consumer group now, abandoning in-flight batches: the pipeline is being
        rebuilt from its checkpoint. A consumer killed without leaving stays a member until its
        session times out (on Tansu that can strand the group: see the README). True when the
        consumer is closed."""
        return self.loop.halt(abandon=True, timeout=LEAVE_TIMEOUT_S)

    def in_flight(self, windows: list[int]) -> list[Offset]:
        """Offsets of the messages sent to window actors ``windows`` and not yet settled: asked
        by the driver when those died (reducer/nodes/quarantine.py)."""
        return self.core.in_flight(self.loop.dispatches_in_flight(), windows)

    def stats(self) -> IngestStats:
        loop = self.loop
        stats = self.core.stats(len(loop.inflight))
        stats.seconds_since_poll = None if loop.last_poll is None else time.time() - loop.last_poll
        stats.running = loop.running
        stats.paused = loop.gate.held
        stats.group = loop.group
        stats.consumer_lag = loop.lags
        stats.error = loop.error
        stats.node_id = ray.get_runtime_context().get_node_id()
        stats.gc = collector_stats()
        return stats

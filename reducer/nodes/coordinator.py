"""TickPlanner: the coordinator's decisions, without Ray or Kafka.

Every tick the coordinator actor (actors/coordinator.py) collects each window actor's changes
and hands them to ``absorb``; ``plan`` turns the merged windows into publish intents (each asks
the intent executor to publish a ModelEventMetricsRecorded keyed by the stable window id), and
``commit`` records the ones the broker acknowledged. Finalised windows are released from the
window actors only after that.

Isolation: a window whose event cannot be built is set aside for the tick and counted
(``CoordinatorStats.windows_set_aside``); the shell does the same for one the broker refuses.
Both stay pending, so the next tick tries again; other windows, the commit and the checkpoint
carry on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from models.intents import ModelEventPublishIntent, ModelRetryPolicy
from models.metrics import ModelEventMetricsRecorded, ModelMetricsState
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.budget import event_budget, fit_to_budget
from reducer.nodes.checkpoint import Checkpoint, Source
from reducer.nodes.history import HistoryView
from reducer.nodes.messages import Collected
from reducer.nodes.stats import CoordinatorStats
from reducer.nodes.window import describe
from reducer.publication import PublicationBook, WindowUpdate

log = logging.getLogger(__name__)
CORRELATION_NAMESPACE = uuid.UUID("5d0c6a43-8f0e-4d39-9a55-3f3f6c1de0a1")
CREATED_BY = "coordinator"


def correlation_id(window_id: str) -> uuid.UUID:
    """Every revision of a window shares one correlation id, so consumers can follow it."""
    return uuid.uuid5(CORRELATION_NAMESPACE, window_id)


def build_intent(
    update: WindowUpdate,
    kafka_settings: KafkaSettings,
    pipeline: PipelineSettings,
    watermark: datetime | None,
    max_event_bytes: int | None = None,
) -> ModelEventPublishIntent:
    """The intent publishing ``update``; with ``max_event_bytes``, its event trimmed to fit
    (``reducer.budget.fit_to_budget``: breakdowns only, with ``breakdowns_truncated``)."""
    correlation = correlation_id(update.window_id)

    def build(metrics: ModelMetricsState) -> ModelEventMetricsRecorded:
        return ModelEventMetricsRecorded.from_state(
            metrics,
            correlation_id=correlation,
            window_id=update.window_id,
            revision=update.revision,
            is_final=update.is_final,
            watermark=watermark,
        )

    if max_event_bytes is None or update.state is None:
        event = build(update.metrics)
    else:
        event = fit_to_budget(update.state, update.metrics, build, max_event_bytes)
    return ModelEventPublishIntent(
        correlation_id=correlation,
        created_by=CREATED_BY,
        target_topic=kafka_settings.target_topic,
        target_key=update.window_id,
        target_event_type=event.event_type,
        target_event_payload=event.model_dump(mode="json"),
        retry_policy=ModelRetryPolicy(
            max_attempts=pipeline.publish_max_attempts,
            initial_backoff_ms=int(pipeline.publish_backoff_seconds * 1000),
            backoff_multiplier=pipeline.publish_backoff_multiplier,
        ),
    )


@dataclass(frozen=True, slots=True)
class Publication:
    """One window update to publish, and the intent that carries it."""

    update: WindowUpdate
    intent: ModelEventPublishIntent

    def record(self) -> tuple[bytes, bytes]:
        """(key, value) on the intent topic."""
        return self.intent.target_key.encode(), self.intent.model_dump_json().encode()


EARLY_TICK_GAP_S = 1.0
"""Least time from a tick's start to an early tick's: a stream that keeps filling and draining
batches asks at every drain, and each tick costs every window actor a collect."""


def tick_wait(since_tick: float, tick: float, early: bool = False) -> float:
    """Seconds until the next tick, ``since_tick`` after the last one started: at its period
    (``tick``), or when an ingest actor has asked (``early``), once ``EARLY_TICK_GAP_S`` (or the
    period, if shorter) has passed since the last start."""
    period = min(EARLY_TICK_GAP_S, tick) if early else tick
    return max(0.0, period - since_tick)


class TickPlanner:
    """The coordinator's book of windows, history, checkpoint position and counters."""

    def __init__(
        self,
        kafka_settings: KafkaSettings,
        pipeline: PipelineSettings,
        reducer: ReducerSettings,
        restored: Checkpoint | None = None,
        source: Source | None = None,
    ) -> None:
        self.kafka, self.pipeline = kafka_settings, pipeline
        self.source = source
        """Stamped on every checkpoint, so a restart can tell whether its offsets apply."""
        self.book = PublicationBook(reducer, tuple(pipeline.windows))
        self.budget = event_budget(kafka_settings.producer_max_bytes)
        """Bytes a published event may take (see reducer/budget.py)."""
        self.history = HistoryView(pipeline.windows, pipeline.history_size)
        self.synced = False
        """The book holds every window actor's changes so far (see ``absorb``)."""
        self.sequence = 0
        self.offsets: dict[tuple[str, int], int] = {}
        self.watermark: datetime | None = None
        self.counts = CoordinatorStats()
        if restored is not None:
            # A new epoch: everything published from here ranks above what came before.
            self.book.restore(restored.revisions, restored.epoch + 1)
            self.sequence = restored.sequence
            self.offsets = dict(restored.offsets)
            for payload in restored.history:
                self.history.remember(payload)

    # -- a tick --------------------------------------------------------------------------------

    def begin(self) -> bool:
        """A tick starts: whether to ask every window actor for its whole state. Deltas after
        the first tick; whole states on the first, and after an error (a collect whose answer
        was lost took its delta with it)."""
        full = not self.synced
        self.synced = False  # until this tick's answers are absorbed whole
        return full

    @staticmethod
    def needs_full(results: Sequence[Collected], full: bool) -> bool:
        """An actor that started over answers with its whole state unasked; then every actor
        must, since the book is rebuilt from whole states."""
        return not full and any(r.full is not None for r in results)

    def absorb(self, results: Sequence[Collected], full: bool) -> datetime | None:
        """Fold every window actor's answer into the book; returns the pipeline watermark (the
        slowest actor's; None while any actor has none)."""
        if full:
            self.book.reset()
        for result in results:
            if result.full is not None:
                self.book.absorb_whole(result.full)
            else:
                self.book.absorb_deltas(result.deltas)
        self.synced = True
        watermarks = [r.watermark for r in results]
        return None if any(w is None for w in watermarks) else min(watermarks)

    def plan(self, horizon: datetime | None) -> list[Publication]:
        """What to publish now; windows whose event cannot be built are set aside (counted,
        logged) and stay pending."""
        publications = []
        errors: list[tuple[str, Exception]] = []
        for update in self.book.plan(horizon, errors):
            try:
                intent = build_intent(update, self.kafka, self.pipeline, horizon, self.budget)
            except Exception as exc:
                errors.append((update.window_id, exc))
                continue
            publications.append(Publication(update, intent))
        for name, exc in errors:
            self.counts.windows_set_aside += 1
            log.error("window %s set aside: its event cannot be built: %s", name, describe(exc))
        return publications

    def set_aside(self, publication: Publication, reason: str) -> None:
        """The broker refused an intent: the window stays pending for the next tick."""
        self.counts.windows_set_aside += 1
        log.error("window %s set aside: %s", publication.update.window_id, reason)

    def commit(self, published: Sequence[Publication], horizon: datetime | None) -> None:
        """Record what the broker acknowledged."""
        self.book.commit([p.update for p in published])
        for publication in published:
            if publication.update.is_final:
                self.history.remember(publication.intent.target_event_payload)
        self.watermark = horizon
        self.counts.ticks += 1
        self.counts.intents_published += len(published)
        self.counts.finals_published += sum(p.update.is_final for p in published)

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(
        self, positions: Sequence[dict[tuple[str, int], int]], states: list[bytes], now: float
    ) -> Checkpoint:
        """The next checkpoint: the ingest actors' positions over the last checkpoint's offsets
        (a partition no actor reported keeps its offset), every window actor's state, the
        book's revisions and the history."""
        offsets = dict(self.offsets)
        for position in positions:
            offsets.update(position)
        return Checkpoint(
            sequence=self.sequence + 1,
            epoch=self.book.epoch,
            offsets=offsets,
            windows=states,
            revisions=self.book.revisions_by_id(),
            history=self.history.entries(),
            created_at=now,
            source=self.source,
        )

    def written(self, checkpoint: Checkpoint) -> None:
        self.sequence, self.offsets = checkpoint.sequence, checkpoint.offsets
        self.counts.checkpoints += 1

    def stats(self) -> CoordinatorStats:
        return replace(
            self.counts,
            open_windows=self.book.open_windows,
            watermark=self.watermark.isoformat() if self.watermark else None,
            epoch=self.book.epoch,
            checkpoint_sequence=self.sequence,
        )

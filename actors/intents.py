"""IntentExecutorActor: turn intents on the coordination topic into published domain events.

Each intent's payload is produced to its target topic with an idempotent producer. A failed write
is retried with exponential backoff (the intent's retry policy); an intent that still fails, or
that cannot be read, goes to the dead-letter topic with the reason. The intent's offset is
committed only after its target write (or its dead letter) is acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from typing import Any

import ray
from pydantic import ValidationError

from actors import kafka
from models.dead_letter import DeadLetter, DeadLetterCategory
from models.intents import ModelEventPublishIntent
from models.settings import KafkaSettings
from reducer.nodes.stats import ExecutorStats

log = logging.getLogger(__name__)
SOURCE = "intent-executor"


def _record(intent: ModelEventPublishIntent) -> tuple[str, bytes, bytes, list]:
    """(topic, key, value, headers) of an intent's target write."""
    value = json.dumps(intent.target_event_payload, separators=(",", ":")).encode()
    headers = [
        ("intent_id", str(intent.intent_id).encode()),
        ("correlation_id", str(intent.correlation_id).encode()),
        ("event_type", intent.target_event_type.encode()),
    ]
    return intent.target_topic, intent.target_key.encode(), value, headers


@ray.remote
class IntentExecutorActor:
    def __init__(self, kafka_settings: KafkaSettings, producer_overrides: dict | None = None):
        self.kafka = kafka_settings
        self.producer_overrides = producer_overrides or {}
        self.counts = ExecutorStats()
        self.last_poll: float | None = None
        self.last_message: float = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        self.consumer = kafka.make_consumer(
            self.kafka, group_id=f"{self.kafka.group_id}.intent-executor"
        )
        self.producer = kafka.make_producer(self.kafka, **self.producer_overrides)
        self.dead_letters = kafka.make_producer(self.kafka)
        self.consumer.subscribe([self.kafka.intent_topic])
        self._thread = threading.Thread(target=self._run, name="intent-executor", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(100, timeout=0.25)
                self.last_poll = time.time()
                good = [m for m in messages if m.error() is None]
                if good:
                    self.last_message = time.time()
                    self._execute(good)
        except Exception as exc:
            self.counts.error = f"{type(exc).__name__}: {exc}"
            log.exception("intent executor stopped")
        finally:
            kafka.leave_and_close(self.consumer)

    def _execute(self, messages: list[Any]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        intents: list[ModelEventPublishIntent] = []
        for message in messages:
            offsets[(message.topic(), message.partition())] = message.offset() + 1
            try:
                intents.append(ModelEventPublishIntent.model_validate_json(message.value() or b""))
            except ValidationError as exc:
                letter = self._letter(DeadLetterCategory.INVALID_INTENT, f"invalid intent: {exc}")
                self._dead_letter(message.value(), message.key(), letter, message)
                self.counts.invalid_intents += 1
        # First attempts together (one flush for the batch); failures retry one by one. The
        # producer is idempotent, so within a partition (one window's key) a write cannot be
        # acknowledged after an earlier one failed: a retried revision never lands after a newer
        # one of the same window.
        records = [_record(intent) for intent in intents]
        outcomes = kafka.produce_each(self.producer, records) if records else []
        for intent, record, failure in zip(intents, records, outcomes, strict=True):
            if failure is None:
                self.counts.published += 1
            else:
                self.counts.publish_failures += 1
                self._retry(intent, record, failure)
        kafka.commit_offsets(self.consumer, offsets)

    def _retry(self, intent: ModelEventPublishIntent, record: tuple, reason: str) -> None:
        """Attempts 2..max_attempts of one intent, with the policy's backoff before each."""
        policy = intent.retry_policy
        topic, key, value, headers = record
        for attempt in range(2, policy.max_attempts + 1):
            time.sleep(policy.backoff_seconds(attempt - 1))
            try:
                kafka.produce_batch(self.producer, topic, [(key, value)], headers=headers)
                self.counts.published += 1
                return
            except Exception as exc:  # delivery error or a rejected produce call
                reason = f"{type(exc).__name__}: {exc}"
                self.counts.publish_failures += 1
        reason = f"target write failed after {policy.max_attempts} attempts: {reason}"
        letter = self._letter(DeadLetterCategory.PUBLISH_FAILED, reason)
        self._dead_letter(intent.model_dump_json().encode(), intent.target_key.encode(), letter)

    @staticmethod
    def _letter(category: str, reason: str) -> DeadLetter:
        return DeadLetter(category, reason, SOURCE)

    def _dead_letter(
        self, value: bytes | None, key: bytes | None, letter: DeadLetter, message: Any = None
    ) -> None:
        """The intent's bytes to the dead-letter topic (models/dead_letter.py), with where it
        was read when it came from the intent topic."""
        if message is not None:
            letter = replace(
                letter,
                source_topic=message.topic(),
                source_partition=message.partition(),
                source_offset=message.offset(),
            )
        log.warning("intent dead-lettered: %s", letter.reason)
        key, value, headers = letter.record(key, value or b"", self.kafka.producer_max_bytes)
        kafka.produce_batch(
            self.dead_letters, self.kafka.dead_letter_topic, [(key, value)], headers=headers
        )
        self.counts.dead_lettered += 1

    def stop(self, expected_intents: int = 0, timeout: float = 30.0) -> ExecutorStats:
        """Execute at least ``expected_intents`` (what the coordinator sent), then keep going
        until the intent topic has been quiet for a second, then stop."""
        deadline = time.time() + timeout
        while (
            time.time() < deadline
            and self.counts.error is None
            and (self.counts.executed < expected_intents or time.time() - self.last_message < 1.0)
        ):
            time.sleep(0.05)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.stats()

    def stats(self) -> ExecutorStats:
        stats = replace(self.counts)
        stats.seconds_since_poll = None if self.last_poll is None else time.time() - self.last_poll
        return stats

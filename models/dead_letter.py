"""The one dead-letter format: why a message was set aside, and where it came from.

Every producer of dead letters (ingest actors for input that cannot be counted, the intent
executor for intents that cannot be published) writes the original bytes as the value, the
original key as the key, and these headers, so one consumer of the dead-letter topic reads them
all:

| header | value |
|---|---|
| ``category`` | one of ``DeadLetterCategory`` (stable, for alerts and dashboards) |
| ``reason`` | a human-readable explanation, at most ``MAX_REASON_BYTES`` bytes of UTF-8 |
| ``source`` | who set it aside: ``ingest-<i>``, ``window-<j>`` or ``intent-executor`` |
| ``source_topic``, ``source_partition``, ``source_offset`` | where it was read (absent if not) |
| ``original_bytes`` | the size of a value cut to fit (the whole one stays in its source) |

A dead letter must fit the producer's ``message.max.bytes`` too, or producing it fails, and
retried, fails forever: ``record`` cuts a value that would not fit (key and headers counted,
with a margin for the record's own overhead) and says so in ``original_bytes``.

Events too late for their window go to the late-events topic with the same headers and category
``late``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

MAX_REASON_BYTES = 1024
RECORD_OVERHEAD_BYTES = 4096
"""Kept free below the producer's limit for what a record adds beyond key, value and headers
(librdkafka counts the batch framing too)."""


class DeadLetterCategory(StrEnum):
    # Input that is not a valid event (models/decode.py).
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_EVENT_TYPE = "missing_event_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    NON_FINITE_NUMBER = "non_finite_number"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNDECODABLE = "undecodable"
    # Input that cannot be processed.
    OVERSIZED = "oversized"
    PROCESSING_ERROR = "processing_error"
    LATE = "late"
    # Output that cannot be published (intent executor).
    INVALID_INTENT = "invalid_intent"
    PUBLISH_FAILED = "publish_failed"


def truncate_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    data = reason.encode("utf-8", "replace")
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why one message was set aside, and where it came from."""

    category: str
    reason: str
    source: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    original_bytes: int | None = None
    """Set when the value was cut to fit the dead-letter topic."""

    def record(
        self, key: bytes | None, value: bytes | None, max_bytes: int
    ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """(key, value, headers) to produce, the value cut to fit ``max_bytes`` (the producer's
        ``message.max.bytes``) when it would not."""
        headers = self.headers()
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size + RECORD_OVERHEAD_BYTES <= max_bytes:
            return key, value, headers
        cut = replace(self, original_bytes=len(value or b""))
        headers = cut.headers()
        room = max_bytes - RECORD_OVERHEAD_BYTES - len(key or b"")
        room -= sum(len(k) + len(v) for k, v in headers)
        return key, (value or b"")[: max(room, 0)], headers

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("category", str(self.category).encode()),
            ("reason", truncate_reason(self.reason).encode("utf-8", "replace")),
            ("source", self.source.encode()),
        ]
        if self.source_topic is not None:
            headers.append(("source_topic", self.source_topic.encode()))
        if self.source_partition is not None:
            headers.append(("source_partition", str(self.source_partition).encode()))
        if self.source_offset is not None:
            headers.append(("source_offset", str(self.source_offset).encode()))
        if self.original_bytes is not None:
            headers.append(("original_bytes", str(self.original_bytes).encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes | None]] | None) -> DeadLetter:
        """Read back what ``headers`` wrote (for consumers of the topic, and tests)."""
        found = {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}

        def number(name: str) -> int | None:
            return int(found[name]) if name in found else None

        return cls(
            category=found.get("category", ""),
            reason=found.get("reason", ""),
            source=found.get("source", ""),
            source_topic=found.get("source_topic"),
            source_partition=number("source_partition"),
            source_offset=number("source_offset"),
            original_bytes=number("original_bytes"),
        )

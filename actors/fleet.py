"""Produce a simulated fleet into the input topics (the `simulate` command and the demo)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from actors import kafka
from models.settings import KafkaSettings

CHUNK = 500


def produce_events(
    settings: KafkaSettings,
    events: Iterable[dict[str, Any]],
    rate: float | None = None,
    stop: threading.Event | None = None,
    producer: Any = None,
) -> int:
    """Produce event dicts to their type's input topic, keyed by workflow_id.

    ``rate`` caps events per second (None: as fast as possible). Returns how many were produced.
    """
    producer = producer or kafka.make_producer(settings)
    began = time.monotonic()
    sent = 0
    pending: dict[str, list[tuple[bytes, bytes]]] = {}
    chunk = CHUNK if not rate else max(1, min(CHUNK, int(rate / 10)))  # ~10 flushes/s when paced

    def flush() -> None:
        for topic, messages in pending.items():
            kafka.produce_batch(producer, topic, messages)
        pending.clear()

    for event in events:
        if stop is not None and stop.is_set():
            break
        topic = settings.input_topic_for(str(event.get("event_type", "")))
        value = json.dumps(event, separators=(",", ":")).encode()
        pending.setdefault(topic, []).append((str(event.get("workflow_id", "")).encode(), value))
        sent += 1
        if sent % chunk == 0:
            flush()
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
    flush()
    return sent

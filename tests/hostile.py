"""Hostile messages: every way a message can fail to become an event, and the category each gets."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

#: category the pipeline must report -> how to make such a message from a valid event dict
HOSTILE_KINDS = (
    "invalid_json",
    "not_an_object",
    "unknown_event_type",
    "missing_event_type",
    "missing_field",
    "invalid_field",
    "non_finite_number",
    "oversized",
    "invalid_utf8",
    "random_bytes",
    "deeply_nested",
    "future_timestamp",
)


def hostile(kind: str, valid: dict, rng: random.Random, max_bytes: int) -> bytes:
    """One hostile message of ``kind`` derived from a valid event."""
    event = dict(valid)
    if kind == "invalid_json":
        return json.dumps(event).encode()[: rng.randrange(1, 40)]
    if kind == "not_an_object":
        return rng.choice([b"[1, 2, 3]", b"42", b'"text"', b"null", b"true"])
    if kind == "unknown_event_type":
        event["event_type"] = rng.choice(["CODEGEN_EXPLODED", "", "42"])
    elif kind == "missing_event_type":
        del event["event_type"]
    elif kind == "missing_field":
        del event["correlation_id"]
    elif kind == "invalid_field":
        event["workflow_id"] = "not-a-uuid"
    elif kind == "non_finite_number":
        text = json.dumps(event)
        field = {
            "CODEGEN_STARTED": None,
            "CODEGEN_STAGE_COMPLETED": "duration_seconds",
            "CODEGEN_COMPLETED": "total_duration_seconds",
            "CODEGEN_FAILED": "partial_duration_seconds",
        }[event["event_type"]]
        if field is None:
            return text.replace(
                '"prompt":', '"estimated_duration_seconds": NaN, "prompt":'
            ).encode()
        return json.dumps({**event, field: "__NF__"}).replace('"__NF__"', "Infinity").encode()
    elif kind == "oversized":
        event["padding"] = "x" * (max_bytes + 10)
    elif kind == "invalid_utf8":
        return json.dumps(event).encode()[:-2] + b"\xff\xfe" + b"}"
    elif kind == "random_bytes":
        return rng.randbytes(rng.randrange(1, 200))
    elif kind == "deeply_nested":
        depth = rng.randrange(500, 5000)
        return b'{"event_type": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "future_timestamp":
        event["timestamp"] = (datetime.now(UTC) + timedelta(days=rng.randrange(1, 400))).isoformat()
    return json.dumps(event).encode()


def hostile_stream(
    valid: list[dict], count: int, seed: int, max_bytes: int
) -> Iterator[tuple[str, bytes]]:
    """``count`` hostile messages as (kind, bytes), built from the valid events round-robin."""
    rng = random.Random(seed)
    for i in range(count):
        kind = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
        yield kind, hostile(kind, valid[i % len(valid)], rng, max_bytes)

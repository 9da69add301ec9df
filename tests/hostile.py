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
    # Values a buggy producer really emitted, valid JSON of a valid shape (models/bounds.py):
    "year_one",
    "huge_tokens",
    "huge_cost",
    "millisecond_timestamp",
    "unicode_event_type",
)
CATEGORY = {
    "random_bytes": None,  # whatever the bytes make
    "deeply_nested": "invalid_json",
    "year_one": "out_of_range",
    "huge_tokens": "out_of_range",
    "huge_cost": "out_of_range",
    "millisecond_timestamp": "invalid_field",
    "unicode_event_type": "unknown_event_type",
}
"""The dead-letter category of each kind, where it is not the kind's name."""


_COMPLETED = {
    "total_duration_seconds": 30.0,
    "generated_files": ["node.py"],
    "node_type": "effect",
    "service_name": "svc",
    "quality_score": 0.8,
    "primary_model": "model-a",
    "total_tokens": 1,
    "total_cost_usd": 0.01,
    "contract_yaml": "c",
    "node_module": "m",
    "models": [],
    "enums": [],
    "tests": [],
}
"""What a CODEGEN_COMPLETED needs beyond the common fields."""


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
    elif kind == "year_one":
        event["timestamp"] = "0001-01-01T00:30:00+01:00"
    elif kind == "huge_tokens":
        text = json.dumps({**event, "event_type": "CODEGEN_COMPLETED", **_COMPLETED})
        digits = max(20, min(4300, max_bytes - len(text) - 1))  # 4,300 where the limit allows
        return text.replace('"total_tokens": 1', '"total_tokens": ' + "9" * digits, 1).encode()
    elif kind == "huge_cost":
        event.update({**_COMPLETED, "event_type": "CODEGEN_COMPLETED", "total_cost_usd": 1e308})
    elif kind == "millisecond_timestamp":
        event["timestamp"] = int(datetime.now(UTC).timestamp() * 1000)
    elif kind == "unicode_event_type":
        event["event_type"] = "codegen_\u017ftarted"
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

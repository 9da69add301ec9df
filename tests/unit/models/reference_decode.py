"""A reference decoder written independently of models/decode.py and models/bounds.py: one
message at a time, ``json.loads`` and explicit checks, the event class chosen by hand, and the
domain bounds restated from the README as plain comparisons. The batch decoder must agree with
it on every message: the same events, indices, and reject categories and fields."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from models.events import EVENT_TYPES

# The README's bounds, written out again (not imported).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LARGEST_INT = 9_007_199_254_740_992  # 2**53
LARGEST_COMPLEXITY = 10.0**12
MAX_DEPTH = 200
"""pydantic's JSON parser refuses deeper nesting ("recursion limit exceeded")."""


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: the value may be 1,000 deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


@dataclass(frozen=True)
class Outcome:
    event: Any = None
    category: str | None = None
    fields: frozenset[str] = frozenset()
    """The fields a reject may name (the reason's text before the first colon): the field
    that failed validation, or every field out of its bounds."""


def decode(
    message: Any,
    now: float,
    skew: float = 300.0,
    max_duration: float = 7 * 86_400.0,
    max_cost: float = 10_000.0,
) -> Outcome:
    if isinstance(message, str):
        text = message
    elif isinstance(message, bytes | bytearray):
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            return Outcome(category="invalid_utf8")
    else:  # only bytes come from Kafka; anything else is refused as a whole
        return Outcome(category="invalid_field", fields=frozenset({"<root>"}))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # nesting too deep to parse is invalid JSON too
        return Outcome(category="invalid_json")
    if depth(data) > MAX_DEPTH:
        return Outcome(category="invalid_json")
    if type(data) is not dict:
        return Outcome(category="not_an_object")
    if "event_type" not in data:
        return Outcome(category="missing_event_type", fields=frozenset({"event_type"}))
    tag = data["event_type"]
    if isinstance(tag, str) and all(ord(c) < 128 for c in tag):
        tag = tag.upper()
    if not isinstance(tag, str) or tag not in EVENT_TYPES:
        return Outcome(category="unknown_event_type", fields=frozenset({"event_type"}))
    try:
        event = EVENT_TYPES[tag].model_validate({**data, "event_type": tag})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        category = {"missing": "missing_field", "finite_number": "non_finite_number"}.get(
            first["type"], "invalid_field"
        )
        return Outcome(category=category, fields=frozenset({field}))
    except RecursionError:
        return Outcome(category="undecodable")
    stamp = event.timestamp.timestamp()
    if stamp < EARLIEST:
        return Outcome(category="out_of_range", fields=frozenset({"timestamp"}))
    if stamp > now + skew:
        return Outcome(category="future_timestamp", fields=frozenset({"timestamp"}))
    out = set()
    for name in (
        "total_tokens",
        "retry_count",
        "retry_after_seconds",
        "estimated_duration_seconds",
    ):
        value = getattr(event, name, None)
        if value is not None and abs(value) > LARGEST_INT:
            out.add(name)
    for name in ("duration_seconds", "total_duration_seconds", "partial_duration_seconds"):
        value = getattr(event, name, None)
        if value is not None and value > max_duration:
            out.add(name)
    if getattr(event, "total_cost_usd", 0.0) > max_cost:
        out.add("total_cost_usd")
    complexity = getattr(event, "complexity_score", None)
    if complexity is not None and not math.fabs(complexity) <= LARGEST_COMPLEXITY:
        out.add("complexity_score")
    if out:
        return Outcome(category="out_of_range", fields=frozenset(out))
    return Outcome(event=event)

"""Raw message bytes to events, in batches, never raising for a bad message.

The fast path validates a whole batch with a single pydantic call (each message parsed as its own
JSON document, so no message can bleed into its neighbour). Each item is a left-to-right union of
the event and "anything": a message the event schema refuses comes back as itself instead of
failing the batch, and only those messages take the reference path (``_decode_tolerant``), one by
one, so each bad one gets its own reason and category.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, Json, TypeAdapter, ValidationError

from models.bounds import EventBounds
from models.events import (
    CodegenEvent,
    ModelEventCodegenCompleted,
    ModelEventCodegenFailed,
    ModelEventCodegenStageCompleted,
    ModelEventCodegenStarted,
)

MAX_REASON_LENGTH = 300
SCHEMA_REGISTRY_MAGIC = b"\x00"
_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")

_Event = Annotated[
    ModelEventCodegenStarted
    | ModelEventCodegenStageCompleted
    | ModelEventCodegenCompleted
    | ModelEventCodegenFailed,
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter[CodegenEvent] = TypeAdapter(_Event)


# Each item: the message as an event, or (left-to-right union) the message itself when the event
# schema refuses it, so one bad message never sends the whole batch down the slow path.
_FAST_BATCH: TypeAdapter[list[Any]] = TypeAdapter(
    list[Annotated[Json[_Event] | Any, Field(union_mode="left_to_right")]]
)


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that could not become an event: its position in the batch and why."""

    index: int
    reason: str
    category: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    events: list[CodegenEvent]
    indices: list[int]
    """Position in the input batch of each decoded event."""
    rejects: list[Reject]


def _describe(message: bytes | str, error: ValidationError) -> tuple[str, str]:
    """(category, reason) of a rejected message; runs only on the slow path."""
    first = error.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    if isinstance(message, bytes):
        try:
            message.decode("utf-8")
        except UnicodeDecodeError as exc:
            return "invalid_utf8", f"invalid UTF-8 at byte {exc.start}"
    if kind == "json_invalid":
        return "invalid_json", f"invalid JSON: {first['msg']}"[:MAX_REASON_LENGTH]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "not_an_object", "message is not a JSON object"
    if kind == "union_tag_not_found":
        return "missing_event_type", "event_type: missing"
    if kind == "union_tag_invalid":
        return "unknown_event_type", f"event_type: {first['msg']}"[:MAX_REASON_LENGTH]
    path = ".".join(str(p) for p in first["loc"][1:]) or "<root>"
    category = "invalid_field"
    if kind == "missing":
        category = "missing_field"
    elif kind == "finite_number":
        category = "non_finite_number"
    return category, f"{path}: {first['msg']}"[:MAX_REASON_LENGTH]


def _decode_tolerant(message: bytes | str) -> CodegenEvent:
    """One message; an event_type in another case is normalised and retried."""
    try:
        return EVENT_ADAPTER.validate_json(message)
    except ValidationError as error:
        if error.errors()[0]["type"] != "union_tag_invalid":
            raise
        data = json.loads(message)
        tag = data.get("event_type")
        # ASCII only: str.upper() folds U+017F (long s) to "S", and a tag spelled with it is
        # not an event type.
        if not isinstance(tag, str) or not tag.isascii() or tag.upper() == tag:
            raise
        data["event_type"] = tag.upper()
        # A failure now is about a field, not the tag: report that error.
        return EVENT_ADAPTER.validate_python(data)


def decode_one(message: bytes | str) -> CodegenEvent:
    """Validate one JSON message; raises pydantic.ValidationError."""
    return _decode_tolerant(message)


def unframe(messages: list[bytes]) -> list[bytes]:
    """Messages without the Confluent Schema Registry framing (magic byte 0, then a 4-byte
    schema id) where they have it; JSON never starts with a zero byte, so nothing else is
    touched."""
    if not any(m[:1] == SCHEMA_REGISTRY_MAGIC for m in messages):
        return messages
    return [m[5:] if m[:1] == SCHEMA_REGISTRY_MAGIC and len(m) >= 5 else m for m in messages]


def decode_batch(
    messages: list[bytes], bounds: EventBounds | None = None, now: float = 0.0
) -> DecodedBatch:
    """Decode raw JSON messages; bad ones come back as rejects with index and reason. With
    ``bounds``, events out of the domain bounds at wall-clock ``now`` (Unix seconds) too."""
    decoded = _decode_batch(messages)
    if bounds is None or not decoded.events:
        return decoded
    reasons = bounds.violations(decoded.events, now)
    if not any(reasons):
        return decoded
    events: list[CodegenEvent] = []
    indices: list[int] = []
    rejects = list(decoded.rejects)
    for event, index, found in zip(decoded.events, decoded.indices, reasons, strict=True):
        if found is None:
            events.append(event)
            indices.append(index)
        else:
            category, reason = found
            rejects.append(Reject(index, reason[:MAX_REASON_LENGTH], category))
    return DecodedBatch(events, indices, sorted(rejects, key=operator.attrgetter("index")))


def _decode_batch(messages: list[bytes]) -> DecodedBatch:
    if not messages:
        return DecodedBatch([], [], [])
    try:
        items = _FAST_BATCH.validate_python(messages)
    except (ValidationError, ValueError, TypeError):  # not a list of messages: one by one
        items = messages
    # A refused message comes back as itself (the "anything" branch); an event is always new.
    if not any(map(operator.is_, items, messages)):
        return DecodedBatch(items, list(range(len(messages))), [])
    good: list[CodegenEvent] = []
    indices: list[int] = []
    rejects: list[Reject] = []
    for index, (message, item) in enumerate(zip(messages, items, strict=True)):
        if item is not message:
            good.append(item)
            indices.append(index)
            continue
        try:
            good.append(_decode_tolerant(message))
            indices.append(index)
        except ValidationError as error:
            category, reason = _describe(message, error)
            rejects.append(Reject(index, reason, category))
        except (ValueError, TypeError, RecursionError) as error:
            rejects.append(
                Reject(index, f"undecodable: {error}"[:MAX_REASON_LENGTH], "undecodable")
            )
    return DecodedBatch(good, indices, rejects)

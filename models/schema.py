"""JSON Schema of the event contract, for producer teams: the four input events with their
domain bounds (models/bounds.py), and the published ``ModelEventMetricsRecorded``.

The input schema is pydantic's for the discriminated union of the four events, plus the bounds
pydantic cannot know: ``maximum`` on durations and cost (from the settings), ``minimum`` and
``maximum`` of +-2**53 on integers, +-1e12 on ``complexity_score``, and a timestamp pattern for
years 2000 to 9999 (the upper bound, now + ``max_future_skew_seconds``, moves with the clock
and is stated in the description). ``event_type`` is the upper-case tag (the reducer also
accepts other ASCII cases).
"""

from __future__ import annotations

from typing import Any

from models.bounds import (
    BOUNDED_FIELDS,
    DURATION_FIELDS,
    INT_FIELDS,
    MAX_COMPLEXITY,
    MAX_INT,
    MIN_TIMESTAMP,
    EventBounds,
)
from models.decode import EVENT_ADAPTER
from models.metrics import ModelEventMetricsRecorded

TIMESTAMP_PATTERN = r"^[2-9][0-9]{3}-"
"""Years 2000 to 9999 (before the rest of the ISO 8601 text, which ``format`` covers)."""


def input_schema(bounds: EventBounds | None = None) -> dict[str, Any]:
    """The four input events, bounds included."""
    bounds = bounds or EventBounds()
    schema = EVENT_ADAPTER.json_schema()
    schema["title"] = "Code-generation workflow event"
    schema["description"] = (
        "One of the four events of a code-generation workflow. Timestamps: ISO 8601 / RFC "
        f"3339 strings from {MIN_TIMESTAMP.isoformat()} to now + "
        f"{bounds.max_future_skew_seconds:g} s (no offset means UTC); the reducer also reads "
        "a JSON number as Unix seconds."
    )
    for model in schema["$defs"].values():
        tag = model["properties"]["event_type"]["const"]
        model["properties"]["timestamp"]["pattern"] = TIMESTAMP_PATTERN
        for name in BOUNDED_FIELDS[tag]:
            _bound(model["properties"][name], name, bounds)
    return schema


def _bound(prop: dict[str, Any], name: str, bounds: EventBounds) -> None:
    """Add the bound of ``name`` to its property (inside ``anyOf`` when it may be null)."""
    target = next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)
    if name in INT_FIELDS:
        target["maximum"] = MAX_INT
        target.setdefault("minimum", -MAX_INT)
    elif name in DURATION_FIELDS:
        target["maximum"] = bounds.max_duration_seconds
    elif name == "total_cost_usd":
        target["maximum"] = bounds.max_cost_usd
    else:
        target["minimum"], target["maximum"] = -MAX_COMPLEXITY, MAX_COMPLEXITY


def output_schema() -> dict[str, Any]:
    """The metrics event published for every window revision (key: its ``window_id``)."""
    return ModelEventMetricsRecorded.model_json_schema()

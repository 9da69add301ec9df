"""Versioned, compact bytes for AggregationState: the form that travels between actors and into
checkpoints.

Layout: ``MAGIC`` (4 bytes) | format version (1 byte) | CRC-32 of the body (4 bytes, big endian)
| body = zlib-compressed JSON of plain values. JSON, not pickle: a checkpoint must never execute
code when read, and a reader can tell exactly which version wrote it. Corrupt or foreign bytes
raise ``StateCodecError``.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING

from models.settings import ReducerSettings
from reducer.distinct import DistinctCounter
from reducer.exact import ExactMean
from reducer.groupings import Count, DurationStats, WorkflowSummary
from reducer.sketch import QuantileStore

if TYPE_CHECKING:
    from reducer.state import AggregationState

MAGIC = b"CMAS"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 4
_MEANS = ("durations", "failed_partial", "quality", "coverage", "complexity", "cost")
_BREAKDOWNS = ("stages", "models", "node_types")
_COUNTERS = ("failures_by_stage", "failures_by_error_code")


class StateCodecError(ValueError):
    """Bytes that are not a readable AggregationState (corrupt, truncated or another version)."""


def encode_state(state: AggregationState) -> bytes:
    body = {
        "settings": state.settings.model_dump(mode="json"),
        "by_type": state.events_by_type,
        "invalid": state.events_invalid,
        "late": state.late_arrivals,
        "means": {name: getattr(state, name).to_obj() for name in _MEANS},
        "quantiles": state.duration_quantiles.to_obj(),
        "tokens": state.tokens,
        "intelligence": [state.intelligence_enabled, state.patterns_applied],
        "quality_buckets": state.quality_buckets,
        "cost_buckets": [state.cost_bucket_counts, [c.to_obj() for c in state.cost_bucket_costs]],
        "breakdowns": {name: getattr(state, name).to_obj() for name in _BREAKDOWNS + _COUNTERS},
        "workflows": state.workflows.to_obj(),
        "distinct": state.distinct_workflows.to_obj(),
    }
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload


def decode_state(data: bytes) -> AggregationState:
    from reducer.state import AggregationState

    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise StateCodecError("not an AggregationState (bad magic)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise StateCodecError(f"unsupported AggregationState format version {version}")
    payload = data[_HEADER:]
    if zlib.crc32(payload).to_bytes(4, "big") != data[len(MAGIC) + 1 : _HEADER]:
        raise StateCodecError("AggregationState checksum mismatch (corrupt or truncated)")
    try:
        body = json.loads(zlib.decompress(payload))
        return _build(AggregationState, body)
    except (ValueError, KeyError, TypeError, IndexError, zlib.error) as exc:
        raise StateCodecError(f"unreadable AggregationState body: {exc}") from exc


def _build(cls: type[AggregationState], body: dict) -> AggregationState:
    settings = ReducerSettings.model_validate(body["settings"])
    state = cls(settings)
    cap, alpha = settings.exact_percentile_cap, settings.sketch_relative_accuracy
    state.events_by_type = [int(n) for n in body["by_type"]]
    state.events_invalid = int(body["invalid"])
    state.late_arrivals = int(body.get("late", 0))
    for name in _MEANS:
        setattr(state, name, ExactMean.from_obj(body["means"][name]))
    state.duration_quantiles = QuantileStore.from_obj(body["quantiles"], cap, alpha)
    state.tokens = int(body["tokens"])
    state.intelligence_enabled, state.patterns_applied = (int(n) for n in body["intelligence"])
    state.quality_buckets = [int(n) for n in body["quality_buckets"]]
    counts, costs = body["cost_buckets"]
    state.cost_bucket_counts = [int(n) for n in counts]
    state.cost_bucket_costs = [ExactMean.from_obj(c) for c in costs]
    for name in _BREAKDOWNS:
        getattr(state, name).load(
            body["breakdowns"][name], lambda o: DurationStats.from_obj(o, cap, alpha)
        )
    for name in _COUNTERS:
        getattr(state, name).load(body["breakdowns"][name], lambda o: Count(int(o)))
    state.workflows.load(body["workflows"], WorkflowSummary.from_obj)
    state.distinct_workflows = DistinctCounter.from_obj(
        body["distinct"], settings.exact_distinct_cap
    )
    return state

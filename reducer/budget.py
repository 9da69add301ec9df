"""A size budget for published metrics events: trim breakdowns, never totals.

A window's event must fit the producer's ``message.max.bytes`` (1,000,000 by default) or the
broker refuses it (MSG_SIZE_TOO_LARGE) tick after tick. Its size is dominated by the keyed
breakdowns: a breakdown keeps up to ``max_keys_per_breakdown`` (1,000) keys of up to
``max_key_length`` (256) characters, so one hour with 1,000 long model, node-type, stage and
error-code names makes an event of about 2 MB.

``fit_to_budget`` keeps, in every breakdown, the keys of the most events and folds the others
into ``__other__`` exactly (their accumulators merged, as if their events had carried that key),
and sets ``breakdowns_truncated``. Every field outside the breakdowns (totals, counts, means,
percentiles, buckets, workflow counts) is the untrimmed state's, unchanged. The number of keys
kept per breakdown is the largest that fits, found by halving then bisection: at most about
2 * log2(max keys) + 1 builds (21 for 1,000 keys), only when the event is too large.
"""

from __future__ import annotations

from collections.abc import Callable

from models.metrics import ModelEventMetricsRecorded, ModelMetricsState
from reducer.state import AggregationState, breakdown_fields

Build = Callable[[ModelMetricsState], ModelEventMetricsRecorded]
BUDGET_SHARE = 0.9
"""Of the producer's limit, what an event may take: the intent carrying it adds an envelope of
under 1 KB, and the record its key and headers."""


def event_budget(producer_max_bytes: int) -> int:
    """Bytes a metrics event may take: ``BUDGET_SHARE`` of the producer's ``message.max.bytes``
    (``KafkaSettings.producer_max_bytes``)."""
    return int(producer_max_bytes * BUDGET_SHARE)


def event_size(event: ModelEventMetricsRecorded) -> int:
    """Bytes of the event's JSON (UTF-8), as published."""
    return len(event.model_dump_json().encode())


def fit_to_budget(
    state: AggregationState,
    metrics: ModelMetricsState,
    build: Build,
    max_bytes: int,
) -> ModelEventMetricsRecorded:
    """``build(metrics)`` if its JSON is at most ``max_bytes``; otherwise the event of the most
    breakdown keys per breakdown that fits, with the rest folded into ``__other__`` and
    ``breakdowns_truncated`` set. ``metrics`` must be ``state.to_metrics(...)``.

    Raises ValueError if even breakdowns of ``__other__`` alone do not fit (the envelope or
    the fixed fields are too large for ``max_bytes``). Costs one JSON encoding of the event
    when it fits (the common case)."""
    event = build(metrics)
    if event_size(event) <= max_bytes:
        return event
    breakdowns = state.breakdowns()
    too_many = max(len(b.entries) for b in breakdowns.values())

    def trimmed(keep: int) -> ModelEventMetricsRecorded | None:
        """The event keeping ``keep`` keys per breakdown, if it fits."""
        kept = {name: b.top(keep, with_other=name != "workflows") for name, b in breakdowns.items()}
        fields = breakdown_fields(kept, workflow_other=True)
        candidate = build(metrics.model_copy(update={**fields, "breakdowns_truncated": True}))
        return candidate if event_size(candidate) <= max_bytes else None

    # Halve until something fits: ``fits`` keys fit, ``too_many`` do not.
    keep = too_many // 2
    best = trimmed(keep)
    while best is None:
        if keep == 0:
            raise ValueError(
                f"the metrics event exceeds {max_bytes} bytes even with every breakdown folded "
                "into __other__"
            )
        too_many, keep = keep, keep // 2
        best = trimmed(keep)
    fits = keep
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        candidate = trimmed(middle)
        if candidate is None:
            too_many = middle
        else:
            fits, best = middle, candidate
    return best

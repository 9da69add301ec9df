"""Which window actor owns a workflow: a stable hash of workflow_id (ray-free, pure)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from models.events import CodegenEvent

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def owner(workflow_id: UUID, actors: int) -> int:
    """Stable across processes and runs; mixes all 128 bits (version-1 UUIDs vary mostly high)."""
    value = workflow_id.int
    mixed = (((value >> 64) ^ value) & _MASK) * _GOLDEN & _MASK
    # Take the owner from the product's top bits (Fibonacci hashing / Lemire's range reduction):
    # its low bits only see the low bits of the input, so ``% actors`` of them sent every
    # uuid1() to one actor of two (their time steps by multiples of 2 in the high half).
    return (mixed * actors) >> 64


def route(events: Sequence[CodegenEvent], actors: int) -> list[list[CodegenEvent]]:
    """Split a batch into one sub-batch per window actor (empty ones included)."""
    parts: list[list[CodegenEvent]] = [[] for _ in range(actors)]
    for event in events:
        parts[owner(event.workflow_id, actors)].append(event)
    return parts

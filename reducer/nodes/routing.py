"""Which window actor owns a workflow: a stable hash of workflow_id (ray-free, pure).

Ingest actors route raw messages, not decoded events: decoding happens in the window actors, so
it spreads over every core, and only bytes cross the Ray boundary (pickling pydantic events cost
the ingest actor more than decoding them). The workflow_id is found without decoding, as the
first ``"workflow_id": "<text>"`` in the message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from uuid import UUID

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def owner(workflow_id: UUID, actors: int) -> int:
    """Stable across processes and runs; mixes all 128 bits (version-1 UUIDs vary mostly high)."""
    # Takes the owner from the product's top bits (Fibonacci hashing / Lemire's range reduction):
    # its low bits only see the low bits of the input, so ``% actors`` of them sent every
    # uuid1() to one actor of two (their time steps by multiples of 2 in the high half).
    return _mix(workflow_id.int, actors)


_WORKFLOW_ID = re.compile(rb'"workflow_id"\s*:\s*"([^"\\]{1,100})"')


def _mix(value: int, actors: int) -> int:
    mixed = (((value >> 64) ^ value) & _MASK) * _GOLDEN & _MASK
    return (mixed * actors) >> 64


def message_owner(value: bytes, actors: int) -> int:
    """The owner of a raw message: ``owner(workflow_id)`` when its text is a UUID, so a workflow's
    events meet in one actor. Anything else (no such key, not a UUID, not JSON) is owned by a
    hash of its bytes, so identical copies still meet in one actor, where deduplication drops
    them; the window actor then accepts or rejects the message. Correctness never depends on
    the route (partial states merge exactly), only locality and dedup do."""
    if actors == 1:
        return 0
    at = value.find(b'"workflow_id"')
    match = _WORKFLOW_ID.match(value, at) if at >= 0 else None
    if match is not None:
        value_int = _uuid_int(match.group(1))
        if value_int is not None:
            return _mix(value_int, actors)
    digest = hashlib.blake2b(value, digest_size=16).digest()
    return _mix(int.from_bytes(digest, "big"), actors)


def _uuid_int(text: bytes) -> int | None:
    """UUID(text).int; the canonical 36-character form without building a UUID (hot path)."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == 45:  # "-"
        try:
            return int(text.replace(b"-", b""), 16)
        except ValueError:
            return None
    try:
        return UUID(text.decode("ascii")).int
    except (ValueError, UnicodeDecodeError):
        return None


def route_messages(values: Sequence[bytes], actors: int) -> list[list[int]]:
    """Positions of ``values`` per window actor (empty lists included), in input order."""
    parts: list[list[int]] = [[] for _ in range(actors)]
    for position, value in enumerate(values):
        parts[message_owner(value, actors)].append(position)
    return parts

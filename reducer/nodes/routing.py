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
from itertools import repeat
from uuid import UUID

import numpy as np

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
    if actors == 1:
        return [list(range(len(values)))]
    owners = message_owners(values, actors)
    return [np.flatnonzero(owners == actor).tolist() for actor in range(actors)]


def message_owners(values: Sequence[bytes], actors: int) -> np.ndarray:
    """``message_owner(value, actors)`` of every value, as an int64 array.

    Vectorised for the common shape (``"workflow_id":"<36-character UUID>"``, as ``json.dumps``
    writes it): the key is found per message by ``bytes.find`` (a C loop), and the text after it
    is checked, parsed and hashed in numpy; any other message takes ``message_owner``. 4000
    simulated-fleet messages: 0.35-0.5 us a message, against 0.94 one by one."""
    count = len(values)
    owners = np.zeros(count, np.int64)
    ok = np.zeros(count, bool)
    if count and actors < _MAX_VECTOR_ACTORS:
        ats = np.fromiter(map(bytes.find, values, repeat(_KEY)), np.int64, count)
        lengths = np.fromiter(map(len, values), np.int64, count)
        starts = np.cumsum(lengths) - lengths + ats + len(_KEY)
        fits = (ats >= 0) & (ats + len(_KEY) + _SPAN <= lengths)
        if fits.any():
            text = np.frombuffer(b"".join(values), np.uint8)
            found = text[starts[fits, None] + np.arange(_SPAN)]  # ':"' + 36 characters + '"'
            owners[fits], canonical = _owners_of_uuid_texts(found[:, 2:-1], actors)
            quoted = (found[:, 0] == ord(":")) & (found[:, 1] == ord('"'))
            ok[fits] = canonical & quoted & (found[:, -1] == ord('"'))
    for position in np.flatnonzero(~ok).tolist():
        owners[position] = message_owner(values[position], actors)
    return owners


_KEY = b'"workflow_id"'
_SPAN = 39
"""What follows the key in the common shape: ':"', the 36-character UUID, '"'."""
_MAX_VECTOR_ACTORS = 1 << 31
"""The hash's last step is exact in 64-bit halves below this many actors."""
_DASHES = np.array([8, 13, 18, 23])
_DIGITS = np.setdiff1d(np.arange(36), _DASHES)
_NIBBLE = np.full(256, 255, np.uint8)
for _value, _chars in enumerate(zip(b"0123456789abcdef", b"0123456789ABCDEF", strict=True)):
    _NIBBLE[list(_chars)] = _value


def _owners_of_uuid_texts(hexes: np.ndarray, actors: int) -> tuple[np.ndarray, np.ndarray]:
    """``_mix(int(text without dashes, 16), actors)`` per row of 36 bytes, and which rows are
    canonical UUID text (dashes at 8, 13, 18, 23 and 32 hex digits); the other rows' owners
    are meaningless."""
    nibbles = _NIBBLE[hexes[:, _DIGITS]]
    ok = (hexes[:, _DASHES] == ord("-")).all(axis=1) & (nibbles < 16).all(axis=1)
    octets = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
    halves = octets.view(">u8").astype(np.uint64)  # (high, low) 64 bits of the UUID per row
    mixed = (halves[:, 0] ^ halves[:, 1]) * np.uint64(_GOLDEN)  # wraps mod 2**64, as _mix masks
    # The top 64 bits of mixed * actors, in 64-bit halves (actors < 2**31).
    n = np.uint64(actors)
    carry = ((mixed & np.uint64(0xFFFFFFFF)) * n) >> np.uint64(32)
    return ((mixed >> np.uint64(32)) * n + carry) >> np.uint64(32), ok

"""Versioned, compact bytes for a state body: the framing that travels between actors and into
checkpoints.

Layout: ``MAGIC`` (4 bytes) | format version (1 byte) | CRC-32 of the payload (4 bytes, big
endian) | payload = zlib-compressed JSON of plain values. JSON, not pickle: a checkpoint must never
execute code when read, and a reader can tell exactly which version wrote it. Corrupt or foreign
bytes raise ``StateCodecError``.

This module knows only the framing; what the body holds is ``AggregationState.to_obj`` and
``AggregationState.from_obj`` (reducer/state.py), which imports this module, never the reverse.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

MAGIC = b"CMAS"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 4


class StateCodecError(ValueError):
    """Bytes that are not a readable AggregationState (corrupt, truncated or another version)."""


def pack(body: dict[str, Any]) -> bytes:
    """Frame a JSON-able body: magic, version, CRC-32, zlib(JSON)."""
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload


def unpack(data: bytes) -> dict[str, Any]:
    """The body of framed bytes; raises StateCodecError on anything but a current-version frame."""
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
    except (ValueError, zlib.error) as exc:
        raise StateCodecError(f"unreadable AggregationState body: {exc}") from exc
    if not isinstance(body, dict):
        raise StateCodecError("unreadable AggregationState body: not an object")
    return body

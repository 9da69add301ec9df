"""Versioned, compact bytes for a state body: the framing that travels between actors and into
checkpoints, and the checked reading of the plain values inside it.

Layout: ``MAGIC`` (4 bytes) | format version (1 byte) | CRC-32 of the payload (4 bytes, big
endian) | payload = zlib-compressed JSON of plain values. JSON, not pickle: a checkpoint must never
execute code when read, and a reader can tell exactly which version wrote it. Corrupt or foreign
bytes raise ``StateCodecError``.

This module knows only the framing and how to read one plain value; what the body holds is
``AggregationState.to_obj`` and ``AggregationState.from_obj`` (reducer/state.py), which imports
this module, never the reverse.

Hostile bytes: a CRC only proves the bytes were not damaged, not that their writer was ours. So
reading costs memory in proportion to what a state can hold, never to what the bytes claim:

- ``inflate`` stops at ``MAX_BODY_BYTES`` (16 MiB) of JSON, however well the payload compresses
  (zlib reaches about 1000:1, so 1 MB could otherwise become 1 GB);
- ``loads_bounded`` refuses, before parsing, JSON of more than ``MAX_TOKENS`` (262,144) values
  or nested deeper than ``MAX_DEPTH`` (16): each value costs at most about 64 bytes of Python
  objects once parsed, so parsing costs at most about 16 MiB beyond the text;
- every ``from_obj`` checks types, counts and sizes with the helpers below before it allocates.

Why these numbers, with the default settings (``ReducerSettings()``): the largest parts of a
state are exact duration samples (at most 10,000 per store, 107 KB as base64) and sketches (at
most 4,096 bins, 44 KB; about 920 bins, 10 KB, for 1 ms .. 1 day). A busy hour (8 stages, tens
of models and node types, 1,000 workflow summaries, 10,000 distinct ids) is under 5 MB; 16 MiB
holds 150 stores at their exact cap, and a flood of unique keys (1,000 per breakdown, each with
a few samples) about 2 MB. A state whose every breakdown key holds thousands of samples can
exceed it: ``pack`` then raises, naming the size, rather than write what no reader would accept.
The JSON of a state with every breakdown full has about 130,000 values, half ``MAX_TOKENS``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from typing import Any

import numpy as np

MAGIC = b"CMAS"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 4

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest JSON body (inflated) a state may have; see the module docstring for why."""
MAX_TOKENS = 262_144
"""Most JSON values (counted as ``,`` ``:`` ``[`` ``{`` outside strings) a body may hold."""
MAX_DEPTH = 16
"""Deepest JSON nesting a body may have (a state's body nests 7 deep)."""
MAX_COUNT = (1 << 63) - 1
"""Largest count of events (or of anything counted per event) a state may hold."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class StateCodecError(ValueError):
    """Bytes that are not a readable AggregationState (corrupt, truncated or another version)."""


def pack(body: dict[str, Any], max_body_bytes: int = MAX_BODY_BYTES) -> bytes:
    """Frame a JSON-able body: magic, version, CRC-32, zlib(JSON).

    Raises StateCodecError if the JSON exceeds ``max_body_bytes`` or ``MAX_TOKENS`` values:
    ``unpack`` would refuse it, and the writer is where the cause can be named."""
    text = json.dumps(body, separators=(",", ":")).encode()
    if len(text) > max_body_bytes:
        raise StateCodecError(
            f"AggregationState body of {len(text)} bytes exceeds the limit of {max_body_bytes}"
        )
    if len(text) > MAX_TOKENS:  # fewer bytes cannot hold MAX_TOKENS values
        tokens = _tokens(_bare(text))
        if tokens > MAX_TOKENS:
            raise StateCodecError(
                f"AggregationState body of {tokens} JSON values exceeds the limit of {MAX_TOKENS}"
            )
    payload = zlib.compress(text, 1)
    return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload


def unpack(data: bytes, max_body_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body of framed bytes; raises StateCodecError on anything but a current-version frame
    whose JSON fits ``max_body_bytes``, ``MAX_TOKENS`` and ``MAX_DEPTH``."""
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise StateCodecError("not an AggregationState (bad magic)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise StateCodecError(f"unsupported AggregationState format version {version}")
    payload = data[_HEADER:]
    if zlib.crc32(payload).to_bytes(4, "big") != data[len(MAGIC) + 1 : _HEADER]:
        raise StateCodecError("AggregationState checksum mismatch (corrupt or truncated)")
    try:
        body = loads_bounded(inflate(payload, max_body_bytes), MAX_TOKENS, MAX_DEPTH)
    except ValueError as exc:
        raise StateCodecError(f"unreadable AggregationState body: {exc}") from exc
    if not isinstance(body, dict):
        raise StateCodecError("unreadable AggregationState body: not an object")
    return body


def inflate(data: bytes | memoryview, limit: int) -> bytes:
    """The zlib stream ``data`` decompressed, if it holds at most ``limit`` bytes.

    Never allocates more than ``limit + 1`` bytes of output, however well ``data`` compresses.
    Raises ValueError if the stream inflates beyond ``limit``, is corrupt or truncated, or is
    followed by other bytes."""
    if limit < 0:
        raise ValueError("limit must be >= 0")
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)  # max_length 0 would mean "no limit"
    except zlib.error as exc:
        raise ValueError(f"corrupt zlib stream: {exc}") from exc
    if len(out) > limit:
        raise ValueError(f"zlib stream inflates beyond the limit of {limit} bytes")
    if not inflater.eof:
        raise ValueError("truncated zlib stream")
    if inflater.unused_data:
        raise ValueError(f"{len(inflater.unused_data)} bytes after the zlib stream")
    return out


def loads_bounded(text: bytes, max_tokens: int, max_depth: int) -> Any:
    """``json.loads(text)``, refusing before parsing JSON of more than ``max_tokens`` values or
    nested deeper than ``max_depth``, so parsing allocates at most about 64 bytes per value
    beyond the strings' own bytes and never recurses far. Raises ValueError on anything else
    (invalid JSON or UTF-8). Non-finite numbers parse as floats: callers check their values.

    The counts are taken outside strings (found as ``json.loads`` finds them), so they bound
    the values and the depth of any text ``json.loads`` accepts."""
    bare = _bare(text)
    tokens = _tokens(bare)
    if tokens > max_tokens:
        raise ValueError(f"JSON of {tokens} values exceeds the limit of {max_tokens}")
    opens = bare.count(b"[") + bare.count(b"{")
    if opens > max_depth:  # the depth is at most the number of opening brackets
        brackets = bare.translate(None, _NOT_BRACKETS)
        if len(brackets) > 2 * opens:
            raise ValueError("JSON has more closing than opening brackets")
        codes = np.frombuffer(brackets, dtype=np.uint8)
        steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
        depth = int(np.cumsum(steps, dtype=np.int32).max())
        if depth > max_depth:
            raise ValueError(f"JSON nested {depth} deep exceeds the limit of {max_depth}")
    del bare
    try:
        return json.loads(text)
    except RecursionError as exc:  # unreachable after the depth check; kept as a guarantee
        raise ValueError("JSON nested too deep") from exc


def _bare(text: bytes) -> bytes:
    """JSON text with every string emptied."""
    return _STRING.sub(b'""', text) if b'"' in text else text


def _tokens(bare: bytes) -> int:
    """Values in JSON text without strings: each but the first follows a , : [ or {."""
    return bare.count(b",") + bare.count(b":") + bare.count(b"[") + bare.count(b"{")


# -- reading plain values of a body: each raises StateCodecError with the value's name ---------


def fail(what: str, problem: str) -> StateCodecError:
    return StateCodecError(f"unreadable AggregationState body: {what} {problem}")


def field(obj: dict, key: str, what: str) -> Any:
    """``obj[key]``; ``obj`` must be a mapping."""
    if not isinstance(obj, dict):
        raise fail(what, f"is {type(obj).__name__}, not an object")
    try:
        return obj[key]
    except KeyError:
        raise fail(what, f"has no {key!r}") from None


def mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise fail(what, f"is {type(value).__name__}, not an object")
    return value


def items(value: Any, what: str, length: int | None = None, most: int | None = None) -> list:
    """A JSON array, of exactly ``length`` or at most ``most`` items."""
    if not isinstance(value, list):
        raise fail(what, f"is {type(value).__name__}, not an array")
    if length is not None and len(value) != length:
        raise fail(what, f"has {len(value)} items, not {length}")
    if most is not None and len(value) > most:
        raise fail(what, f"has {len(value)} items, more than {most}")
    return value


def integer(value: Any, what: str, low: int, high: int) -> int:
    """An int (never a bool or a float) in [low, high]."""
    if type(value) is not int:
        raise fail(what, f"is {type(value).__name__}, not an integer")
    if not low <= value <= high:
        raise fail(what, f"is out of range [{low}, {high}]")
    return value


def count(value: Any, what: str, most: int = MAX_COUNT) -> int:
    """A non-negative int of at most ``most`` (``MAX_COUNT``, 2**63 - 1, by default)."""
    return integer(value, what, 0, most)


def real(value: Any, what: str) -> float:
    """A finite number, as a float."""
    if type(value) is float:
        if math.isfinite(value):
            return value
    elif type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    else:
        raise fail(what, f"is {type(value).__name__}, not a number")
    raise fail(what, "is not a finite number")


def text(value: Any, what: str, most: int) -> str:
    """A string of at most ``most`` characters."""
    if not isinstance(value, str):
        raise fail(what, f"is {type(value).__name__}, not a string")
    if len(value) > most:
        raise fail(what, f"is {len(value)} characters long, more than {most}")
    return value


def b64(value: Any, what: str, most: int, unit: int = 1) -> bytes:
    """Strict base64 of at most ``most`` bytes, a whole number of ``unit``-byte items; the text
    length is checked before decoding."""
    encoded = text(value, what, 4 * -(-most // 3))
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(what, f"is not base64 ({exc})") from None
    if len(data) > most or len(data) % unit:
        raise fail(what, f"decodes to {len(data)} bytes (at most {most}, in units of {unit})")
    return data

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
- ``check_json`` refuses, before parsing, JSON that is not ASCII (``json.dumps`` writes ASCII),
  holds more than ``MAX_TOKENS`` (262,144) values (each costs at most about 64 bytes of Python
  objects), nests deeper than ``MAX_DEPTH`` (16), or has more than ``MAX_WIDE_CHARS`` (4 Mi)
  characters in strings with ``\\u`` escapes (such a string may take 4 bytes a character);
- every ``from_obj`` checks types, counts and sizes with the helpers below before it allocates.

Decoding any bytes then peaks at about 3 x ``MAX_BODY_BYTES``: the worst shapes measured (16 MiB
of 60-character strings; of those plus strings widened by an escape) peak at 45 and 53 MiB of
traced memory, a 1 GiB zip bomb at 32 MiB.

Why these numbers, with the default settings (``ReducerSettings()``): the largest parts of a
state are exact duration samples (at most 10,000 per store, 107 KB as base64) and sketches (at
most 4,096 bins, 44 KB; about 920 bins, 10 KB, for 1 ms .. 1 day). A busy hour (8 stages, tens
of models and node types, 1,000 workflow summaries, 10,000 distinct ids) is under 5 MB; 16 MiB
holds 150 stores at their exact cap, and a flood of unique keys (1,000 per breakdown, each with
a few samples) about 3 MB. A state whose every breakdown key holds thousands of samples can
exceed it: ``pack`` then raises, naming the size, rather than write what no reader would accept.
The JSON of a state with every breakdown full (2 MB) has 123,000 values, half ``MAX_TOKENS``, and
at most 2.6 million escaped characters (every key 256 characters beyond U+FFFF).
"""

from __future__ import annotations

import binascii
import json
import math
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
MAX_WIDE_CHARS = 4 * 1024 * 1024
"""Most characters (a 12-byte pair of escapes counts 2) in JSON strings with ``\\u`` escapes,
which may take 4 bytes each once parsed: every breakdown key full (5 x 1,001 keys of 256
characters beyond U+FFFF) is 2.6 million."""
MAX_COUNT = (1 << 63) - 1
"""Largest count of events (or of anything counted per event) a state may hold."""

_CHUNK = 1 << 18  # bytes scanned per numpy pass: 256 KiB


class StateCodecError(ValueError):
    """Bytes that are not a readable AggregationState (corrupt, truncated or another version)."""


def pack(body: dict[str, Any], max_body_bytes: int = MAX_BODY_BYTES) -> bytes:
    """Frame a JSON-able body: magic, version, CRC-32, zlib(JSON).

    Raises StateCodecError if ``unpack`` would refuse the JSON (over ``max_body_bytes``,
    ``MAX_TOKENS`` values or ``MAX_WIDE_CHARS`` escaped characters): the writer is where the
    cause can be named."""
    text = json.dumps(body, separators=(",", ":")).encode()
    if len(text) > max_body_bytes:
        raise StateCodecError(
            f"AggregationState body of {len(text)} bytes exceeds the limit of {max_body_bytes}"
        )
    marks = text.count(b",") + text.count(b":") + text.count(b"[") + text.count(b"{")
    if marks > MAX_TOKENS or b"\\u" in text:  # else every limit holds (a body nests 7 deep)
        try:
            check_json(text, MAX_TOKENS, MAX_DEPTH)
        except ValueError as exc:
            raise StateCodecError(f"AggregationState body refused: {exc}") from exc
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
        raw = inflate(payload, max_body_bytes)
        check_json(raw, MAX_TOKENS, MAX_DEPTH)
        text = raw.decode("ascii")
        del raw  # parsing then holds the text and what it builds, never the bytes as well
        body = _loads(text)
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
    """``json.loads(text)`` after ``check_json``; raises ValueError for anything else."""
    check_json(text, max_tokens, max_depth)
    return _loads(text.decode("ascii"))


def check_json(text: bytes, max_tokens: int, max_depth: int) -> None:
    """Raise ValueError, before any parsing, unless ``json.loads(text)`` costs memory in
    proportion to ``len(text)``: ASCII (``json.dumps``' default), at most ``max_tokens`` values
    (each costs at most about 64 bytes of Python objects), nested at most ``max_depth`` deep,
    and at most ``MAX_WIDE_CHARS`` characters in strings with ``\\u`` escapes (one such escape
    can make a whole string take 2 or 4 bytes a character). The check itself takes about
    ``len(text)`` bytes more at most (a copy, if the text has backslashes) plus 8 MiB."""
    if not text.isascii():
        raise ValueError("JSON is not ASCII")
    tokens, depth, wide = scan_json(text, wide=b"\\u" in text)
    if tokens > max_tokens:
        raise ValueError(f"JSON of {tokens} values exceeds the limit of {max_tokens}")
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} deep exceeds the limit of {max_depth}")
    if wide > MAX_WIDE_CHARS:
        raise ValueError(
            f"JSON of {wide} characters in escaped strings exceeds the limit of {MAX_WIDE_CHARS}"
        )


def scan_json(text: bytes, *, wide: bool = True, chunk: int = _CHUNK) -> tuple[int, int, int]:
    """(values, depth, wide characters) of JSON text, in numpy passes over ``chunk``-byte
    slices (at most about 32 bytes of arrays a byte of a slice: 8 MiB), never parsing it.

    Values are the ``,`` ``:`` ``[`` ``{`` outside strings (every value but the first follows
    one), depth the most brackets open at once, wide characters those of the strings holding a
    ``\\u`` escape (each 6-byte escape counted once; only if ``wide``). Strings are found as
    ``json.loads`` finds them, so for any text it accepts these bound what it builds."""
    if b"\\" in text:
        # A backslash occurs only inside strings, escaping the next byte, pairs read left to
        # right: blank the pairs that hide a quote or a backslash (a copy, only then).
        text = text.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    data = np.frombuffer(text, dtype=np.uint8)
    tokens = depth = level = wide_chars = 0
    inside_at_start = False
    run_bytes = run_escapes = 0  # the string still open at a slice's end: its bytes, escapes
    escape_at_end = False  # the previous slice ended with a backslash
    for begin in range(0, data.size, chunk):
        part = data[begin : begin + chunk]
        # Positions, not a mask a byte: a byte is in a string iff an odd number of quotes
        # (counting one carried in) comes before it.
        quotes = np.flatnonzero(part == ord('"'))
        marks = np.flatnonzero(
            (part == ord(","))
            | (part == ord(":"))
            | (part == ord("["))
            | (part == ord("{"))
            | (part == ord("]"))
            | (part == ord("}"))
        )
        marks = marks[(np.searchsorted(quotes, marks) & 1) == inside_at_start]  # outside
        if marks.size:
            chars = part[marks]
            opening = (chars == ord("[")) | (chars == ord("{"))
            closing = (chars == ord("]")) | (chars == ord("}"))
            tokens += int(marks.size - np.count_nonzero(closing))
            steps = opening[opening | closing].astype(np.int64) * 2 - 1  # [ { +1, ] } -1
            if steps.size:
                levels = np.cumsum(steps) + level
                depth, level = max(depth, int(levels.max())), int(levels[-1])
        if wide:
            quote = part == ord('"')
            inside_u8 = np.bitwise_xor.accumulate(quote.view(np.uint8))
            if inside_at_start:
                inside_u8 ^= 1
            inside = inside_u8.view(bool)  # in a string, opening quote in, closing quote out
            backslash = part == ord("\\")
            escape = np.zeros(part.size, dtype=bool)
            np.logical_and(backslash[:-1], part[1:] == ord("u"), out=escape[:-1])
            escape &= inside
            if escape_at_end and part[0] == ord("u"):
                run_escapes += 1
            escape_at_end = bool(backslash[-1] & inside[-1])
            string = np.cumsum(quote & inside, dtype=np.int32)  # 0: the string carried in
            strings = int(string[-1]) + 1
            lengths = np.bincount(string[inside], minlength=strings)
            escapes = np.bincount(string[escape], minlength=strings)
            lengths[0] += run_bytes
            escapes[0] += run_escapes
            ends_inside = bool(inside[-1])
            done = strings - 1 if ends_inside else strings
            counted = escapes[:done] > 0
            chars = lengths[:done][counted] - 5 * escapes[:done][counted]
            wide_chars += int(np.maximum(chars, 0).sum())
            run_bytes, run_escapes = (int(lengths[-1]), int(escapes[-1])) if ends_inside else (0, 0)
        inside_at_start ^= bool(quotes.size & 1)
    if run_escapes:  # an unterminated string (not JSON)
        wide_chars += run_bytes
    return tokens, depth, wide_chars


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:  # unreachable after check_json; kept as a guarantee
        raise ValueError("JSON nested too deep") from exc


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
        data = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: not ASCII
        raise fail(what, f"is not base64 ({exc})") from None
    if len(data) > most or len(data) % unit:
        raise fail(what, f"decodes to {len(data)} bytes (at most {most}, in units of {unit})")
    return data

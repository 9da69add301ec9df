"""Dead-letter records: headers that read back, and values cut to fit the producer's limit."""

from __future__ import annotations

import pytest

from models.dead_letter import RECORD_OVERHEAD_BYTES, DeadLetter

LETTER = DeadLetter("oversized", "message of 2500000 bytes exceeds 1000000", "ingest-0", "t", 3, 42)


def size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)


def test_a_value_that_fits_is_kept_whole() -> None:
    key, value, headers = LETTER.record(b"k", b"x" * 1000, 1_000_000)
    assert (key, value) == (b"k", b"x" * 1000)
    assert DeadLetter.from_headers(headers) == LETTER


@pytest.mark.parametrize("length", [999_000, 1_000_000, 2_500_000, 50_000_000])
def test_a_value_too_large_for_the_producer_is_cut_and_says_its_original_size(
    length: int,
) -> None:
    original = bytes(range(256)) * (length // 256 + 1)
    original = original[:length]
    key, value, headers = LETTER.record(b"key", original, 1_000_000)

    assert size(key, value, headers) + RECORD_OVERHEAD_BYTES <= 1_000_000
    assert original.startswith(value) and len(value) > 900_000
    read = DeadLetter.from_headers(headers)
    assert read.original_bytes == length and read.source_offset == 42


def test_no_value_and_a_tiny_limit_never_raise() -> None:
    assert LETTER.record(None, None, 1_000_000)[1] is None
    assert LETTER.record(b"k", b"v" * 10_000, 100)[1] == b""

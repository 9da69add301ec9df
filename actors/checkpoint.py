"""Consistent checkpoints on disk: one atomic file per checkpoint, checksummed and versioned.

A checkpoint holds every window actor's state, the input offsets that state reflects, and the
coordinator's publication bookkeeping (revisions, epoch, history). The coordinator takes it with
a stop-the-world barrier (see CoordinatorActor.checkpoint): every ingest actor pauses and drains,
so window states and offsets describe the same cut of the input.

Layout of a file: ``MAGIC`` | version byte | CRC-32 of the body (big-endian) | body.

- Version 2 (written): the body is length-prefixed sections, each a little-endian u64 length
  then the bytes: first zlib(JSON) of sequence, epoch, offsets, revisions, history, created_at
  and the number of windows, then one section per window actor's blob, raw (the blobs carry
  random 64-bit dedup ids, which neither base64 nor zlib should touch).
- Version 1 (still read, so an upgrade restores): the body is zlib(JSON) with the window blobs
  base64-encoded inside.

Written to a temporary name, fsynced, then renamed, so a crash leaves either the old or the new
file; a file that fails its magic, checksum, version or layout is skipped and the previous good
one is used.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"CMCK"
VERSION = 2
_HEADER = len(MAGIC) + 1 + 4
SECTION = struct.Struct("<Q")
"""Length prefix of a section (checkpoint files and window snapshots)."""


@dataclass
class Checkpoint:
    sequence: int
    epoch: int
    offsets: dict[tuple[str, int], int]
    windows: list[bytes]
    revisions: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0

    def encode(self) -> bytes:
        return b"".join(self.encode_parts())

    def encode_parts(self) -> list[bytes | memoryview]:
        """The file as a list of buffers (joined, they are ``encode()``): the window blobs are
        not copied, and the CRC runs over them in place."""
        header = {
            "sequence": self.sequence,
            "epoch": self.epoch,
            "offsets": [[t, p, o] for (t, p), o in sorted(self.offsets.items())],
            "windows": len(self.windows),
            "revisions": self.revisions,
            "history": self.history,
            "created_at": self.created_at,
        }
        body: list[bytes | memoryview] = []
        for section in (
            zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 1),
            *self.windows,
        ):
            body += [SECTION.pack(len(section)), section]
        crc = _crc32(body)
        return [MAGIC + bytes([VERSION]) + crc.to_bytes(4, "big"), *body]

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        if data[: len(MAGIC)] != MAGIC or len(data) < _HEADER:
            raise ValueError("not a checkpoint")
        version = data[len(MAGIC)]
        if version not in (1, 2):
            raise ValueError(f"unsupported checkpoint version {version}")
        body = memoryview(data)[_HEADER:]
        if zlib.crc32(body).to_bytes(4, "big") != data[len(MAGIC) + 1 : _HEADER]:
            raise ValueError("checkpoint checksum mismatch")
        if version == 1:
            return cls._from_header(json.loads(zlib.decompress(body)), None)
        sections = split_sections(body, "checkpoint")
        header = json.loads(zlib.decompress(sections[0]))
        windows = [bytes(s) for s in sections[1:]]
        if len(windows) != int(header["windows"]):
            raise ValueError("checkpoint window count mismatch")
        return cls._from_header(header, windows)

    @classmethod
    def _from_header(cls, body: dict[str, Any], windows: list[bytes] | None) -> Checkpoint:
        return cls(
            sequence=int(body["sequence"]),
            epoch=int(body["epoch"]),
            offsets={(t, int(p)): int(o) for t, p, o in body["offsets"]},
            windows=windows
            if windows is not None
            else [base64.b64decode(w) for w in body["windows"]],
            revisions={k: int(v) for k, v in body["revisions"].items()},
            history=list(body["history"]),
            created_at=float(body["created_at"]),
        )


def _crc32(parts: Iterable[bytes | memoryview]) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


def split_sections(body: memoryview, what: str) -> list[memoryview]:
    """Length-prefixed sections filling ``body`` exactly (else ValueError naming ``what``)."""
    sections = []
    offset = 0
    while offset < len(body):
        if len(body) < offset + SECTION.size:
            raise ValueError(f"{what} section truncated")
        (size,) = SECTION.unpack_from(body, offset)
        offset += SECTION.size
        if len(body) < offset + size:
            raise ValueError(f"{what} section truncated")
        sections.append(body[offset : offset + size])
        offset += size
    if not sections:
        raise ValueError(f"{what} has no header")
    return sections


class CheckpointStore:
    """A directory of checkpoint files; the newest readable one wins."""

    def __init__(self, directory: str | Path, kept: int = 3) -> None:
        self.directory = Path(directory)
        self.kept = kept

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("checkpoint-*.ckpt"), reverse=True)

    def write(self, checkpoint: Checkpoint) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"checkpoint-{checkpoint.sequence:012d}.ckpt"
        temporary = final.with_suffix(".tmp")
        with open(temporary, "wb") as out:
            for part in checkpoint.encode_parts():
                out.write(part)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        for old in self._files()[self.kept :]:
            old.unlink(missing_ok=True)
        return final

    def latest(self) -> Checkpoint | None:
        for path in self._files():
            try:
                return Checkpoint.decode(path.read_bytes())
            except (OSError, ValueError, KeyError, TypeError, zlib.error) as exc:
                log.warning("skipping unreadable checkpoint %s: %s", path.name, exc)
        return None

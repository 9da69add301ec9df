"""The contents and byte layout of a consistent checkpoint (pure: no file I/O, see
actors/checkpoint.py for where files go).

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
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"CMCK"
VERSION = 2
_HEADER = len(MAGIC) + 1 + 4
SECTION = struct.Struct("<Q")
"""Length prefix of a section (checkpoint files and window snapshots)."""


@dataclass(frozen=True)
class Source:
    """Where a checkpoint's offsets come from, so a restart can tell whether they apply."""

    cluster_id: str | None
    """The Kafka cluster id the broker reports (None when it reports none)."""
    group_id: str
    partitions: dict[str, int] = field(default_factory=dict)
    """Partition count of each input topic when the pipeline started."""

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Source:
        cluster = obj.get("cluster_id")
        return cls(
            cluster_id=None if cluster is None else str(cluster),
            group_id=str(obj["group_id"]),
            partitions={str(t): int(n) for t, n in dict(obj.get("partitions", {})).items()},
        )


@dataclass
class Checkpoint:
    sequence: int
    epoch: int
    offsets: dict[tuple[str, int], int]
    windows: list[bytes]
    revisions: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    source: Source | None = None
    """The Kafka cluster, group and input partitions the offsets belong to (None in files
    written before it was recorded)."""

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
        if self.source is not None:
            header["source"] = {
                "cluster_id": self.source.cluster_id,
                "group_id": self.source.group_id,
                "partitions": self.source.partitions,
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
            source=Source.from_obj(body["source"]) if "source" in body else None,
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

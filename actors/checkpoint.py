"""Consistent checkpoints on disk: one atomic file per checkpoint, checksummed and versioned.

A checkpoint holds every window actor's state, the input offsets that state reflects, and the
coordinator's publication bookkeeping (revisions, epoch, history). The coordinator takes it with
a stop-the-world barrier (see CoordinatorActor.checkpoint): every ingest actor pauses and drains,
so window states and offsets describe the same cut of the input.

Layout of a file: ``MAGIC`` | version byte | CRC-32 of the body | zlib(JSON). Written to a
temporary name, fsynced, then renamed, so a crash leaves either the old or the new file; a file
that fails its checksum or version is skipped and the previous good one is used.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"CMCK"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 4


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
        body = {
            "sequence": self.sequence,
            "epoch": self.epoch,
            "offsets": [[t, p, o] for (t, p), o in sorted(self.offsets.items())],
            "windows": [base64.b64encode(w).decode() for w in self.windows],
            "revisions": self.revisions,
            "history": self.history,
            "created_at": self.created_at,
        }
        payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
        return MAGIC + bytes([VERSION]) + zlib.crc32(payload).to_bytes(4, "big") + payload

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        if data[: len(MAGIC)] != MAGIC or len(data) < _HEADER:
            raise ValueError("not a checkpoint")
        if data[len(MAGIC)] != VERSION:
            raise ValueError(f"unsupported checkpoint version {data[len(MAGIC)]}")
        payload = data[_HEADER:]
        if zlib.crc32(payload).to_bytes(4, "big") != data[len(MAGIC) + 1 : _HEADER]:
            raise ValueError("checkpoint checksum mismatch")
        body = json.loads(zlib.decompress(payload))
        return cls(
            sequence=int(body["sequence"]),
            epoch=int(body["epoch"]),
            offsets={(t, int(p)): int(o) for t, p, o in body["offsets"]},
            windows=[base64.b64decode(w) for w in body["windows"]],
            revisions={k: int(v) for k, v in body["revisions"].items()},
            history=list(body["history"]),
            created_at=float(body["created_at"]),
        )


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
            out.write(checkpoint.encode())
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

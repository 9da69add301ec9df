"""Checkpoint files: one atomic file per checkpoint, the newest readable one wins.

Written to a temporary name, fsynced, then renamed, so a crash leaves either the old or the new
file; a file that fails its magic, checksum, version or layout is skipped and the previous good
one is used. The layout is reducer/nodes/checkpoint.py.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

from reducer.nodes.checkpoint import Checkpoint

log = logging.getLogger(__name__)


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

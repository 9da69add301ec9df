"""Checkpoint files on local disk, NFS or object storage (pyarrow.fs): the newest readable one
wins.

``location`` follows Ray Train and Tune's ``storage_path``: a local path, or a URI pyarrow.fs
understands (``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``, ``file:///...``); credentials
come from the environment as pyarrow's filesystems read them, never from here.

On a local filesystem a checkpoint is written to a temporary name, fsynced, then renamed, so a
crash leaves either the old or the new file; on an object store one PUT is atomic by itself.
A file that cannot be read back for any reason (magic, checksum, version, layout, or anything
else a crafted file can raise) is skipped, with a warning naming why, and the previous one is
used. The byte layout is reducer/nodes/checkpoint.py.
"""

from __future__ import annotations

import logging
import os
import re
import time

import pyarrow.fs as pafs

from reducer.nodes.checkpoint import Checkpoint

log = logging.getLogger(__name__)
_NAME = re.compile(r"^checkpoint-(\d{12})\.ckpt$")


def open_location(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of a local path or URI."""
    location = os.fspath(location)
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


class CheckpointStore:
    """A folder of checkpoint files: ``checkpoint-<sequence>.ckpt``, the newest ``kept``."""

    def __init__(self, location: str | os.PathLike[str], kept: int = 3) -> None:
        self.location = os.fspath(location)
        self.kept = kept
        self.fs, self.root = open_location(location)
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    def _files(self) -> list[str]:
        """Checkpoint file paths, newest first."""
        selector = pafs.FileSelector(self.root, allow_not_found=True)
        names = [
            info.base_name
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and _NAME.match(info.base_name)
        ]
        return [f"{self.root}/{name}" for name in sorted(names, reverse=True)]

    def write(self, checkpoint: Checkpoint) -> int:
        """Write one checkpoint, drop the oldest beyond ``kept``; returns its size in bytes."""
        self.fs.create_dir(self.root, recursive=True)
        final = f"{self.root}/checkpoint-{checkpoint.sequence:012d}.ckpt"
        parts = checkpoint.encode_parts()
        if self._local:
            self._write_local(final, parts)
        else:
            with self.fs.open_output_stream(final) as out:
                for part in parts:
                    out.write(part)
        for old in self._files()[self.kept :]:
            self.fs.delete_file(old)
        return sum(len(part) for part in parts)

    def _write_local(self, final: str, parts: list) -> None:
        temporary = final + ".tmp"
        with open(temporary, "wb") as out:
            for part in parts:
                out.write(part)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def latest(self) -> Checkpoint | None:
        for path in self._files():
            try:
                with self.fs.open_input_file(path) as stream:
                    return Checkpoint.decode(stream.read())
            except Exception as exc:  # any defect of one file: fall back to the previous one
                log.warning(
                    "skipping unreadable checkpoint %s: %s: %s",
                    path.rsplit("/", 1)[-1],
                    type(exc).__name__,
                    str(exc)[:200],
                )
        return None

    def set_aside(self) -> str | None:
        """Move every checkpoint into a ``reset-<unix time>`` folder (an operator's reset);
        returns that folder, or None when there was nothing to move."""
        files = self._files()
        if not files:
            return None
        folder = f"{self.root}/reset-{int(time.time())}"
        self.fs.create_dir(folder, recursive=True)
        for path in files:
            self.fs.move(path, f"{folder}/{path.rsplit('/', 1)[-1]}")
        return folder

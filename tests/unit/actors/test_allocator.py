"""A window actor's process keeps large blocks mmapped, so its heap does not fragment."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# In a child process: this setting is for the whole process, and the test reads its allocator.
CHILD = """
import ctypes, json
import numpy as np
from actors.window import WindowActor
from models.settings import PipelineSettings, ReducerSettings

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
WindowActor.__ray_metadata__.modified_class(0, ReducerSettings(), PipelineSettings())
big = np.ones(16 << 20, dtype=np.uint8)  # mmapped; freeing it raises glibc's dynamic threshold
del big
before = libc.mallinfo2().hblkhd
ids = np.ones(4 << 20, dtype=np.uint8)  # a dedup hour's ids of half a million events
print(json.dumps({"mmapped": libc.mallinfo2().hblkhd - before >= ids.nbytes}))
"""


def _has_mallinfo2() -> bool:
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except (OSError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33")
def test_a_window_actor_serves_large_arrays_with_mmap_even_after_freeing_a_larger_one() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"mmapped": True}

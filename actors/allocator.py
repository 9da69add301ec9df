"""The C allocator of a long-lived actor process: large blocks always mmapped (glibc only).

glibc serves blocks of at least ``M_MMAP_THRESHOLD`` bytes with mmap and gives them back to the
kernel on free. Its default threshold is dynamic: it starts at 128 KiB and rises to the size of
any mmapped block freed, up to 32 MiB. A window actor frees such blocks all the time: every
merge of an hour's dedup ids rewrites one sorted array (up to 14 MiB at the 1-hour horizon and
500 events/s per actor), and every checkpoint copies them. Once the threshold has risen, those
arrays come from the heap instead; the heap fragments and keeps growing (measured: a window
actor's RSS grew 143 -> 201 MiB over hours 2 to 4 of event time with the default, and stayed on
one 95 -> 105 MiB saw-tooth per hour with a fixed 1 MiB threshold; git log has the run).
Setting the threshold fixes it and turns the dynamic rule off, for the whole process.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
LARGE_BLOCK_BYTES = 1 << 20


def fix_mmap_threshold(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve every block of ``threshold`` bytes or more with mmap, for good. Returns whether the
    C library took the setting (False where there is no glibc ``mallopt``)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))

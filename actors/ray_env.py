"""The environment every Ray process of the pipeline starts with.

Ray reads these variables when a process starts, and the raylet and every worker inherit the
environment of whoever started Ray, so they are set before a local Ray starts (``ray start`` on a
cluster: see cluster.yaml). Values already in the environment win.
"""

from __future__ import annotations

import os

INLINE_ARGUMENT_BYTES = 4 * 1024 * 1024
"""Largest actor-call argument (or return value) sent inside the call rather than through the
object store. Ray's default, 100 KB, puts a batch of 1000 raw messages split over 2 window actors
(about 200 KB each) into shared memory and back; the raylet spent 0.17-0.50 cores on that
(benchmarks/e2e.py at batch 1000, measured with and without it)."""

RAY_ENVIRONMENT: dict[str, str] = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no telemetry
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # A stray ~/.ray/auth_token must not switch token auth on for one process alone.
    "RAY_AUTH_MODE": "disabled",
    "RAY_max_direct_call_object_size": str(INLINE_ARGUMENT_BYTES),
}


def apply_ray_environment() -> None:
    """Set the pipeline's Ray variables that the environment does not already set."""
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)

"""Nearest-rank percentiles, the one definition used for p50, p95 and p99 alike."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal


def nearest_rank(p: float, n: int) -> int:
    """1-based rank of the p-th percentile among n values: ceil(p * n), clamped to [1, n].

    p is taken at its decimal value (``repr``), so 0.07 of 100 values is rank 7, not the 8 that
    float multiplication (0.07 * 100 = 7.000000000000001) gives.
    """
    if p <= 0:
        return 1
    if p >= 1:
        return n
    rank = int((Decimal(repr(float(p))) * n).to_integral_value(rounding=ROUND_CEILING))
    return min(max(rank, 1), n)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile. Empty -> 0.0; p <= 0 -> min; p >= 1 -> max."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[nearest_rank(p, len(ordered)) - 1])

"""Exact, mergeable float sums, so every mean is rounded once and merges are order-free.

A sum is held as an integer count of 2**-1074 (the smallest subnormal), which represents any sum
of finite doubles exactly. Means divide that integer by count * 2**1074 with Python's correctly
rounded int division: the mean of five values of 0.92 is exactly 0.92. Adding a batch costs about
one ``math.fsum`` pass per value instead of a bignum operation per value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SCALE_BITS = 1074
_ONE = 1 << SCALE_BITS


def scaled(value: float) -> int:
    """``value * 2**1074`` as an exact integer."""
    numerator, denominator = value.as_integer_ratio()
    return numerator << (SCALE_BITS + 1 - denominator.bit_length())


def scaled_sum(values: list[float]) -> int:
    """Exact sum of ``values`` times 2**1074.

    Repeated ``fsum`` peels the exact sum into non-overlapping doubles (usually two or three
    passes); if an intermediate overflows, fall back to one bignum per value.
    """
    if len(values) == 1:
        return scaled(values[0])
    total = 0
    peeled: list[float] = []
    try:
        while True:
            head = math.fsum(values + peeled) if peeled else math.fsum(values)
            if head == 0.0:
                return total
            total += scaled(head)
            peeled.append(-head)
    except OverflowError:
        return sum(map(scaled, values))


def to_float(scaled_value: int) -> float:
    """The sum as a float, correctly rounded; beyond the largest double it saturates to +-inf
    (as a float running sum would) rather than raising OverflowError."""
    try:
        return scaled_value / _ONE
    except OverflowError:
        return math.inf if scaled_value > 0 else -math.inf


def ratio(scaled_value: int, count: int) -> float:
    """Correctly rounded ``sum / count`` (0.0 when count is 0)."""
    return scaled_value / (count << SCALE_BITS) if count else 0.0


def encode(scaled_value: int) -> list[int | str]:
    """Compact JSON form: trailing zero bits stripped, mantissa as hex."""
    if scaled_value == 0:
        return ["0", 0]
    shift = (scaled_value & -scaled_value).bit_length() - 1
    return [format(scaled_value >> shift, "x"), shift]


def decode(obj: Iterable[int | str]) -> int:
    mantissa, shift = obj
    return int(str(mantissa), 16) << int(shift)


class ExactMean:
    """Exact sum and count of the values that carried one."""

    __slots__ = ("count", "total")

    def __init__(self, total: int = 0, count: int = 0) -> None:
        self.total = total
        self.count = count

    def add(self, value: float) -> None:
        self.total += scaled(value)
        self.count += 1

    def extend(self, values: list[float]) -> None:
        if values:
            self.total += scaled_sum(values)
            self.count += len(values)

    def merge_from(self, other: ExactMean) -> None:
        self.total += other.total
        self.count += other.count

    @property
    def mean(self) -> float:
        return ratio(self.total, self.count)

    @property
    def sum(self) -> float:
        return to_float(self.total)

    def to_obj(self) -> list:
        return [encode(self.total), self.count]

    @classmethod
    def from_obj(cls, obj: list) -> ExactMean:
        return cls(decode(obj[0]), int(obj[1]))

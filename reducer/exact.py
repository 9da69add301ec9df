"""Exact, mergeable float sums, so every mean is rounded once and merges are order-free.

A sum is held as an integer count of 2**-1074 (the smallest subnormal), which represents any sum
of finite doubles exactly. Means divide that integer by count * 2**1074 with Python's correctly
rounded int division: the mean of five values of 0.92 is exactly 0.92. Adding a batch costs about
one ``math.fsum`` pass per value instead of a bignum operation per value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable

from reducer import codec

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


def finite(scaled_value: int, what: str) -> float:
    """The sum as a float, correctly rounded; raises ValueError naming ``what`` if it is beyond
    the largest double (a sum of finite values can be: two costs of 1e308)."""
    value = to_float(scaled_value)
    if math.isinf(value):
        raise ValueError(
            f"{what}: the exact sum {'-' if value < 0 else ''}2**"
            f"{scaled_value.bit_length() - SCALE_BITS - 1} or more exceeds the float range"
        )
    return value


def ratio(scaled_value: int, count: int) -> float:
    """Correctly rounded ``sum / count`` (0.0 when count is 0)."""
    return scaled_value / (count << SCALE_BITS) if count else 0.0


def encode(scaled_value: int) -> list[int | str]:
    """Compact JSON form: trailing zero bits stripped, mantissa as hex."""
    if scaled_value == 0:
        return ["0", 0]
    shift = (scaled_value & -scaled_value).bit_length() - 1
    return [format(scaled_value >> shift, "x"), shift]


MAX_SCALED = scaled(sys.float_info.max)
"""The largest finite double times 2**1074: a sum of n finite values is at most n times it."""
_MAX_BITS = MAX_SCALED.bit_length() + codec.MAX_COUNT.bit_length()
_MAX_DIGITS = -(-_MAX_BITS // 4) + 1  # hex digits of the largest total, and a sign
_SAFE_BITS = MAX_SCALED.bit_length()  # a total of fewer bits is below MAX_SCALED: any count


def decode(obj: Iterable[int | str], what: str = "exact sum") -> int:
    """Inverse of ``encode``; raises StateCodecError (before allocating) for a total of more
    than 2161 bits, the most ``codec.MAX_COUNT`` finite doubles can sum to."""
    mantissa, shift = codec.items(obj, what, length=2)
    digits = codec.text(mantissa, what, _MAX_DIGITS)
    shift = codec.integer(shift, what, 0, _MAX_BITS)
    try:
        value = int(digits, 16)
    except ValueError:
        raise codec.fail(what, "is not a hexadecimal integer") from None
    if value.bit_length() + shift > _MAX_BITS:
        raise codec.fail(what, f"has more than {_MAX_BITS} bits")
    return value << shift


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
    def from_obj(cls, obj: list, what: str = "exact mean") -> ExactMean:
        """Inverse of ``to_obj``; raises StateCodecError unless the total is a sum ``count``
        finite doubles could have (at most count times the largest double), so every mean is
        finite."""
        # The shape every state has, checked inline: a state holds thousands of these.
        if type(obj) is list and len(obj) == 2:
            pair, count = obj
            if type(pair) is list and len(pair) == 2 and type(count) is int and count >= 0:
                digits, shift = pair
                if (
                    type(digits) is str
                    and len(digits) <= _MAX_DIGITS
                    and type(shift) is int
                    and 0 <= shift <= _MAX_BITS
                    and count <= codec.MAX_COUNT
                ):
                    try:
                        value = int(digits, 16)
                    except ValueError:
                        value = None
                    if value is not None:
                        bits = value.bit_length() + shift
                        if (count and bits < _SAFE_BITS) or value == 0:
                            return cls(value << shift, count)
        return cls._checked(obj, what)

    @classmethod
    def _checked(cls, obj: list, what: str) -> ExactMean:
        """``from_obj`` step by step, naming what is wrong."""
        total, count = codec.items(obj, what, length=2)
        count = codec.count(count, what + ".count")
        total = decode(total, what + ".sum")
        if abs(total) > count * MAX_SCALED:
            raise codec.fail(what, f"has a sum no {count} finite values can have")
        return cls(total, count)

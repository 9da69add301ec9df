"""Distinct workflow ids: an exact set up to a cap, then a HyperLogLog.

HyperLogLog with 2**16 one-byte registers (64 KB, only once past the cap), estimated with
Ertl's improved estimator: standard error about 1.04/sqrt(2**16) = 0.41% over the whole range,
with no switch-over bias (the classic linear-counting switch at 2.5 * 2**16 read up to 3.0%
high near 160,000 ids). Measured from 1,000 to 2,000,000 ids, 5 seeds, 45 points each: at most
0.82% off (tests/unit/reducer/test_distinct.py asserts 1.2%). Registers merge by element-wise
max, so the estimate depends only on the set of ids, never on merge order.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable
from hashlib import blake2b

import numpy as np

PRECISION = 16
REGISTERS = 1 << PRECISION
_ALPHA_INF = 1 / (2 * math.log(2))
MAX_ESTIMATE = 2**53
"""Estimates are capped here: exact in a double, and far beyond any fleet."""
_LOW_BITS = 64 - PRECISION


def hash64(value: int) -> int:
    """Stable 64-bit hash of a 128-bit id (UUIDs need not be random, e.g. version 1)."""
    return int.from_bytes(hashlib.blake2b(value.to_bytes(16, "little"), digest_size=8).digest())


class DistinctCounter:
    __slots__ = ("exact_cap", "ids", "registers")

    def __init__(self, exact_cap: int) -> None:
        self.exact_cap = exact_cap
        self.ids: set[int] | None = set()
        self.registers: np.ndarray | None = None

    @property
    def exact(self) -> bool:
        return self.ids is not None

    def add_many(self, ids: Iterable[int]) -> None:
        if self.ids is not None:
            self.ids.update(ids)
            if len(self.ids) > self.exact_cap:
                self._to_sketch()
        else:
            self._observe(ids)

    def _to_sketch(self) -> None:
        self.registers = np.zeros(REGISTERS, dtype=np.uint8)
        ids, self.ids = self.ids, None
        self._observe(ids)

    def _observe(self, ids: Iterable[int]) -> None:
        # hash64 of every id, as one buffer of big-endian digests (int.from_bytes's order).
        digests = b"".join([blake2b(i.to_bytes(16, "little"), digest_size=8).digest() for i in ids])
        hashes = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
        if not hashes.size:
            return
        index = (hashes >> np.uint64(_LOW_BITS)).astype(np.intp)
        rest = (hashes & np.uint64((1 << _LOW_BITS) - 1)).astype(np.float64)  # exact: < 2**53
        _, exponent = np.frexp(rest)  # rest = m * 2**exponent, so floor(log2(rest)) = exponent-1
        rho = np.where(rest > 0, _LOW_BITS - exponent + 1, _LOW_BITS + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rho)

    def merge_from(self, other: DistinctCounter) -> None:
        if other.ids is not None:
            self.add_many(other.ids)
            return
        if self.ids is not None:
            self._to_sketch()
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> int:
        if self.ids is not None:
            return len(self.ids)
        counts = np.bincount(self.registers, minlength=_LOW_BITS + 2)
        # Saturated registers (2**49 ids or more, or a crafted state) estimate infinity.
        return round(min(ertl_estimate(counts.tolist(), REGISTERS), MAX_ESTIMATE))

    def to_obj(self) -> dict:
        if self.ids is not None:
            return {"ids": [format(i, "x") for i in sorted(self.ids)]}
        return {"hll": base64.b64encode(self.registers.tobytes()).decode()}

    @classmethod
    def from_obj(cls, obj: dict, exact_cap: int) -> DistinctCounter:
        counter = cls(exact_cap)
        if "ids" in obj:
            counter.ids = {int(i, 16) for i in obj["ids"]}
        else:
            counter.ids = None
            counter.registers = np.frombuffer(base64.b64decode(obj["hll"]), np.uint8).copy()
        return counter


def ertl_estimate(counts: list[int], m: int) -> float:
    """Ertl's improved raw estimator ("New cardinality estimation algorithms for HyperLogLog
    sketches", 2017, algorithm 6) from the histogram of register values (``counts[k]``
    registers hold k, for k = 0 .. q + 1). It needs neither linear counting nor bias tables:
    its relative error stays near 1.04/sqrt(m) across the whole range, where the classic
    estimator's switch from linear counting at 2.5 m read 2-2.8% high."""
    q = len(counts) - 2
    z = m * _tau(1 - counts[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * _sigma(counts[0] / m)
    return _ALPHA_INF * m * m / z if z > 0 else math.inf


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0

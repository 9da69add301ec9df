"""Duration percentiles: exact up to a cap of samples, then a mergeable DDSketch-style sketch.

Guarantee: in sketch mode a nearest-rank percentile is within ``relative_accuracy`` (alpha,
default 1%) of the exact nearest-rank value, because the query returns the representative of the
very bin that holds the ceil(p*N)-th smallest value, and every bin's representative is within
alpha of each value it holds (logarithmic mapping, gamma = (1+alpha)/(1-alpha)).

Size: bins are dense int64 counts; at alpha = 1% one bin spans 2%, so 1 ms .. 1 day takes about
920 bins (7.4 KB). At most ``BIN_LIMIT`` = 4096 bins (32 KB) are kept; beyond that the lowest bins
collapse into the lowest kept one, which only ever affects the smallest values (a span of
gamma**4096 ~ 10**35 must be exceeded first). Merging adds bin counts, so merge order never
changes a result, and min and max stay exact.

Why not the ``ddsketch`` package: its quantile query uses rank q*(N-1), not nearest rank, so it
can answer from the neighbouring bin and break the 1% bound against nearest-rank values; and its
adds are one Python call per value, where this sketch bins a batch with one numpy pass.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array

import numpy as np

from reducer import codec
from reducer.percentile import nearest_rank

BIN_LIMIT = 4096
PENDING_LIMIT = 4096  # sketch mode: values held before one binning pass (32 KB at most)
MIN_INDEXABLE = 2.2250738585072014e-308  # smallest normal double; smaller values count as zero
_LOG_RANGE = max(-math.log(MIN_INDEXABLE), math.log(sys.float_info.max))  # 709.78


class LogSketch:
    """Counts of values per logarithmic bin (positive values) plus a zero count."""

    __slots__ = ("counts", "gamma", "log_gamma", "offset", "relative_accuracy", "zero_count")

    def __init__(self, relative_accuracy: float) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self.log_gamma = math.log(self.gamma)
        if not self.log_gamma > 0:  # below about 1e-16, gamma rounds to 1
            raise ValueError(f"relative_accuracy {relative_accuracy} is too small for a double")
        self.counts = np.zeros(0, dtype=np.int64)
        self.offset = 0
        self.zero_count = 0

    @property
    def count(self) -> int:
        return int(self.counts.sum()) + self.zero_count

    def add_many(self, values: np.ndarray) -> None:
        positive = values[values >= MIN_INDEXABLE]
        self.zero_count += int(values.size - positive.size)
        if positive.size:
            keys = np.ceil(np.log(positive) / self.log_gamma).astype(np.int64)
            self._add_keys(keys, None)

    def merge_from(self, other: LogSketch) -> None:
        if other.gamma != self.gamma:
            raise ValueError("cannot merge sketches of different relative accuracy")
        self.zero_count += other.zero_count
        if other.counts.size:
            keys = np.arange(other.offset, other.offset + other.counts.size, dtype=np.int64)
            self._add_keys(keys, other.counts)

    def _add_keys(self, keys: np.ndarray, weights: np.ndarray | None) -> None:
        low, high = int(keys.min()), int(keys.max())
        if self.counts.size:
            low = min(low, self.offset)
            high = max(high, self.offset + self.counts.size - 1)
        floor = max(low, high - BIN_LIMIT + 1)
        size = high - floor + 1
        if self.counts.size and floor == self.offset and size == self.counts.size:
            counts = self.counts
        else:
            counts = np.zeros(size, dtype=np.int64)
            if self.counts.size:
                old_keys = np.arange(self.offset, self.offset + self.counts.size) - floor
                np.add.at(counts, np.maximum(old_keys, 0), self.counts)
        counts += np.bincount(np.maximum(keys - floor, 0), weights=weights, minlength=size).astype(
            np.int64
        )
        self.counts, self.offset = counts, floor

    def value_at_rank(self, rank: int) -> float:
        """Representative value of the bin holding the rank-th smallest value (1-based)."""
        if rank <= self.zero_count:
            return 0.0
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, rank - self.zero_count))
        index = min(index, self.counts.size - 1)
        try:
            return 2 * self.gamma ** (self.offset + index) / (self.gamma + 1)
        except OverflowError:  # the top bin of values near the largest double
            return math.inf

    @property
    def key_bound(self) -> int:
        """Largest magnitude of a bin key: the key of the largest double (or of the smallest
        normal one, whichever is further from 1)."""
        return math.ceil(_LOG_RANGE / self.log_gamma) + 1

    def to_obj(self) -> dict:
        return {
            "a": self.relative_accuracy,
            "z": self.zero_count,
            "o": self.offset,
            "c": base64.b64encode(self.counts.astype("<i8").tobytes()).decode(),
        }

    @classmethod
    def from_obj(cls, obj: dict, relative_accuracy: float, what: str = "sketch") -> LogSketch:
        """Inverse of ``to_obj`` for a sketch of ``relative_accuracy``; raises StateCodecError
        (before allocating) unless it has at most ``BIN_LIMIT`` non-negative bins whose keys
        lie within ``key_bound``."""
        if codec.real(codec.field(obj, "a", what), what + ".a") != relative_accuracy:
            raise codec.fail(what, f"is not of relative accuracy {relative_accuracy}")
        sketch = cls(relative_accuracy)
        sketch.zero_count = codec.count(codec.field(obj, "z", what), what + ".z")
        bound = sketch.key_bound
        sketch.offset = codec.integer(codec.field(obj, "o", what), what + ".o", -bound, bound)
        raw = codec.b64(codec.field(obj, "c", what), what + ".c", 8 * BIN_LIMIT, 8)
        counts = np.frombuffer(raw, dtype="<i8").astype(np.int64)
        if sketch.offset + counts.size - 1 > bound:
            raise codec.fail(what, f"has bins beyond key {bound}")
        if counts.size and int(counts.min()) < 0:
            raise codec.fail(what, "has a negative bin count")
        sketch.counts = counts
        return sketch


class QuantileStore:
    """Exact samples while there are at most ``exact_cap`` of them, a LogSketch beyond.

    The switch depends only on the total count, so a store built from any split of the same
    values, merged in any order, answers identically. In sketch mode, values are binned in
    chunks of at least ``PENDING_LIMIT`` (a numpy pass per chunk, not per small batch): the bin
    counts do not depend on how the values were chunked, and every read (``sketch``,
    ``quantile``, ``to_obj``, merging) bins the pending values first.
    """

    __slots__ = (
        "_pending",
        "_sketch",
        "count",
        "exact_cap",
        "max",
        "min",
        "relative_accuracy",
        "samples",
    )

    def __init__(self, exact_cap: int, relative_accuracy: float) -> None:
        self.exact_cap = exact_cap
        self.relative_accuracy = relative_accuracy
        self.samples: array | None = array("d")
        self._sketch: LogSketch | None = None
        self._pending: array = array("d")
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def exact(self) -> bool:
        return self._sketch is None

    @property
    def sketch(self) -> LogSketch | None:
        """The sketch (None in exact mode), with every value added so far binned."""
        if self._pending:
            self._flush()
        return self._sketch

    @sketch.setter
    def sketch(self, value: LogSketch | None) -> None:
        self._sketch = value
        self._pending = array("d")

    def _flush(self) -> None:
        pending, self._pending = self._pending, array("d")
        self._sketch.add_many(np.frombuffer(pending, dtype=np.float64))

    def extend(self, values: list[float]) -> None:
        if not values:
            return
        self.count += len(values)
        self.min = min(self.min, min(values))
        self.max = max(self.max, max(values))
        if self.samples is not None:
            self.samples.extend(values)
            if len(self.samples) > self.exact_cap:
                self._to_sketch()
        else:
            self._pending.extend(values)
            if len(self._pending) >= PENDING_LIMIT:
                self._flush()

    def _to_sketch(self) -> None:
        self.sketch = LogSketch(self.relative_accuracy)
        self._sketch.add_many(np.frombuffer(self.samples, dtype=np.float64))
        self.samples = None

    def merge_from(self, other: QuantileStore) -> None:
        if other.count == 0:
            return
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.samples is not None:
            if self.samples is not None:
                self.samples.extend(other.samples)
                if len(self.samples) > self.exact_cap:
                    self._to_sketch()
            else:
                self.sketch.add_many(np.frombuffer(other.samples, dtype=np.float64))
            return
        if self.samples is not None:
            self._to_sketch()
        sketch = self.sketch
        sketch.merge_from(other._sketch)
        if other._pending:
            sketch.add_many(np.frombuffer(other._pending, dtype=np.float64))

    def quantile(self, p: float) -> float:
        """Nearest-rank percentile; exact in exact mode, within alpha otherwise."""
        if self.count == 0:
            return 0.0
        if p <= 0:
            return self.min
        if p >= 1:
            return self.max
        rank = nearest_rank(p, self.count)
        if self.samples is not None:
            return float(np.partition(np.frombuffer(self.samples, np.float64), rank - 1)[rank - 1])
        return min(max(self.sketch.value_at_rank(rank), self.min), self.max)

    def to_obj(self) -> dict:
        obj: dict = {"n": self.count, "lo": self.min, "hi": self.max}
        if self.samples is not None:
            obj["s"] = base64.b64encode(self.samples.tobytes()).decode()
        else:
            obj["k"] = self.sketch.to_obj()
        return obj

    @classmethod
    def from_obj(
        cls, obj: dict, exact_cap: int, relative_accuracy: float, what: str = "quantiles"
    ) -> QuantileStore:
        """Inverse of ``to_obj``; raises StateCodecError (before allocating) unless the store is
        consistent: exact samples (finite, at most ``exact_cap``, as many as the count, with
        the recorded min and max) or a sketch whose bins hold the count."""
        store = cls(exact_cap, relative_accuracy)
        store.count = codec.count(codec.field(obj, "n", what), what + ".n")
        if store.count:
            store.min = codec.real(codec.field(obj, "lo", what), what + ".lo")
            store.max = codec.real(codec.field(obj, "hi", what), what + ".hi")
            if store.min > store.max:
                raise codec.fail(what, "has a min above its max")
        if ("s" in obj) == ("k" in obj):
            raise codec.fail(what, "must hold either samples or a sketch")
        if "s" in obj:
            if store.count > exact_cap:
                raise codec.fail(what, f"holds {store.count} exact samples, more than {exact_cap}")
            raw = codec.b64(obj["s"], what + ".s", 8 * store.count, 8)
            samples = array("d", raw)
            if len(samples) != store.count:
                raise codec.fail(what, f"holds {len(samples)} samples, not {store.count}")
            if samples and not _finite_within(samples, store.min, store.max):
                raise codec.fail(what, "has samples that are not finite or not within min/max")
            store.samples = samples
        else:
            store.samples = None
            sketch = LogSketch.from_obj(obj["k"], relative_accuracy, what + ".k")
            if sketch.zero_count + sum(sketch.counts.tolist()) != store.count:
                raise codec.fail(what, f"has a sketch that does not hold {store.count} values")
            store.sketch = sketch
        return store


def _finite_within(samples: array, low: float, high: float) -> bool:
    """Every sample finite, the smallest ``low`` and the largest ``high`` (numpy past a few
    dozen samples; below that its per-call cost is the larger)."""
    if len(samples) <= 64:
        return all(map(math.isfinite, samples)) and min(samples) == low and max(samples) == high
    values = np.frombuffer(samples, dtype=np.float64)
    return bool(np.isfinite(values).all()) and values.min() == low and values.max() == high

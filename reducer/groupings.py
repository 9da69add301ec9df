"""Breakdowns by key (stage, model, node type, error code, workflow) with bounded memory.

A breakdown keeps at most ``max_keys`` keys; which ones is decided by a stable hash (the keys with
the smallest hashes win, a bottom-k rule), not by arrival order, so the kept keys and the
``__other__`` fold are a function of the set of keys alone and merges stay order-free. A key that
loses its place is merged into ``__other__``; a key outside the bottom-k can never come back in,
so the kept keys' numbers are always complete.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, Generic, Protocol, Self, TypeVar

from reducer import codec
from reducer.exact import ExactMean, finite, to_float
from reducer.sketch import QuantileStore

OTHER_KEY = "__other__"


class Accumulator(Protocol):
    def merge_from(self, other: Self) -> None: ...
    def to_obj(self) -> Any: ...
    @property
    def weight(self) -> int:
        """How many events it summarises: the largest are kept when a breakdown is trimmed."""
        ...


A = TypeVar("A", bound=Accumulator)


@lru_cache(maxsize=8192)
def key_hash(key: str) -> int:
    """Stable 64-bit hash of a key (memoised: keys recur batch after batch; bounded cache)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).digest())


class Breakdown(Generic[A]):
    __slots__ = ("_factory", "_heap", "ceiling", "entries", "max_key_length", "max_keys", "other")

    def __init__(self, factory: Callable[[], A], max_keys: int, max_key_length: int) -> None:
        self._factory = factory
        self.max_keys = max_keys
        self.max_key_length = max_key_length
        self.entries: dict[str, A] = {}
        self._heap: list[tuple[int, str]] = []  # (-hash, key): the largest kept hash on top
        self.other: A | None = None
        self.ceiling: tuple[int, str] | None = None
        """A rank (-hash, key) below which keys fold even while there is room: a delta
        destined for a breakdown that is already full folds, up front, the keys that breakdown
        would refuse (its bar only ever rises), so the result is the same, only cheaper."""

    def slot(self, key: str) -> A:
        """The accumulator to update for ``key``: its own, or ``__other__``'s."""
        entry = self.kept(key)
        return entry if entry is not None else self._other()

    def kept(self, key: str, new: A | None = None) -> A | None:
        """``key``'s own accumulator (admitting it if it wins a place, as ``new`` if given, else
        a fresh one), or None if it folds."""
        entry = self.entries.get(key)
        if entry is not None:
            return entry
        if len(key) > self.max_key_length:
            key = key[: self.max_key_length]
            entry = self.entries.get(key)
            if entry is not None:
                return entry
        if key == OTHER_KEY:
            return None
        rank = (-key_hash(key), key)
        if self.ceiling is not None and rank < self.ceiling:
            return None
        if len(self.entries) >= self.max_keys:
            if not self._heap or rank <= self._heap[0]:  # hash above every kept key: fold
                return None
            _, evicted = heapq.heapreplace(self._heap, rank)
            self._other().merge_from(self.entries.pop(evicted))
        else:
            heapq.heappush(self._heap, rank)
        entry = self.entries[key] = self._factory() if new is None else new
        return entry

    def bar(self) -> tuple[int, str] | None:
        """A key not kept yet folds now iff its rank is below this (None: any key is admitted).
        It only ever rises (a stricter bar) as keys arrive. The heap top itself is kept, and no
        other key has its rank, so "at or below the top" and "below the top" agree."""
        full = None
        if len(self.entries) >= self.max_keys:
            # No room at all (max_keys 0): above every rank, since -hash <= 0.
            full = self._heap[0] if self._heap else (1, "")
        if self.ceiling is None or (full is not None and full > self.ceiling):
            return full
        return self.ceiling

    def _other(self) -> A:
        if self.other is None:
            self.other = self._factory()
        return self.other

    def merge_from(self, other: Breakdown[A]) -> None:
        """Keys in order of rising hash: once one folds, every later one that is not kept
        already folds too, without being admitted and evicted (the kept set is the same in any
        order; arrival order made large merges churn)."""
        entries = other.entries
        folding = False
        for rank in sorted(((-key_hash(k), k) for k in entries), reverse=True):
            key = rank[1]
            own = self.entries.get(key)
            if own is None and not folding:
                own = self.kept(key)
                bar = self.bar() if own is None else None
                folding = bar is not None and rank < bar
            (own if own is not None else self._other()).merge_from(entries[key])
        if other.other is not None:
            self._other().merge_from(other.other)

    def items(self) -> Iterator[tuple[str, A]]:
        """Kept keys in sorted order, then ``__other__`` if anything folded."""
        for key in sorted(self.entries):
            yield key, self.entries[key]
        if self.other is not None:
            yield OTHER_KEY, self.other

    def __len__(self) -> int:
        return len(self.entries) + (self.other is not None)

    def to_obj(self) -> list:
        return [[key, entry.to_obj()] for key, entry in self.items()]

    def load(self, obj: list, decode: Callable[[Any], A], what: str = "breakdown") -> Self:
        """Merge in the keys of ``to_obj``'s output; raises StateCodecError (before decoding
        any entry) unless it is at most ``max_keys`` + 1 distinct keys (``__other__`` at most
        once), none longer than ``max_key_length``."""
        pairs = codec.items(obj, what, most=self.max_keys + 1)
        longest = self.max_key_length
        for pair in pairs:
            if not (
                type(pair) is list
                and len(pair) == 2
                and type(pair[0]) is str
                and (len(pair[0]) <= longest or pair[0] == OTHER_KEY)
            ):
                key, _ = codec.items(pair, what + " entry", length=2)
                codec.text(key, what + " key", longest)  # raises, naming the problem
        keys = {pair[0] for pair in pairs}
        if len(keys) != len(pairs):
            raise codec.fail(what, "repeats a key")
        if OTHER_KEY not in keys and len(keys) > self.max_keys:
            raise codec.fail(what, f"has more than {self.max_keys} keys besides {OTHER_KEY}")
        for key, obj in pairs:
            entry = decode(obj)
            own = self.kept(key, entry)  # a key admitted now takes the decoded entry itself
            if own is None:
                if self.other is None:
                    self.other = entry
                else:
                    self.other.merge_from(entry)
            elif own is not entry:
                own.merge_from(entry)
        return self

    def top(self, keep: int, *, with_other: bool = True) -> Breakdown[A]:
        """A breakdown of the ``keep`` keys of largest ``weight`` (ties: the smaller key) whose
        ``__other__`` merges every other key exactly (and this one's ``__other__`` if
        ``with_other``). Shares the kept accumulators; changes nothing here. Only for reading:
        adding to it would not follow the bottom-k rule."""
        ranked = sorted(self.entries.items(), key=lambda item: (-item[1].weight, item[0]))
        trimmed: Breakdown[A] = Breakdown(self._factory, self.max_keys, self.max_key_length)
        trimmed.entries = dict(ranked[:keep])
        folded = ranked[keep:]
        if folded or (with_other and self.other is not None):
            other = self._factory()
            if with_other and self.other is not None:
                other.merge_from(self.other)
            for _, entry in folded:
                other.merge_from(entry)
            trimmed.other = other
        return trimmed


class Count:
    """A plain counter as an accumulator (failures by stage or error code)."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def merge_from(self, other: Count) -> None:
        self.n += other.n

    @property
    def weight(self) -> int:
        return self.n

    def to_obj(self) -> int:
        return self.n

    @classmethod
    def from_obj(cls, obj: int, what: str = "count") -> Count:
        return cls(codec.count(obj, what))


class DurationStats:
    """Count, exact mean and percentile store of durations: one stage, model or node type."""

    __slots__ = ("cost", "durations", "failures", "quality", "quantiles", "tokens")

    def __init__(self, exact_cap: int, relative_accuracy: float) -> None:
        self.durations = ExactMean()
        self.quantiles = QuantileStore(exact_cap, relative_accuracy)
        self.failures = 0
        self.quality = ExactMean()
        self.tokens = 0
        self.cost = ExactMean()

    @property
    def count(self) -> int:
        return self.durations.count

    @property
    def weight(self) -> int:
        return self.durations.count

    def add_durations(self, values: list[float]) -> None:
        self.durations.extend(values)
        self.quantiles.extend(values)

    def merge_from(self, other: DurationStats) -> None:
        self.durations.merge_from(other.durations)
        self.quantiles.merge_from(other.quantiles)
        self.failures += other.failures
        self.quality.merge_from(other.quality)
        self.tokens += other.tokens
        self.cost.merge_from(other.cost)

    def to_obj(self) -> list:
        return [
            self.durations.to_obj(),
            self.quantiles.to_obj(),
            self.failures,
            self.quality.to_obj(),
            self.tokens,
            self.cost.to_obj(),
        ]

    @classmethod
    def from_obj(
        cls, obj: list, exact_cap: int, relative_accuracy: float, what: str = "duration stats"
    ) -> DurationStats:
        """Inverse of ``to_obj``; raises StateCodecError unless it is consistent: as many
        percentile values as durations, and no more failures, qualities or costs than that."""
        durations, quantiles, failures, quality, tokens, cost = codec.items(obj, what, length=6)
        stats = cls.__new__(cls)  # every slot is set below
        stats.durations = ExactMean.from_obj(durations, what + " durations")
        n = stats.durations.count
        stats.quantiles = QuantileStore.from_obj(
            quantiles, exact_cap, relative_accuracy, what + " quantiles"
        )
        stats.failures = codec.count(failures, what + " failures", n)
        stats.quality = ExactMean.from_obj(quality, what + " quality")
        stats.tokens = codec.count(tokens, what + " tokens", MAX_TOKEN_TOTAL)
        stats.cost = ExactMean.from_obj(cost, what + " cost")
        if stats.quantiles.count != n or stats.quality.count > n or stats.cost.count > n:
            raise codec.fail(what, "has counts that disagree")
        return stats


MAX_TOKEN_TOTAL = (1 << 127) - 1
"""Largest token total a state may hold (``codec.MAX_COUNT`` events of 2**64 tokens each)."""

# Workflow status bits: OR-ed, so the status never depends on the order events arrive in.
STARTED, STAGED, COMPLETED, FAILED = 1, 2, 4, 8


def workflow_status(bits: int) -> str:
    if bits & COMPLETED:
        return "completed"
    if bits & FAILED:
        return "failed"
    return "running" if bits & STAGED else "started"


# row() lookups: workflow_status depends on the four status bits only; stages 1..8 are bits 1..8.
_STATUS_NAMES = tuple(workflow_status(bits) for bits in range(16))
_STAGE_BITS = 0x1FE
_STAGES_SEEN = tuple(tuple(n for n in range(1, 9) if bits >> n & 1) for bits in range(512))


class WorkflowSummary:
    """One workflow: status bits, stage numbers seen (bitmask), stage time, duration, cost."""

    __slots__ = ("cost", "duration", "stage_time", "stages", "status")

    def __init__(self) -> None:
        self.status = 0
        self.stages = 0
        self.stage_time = ExactMean()
        self.duration = ExactMean()
        self.cost = ExactMean()

    def merge_from(self, other: WorkflowSummary) -> None:
        self.status |= other.status
        self.stages |= other.stages
        self.stage_time.merge_from(other.stage_time)
        self.duration.merge_from(other.duration)
        self.cost.merge_from(other.cost)

    @property
    def weight(self) -> int:
        """Its stage, completed and failed events (started events carry no value to count)."""
        return self.stage_time.count + self.duration.count

    def row(self, key: str = "workflow") -> dict[str, Any]:
        """Raises ValueError, naming ``key`` and the field, if a sum exceeds the float range."""
        stage_time = to_float(self.stage_time.total)
        duration = to_float(self.duration.total)
        cost = to_float(self.cost.total)
        if not math.isfinite(stage_time + duration + cost):
            finite(self.stage_time.total, f"workflow_metrics[{key}].stage_time_seconds")
            finite(self.duration.total, f"workflow_metrics[{key}].total_duration_seconds")
            finite(self.cost.total, f"workflow_metrics[{key}].total_cost_usd")
        return {
            "status": _STATUS_NAMES[self.status & 15],
            "stages_seen": list(_STAGES_SEEN[self.stages & _STAGE_BITS]),
            "stage_time_seconds": stage_time,
            "total_duration_seconds": duration,
            "total_cost_usd": cost,
        }

    def to_obj(self) -> list:
        return [
            self.status,
            self.stages,
            self.stage_time.to_obj(),
            self.duration.to_obj(),
            self.cost.to_obj(),
        ]

    @classmethod
    def from_obj(cls, obj: list, what: str = "workflow") -> WorkflowSummary:
        """Inverse of ``to_obj``; raises StateCodecError unless the status is 4 bits and the
        stages seen are stage numbers 1..8."""
        status, stages, stage_time, duration, cost = codec.items(obj, what, length=5)
        summary = cls.__new__(cls)  # every slot is set below
        if not (type(status) is int and 0 <= status <= 15):
            codec.integer(status, what + " status", 0, 15)  # raises, naming the problem
        if not (type(stages) is int and stages >= 0 and not stages & ~_STAGE_BITS):
            codec.integer(stages, what + " stages", 0, _STAGE_BITS)
            raise codec.fail(what + " stages", "has a stage number outside 1..8")
        summary.status, summary.stages = status, stages
        summary.stage_time = ExactMean.from_obj(stage_time, what + " stage time")
        summary.duration = ExactMean.from_obj(duration, what + " duration")
        summary.cost = ExactMean.from_obj(cost, what + " cost")
        return summary

"""Duration percentiles: exact up to the cap, then a mergeable sketch within 1% of nearest rank."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reducer import nearest_rank, percentile
from reducer.sketch import BIN_LIMIT, LogSketch, QuantileStore
from tests.datasets import DISTRIBUTIONS, Distribution, Lognormal

ALPHA = 0.01
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)


def exact_nearest_rank(values: np.ndarray, p: float) -> float:
    return percentile(values.tolist(), p)


def store_of(values, cap: int = 1000, chunk: int = 10_000) -> QuantileStore:
    store = QuantileStore(cap, ALPHA)
    values = list(map(float, values))
    for i in range(0, len(values), chunk):
        store.extend(values[i : i + chunk])
    return store


def relative_error(estimate: float, exact: float) -> float:
    if exact == 0:
        return 0.0 if estimate == 0 else math.inf
    return abs(estimate - exact) / exact


def answers(store: QuantileStore) -> list[float]:
    return [store.quantile(p) for p in (0.0, *QUANTILES, 1.0)]


def test_an_empty_store_answers_zero() -> None:
    store = QuantileStore(10, ALPHA)

    assert store.quantile(0.5) == 0.0
    assert store.quantile(0.0) == 0.0
    assert store.quantile(1.0) == 0.0
    assert store.exact


def test_percentiles_are_exact_up_to_the_cap() -> None:
    values = Lognormal().generate(1000, seed=3)
    store = store_of(values, cap=1000)

    assert store.exact
    for p in QUANTILES:
        assert store.quantile(p) == exact_nearest_rank(values, p)


def test_one_value_past_the_cap_switches_to_the_sketch() -> None:
    store = store_of(range(1, 1001), cap=1000)
    assert store.exact

    store.extend([1001.0])

    assert not store.exact
    assert store.samples is None


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=repr)
def test_sketch_percentiles_are_within_one_percent_of_exact_nearest_rank(
    distribution: Distribution,
) -> None:
    values = distribution.generate(50_000, seed=11)
    store = store_of(values, cap=1000)

    assert not store.exact
    for p in QUANTILES:
        exact = exact_nearest_rank(values, p)
        assert relative_error(store.quantile(p), exact) <= ALPHA, (p, exact)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=repr)
def test_min_and_max_stay_exact_in_sketch_mode(distribution: Distribution) -> None:
    values = distribution.generate(5000, seed=5)
    store = store_of(values, cap=100)

    assert store.quantile(0.0) == store.min == values.min()
    assert store.quantile(1.0) == store.max == values.max()
    assert store.quantile(-1.0) == values.min()
    assert store.quantile(2.0) == values.max()


def test_sketch_answers_stay_between_min_and_max() -> None:
    values = [10.0] * 500 + [10.05] * 500
    store = store_of(values, cap=10)

    for p in QUANTILES:
        assert 10.0 <= store.quantile(p) <= 10.05


def test_zero_durations_are_answered_as_exactly_zero() -> None:
    store = store_of([0.0] * 600 + [5.0] * 400, cap=10)

    assert store.quantile(0.5) == 0.0
    assert store.quantile(0.6) == 0.0
    assert relative_error(store.quantile(0.61), 5.0) <= ALPHA


@pytest.mark.slow
def test_sketch_accuracy_on_a_million_lognormal_values() -> None:
    values = Lognormal(0.0, 1.0).generate(1_000_000, seed=2026)
    store = QuantileStore(10_000, ALPHA)
    for chunk in np.array_split(values, 100):
        store.extend(chunk.tolist())
    ordered = np.sort(values)

    assert not store.exact
    assert store.count == 1_000_000
    for p in (0.5, 0.95, 0.99):
        exact = float(ordered[nearest_rank(p, len(values)) - 1])
        assert relative_error(store.quantile(p), exact) <= ALPHA, p
    assert store.min == values.min()
    assert store.max == values.max()


def test_merging_equal_splits_answers_like_one_pass() -> None:
    values = Lognormal().generate(20_000, seed=1).tolist()
    whole = store_of(values, cap=1000)

    merged = store_of(values[:10_000], cap=1000)
    merged.merge_from(store_of(values[10_000:], cap=1000))

    assert answers(merged) == answers(whole)
    assert merged.count == whole.count


@pytest.mark.parametrize("seed", range(5))
def test_merging_random_unequal_splits_in_any_order_answers_like_one_pass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = DISTRIBUTIONS[seed].generate(6000, seed=seed).tolist()
    cuts = sorted(rng.choice(len(values), size=3, replace=False).tolist())
    parts = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]
    whole = store_of(values, cap=1000)

    stores = [store_of(part, cap=1000) for part in parts]
    rng.shuffle(stores)
    merged = QuantileStore(1000, ALPHA)
    for store in stores:
        merged.merge_from(store)

    assert merged.exact == whole.exact
    assert answers(merged) == answers(whole)


def test_merging_mixed_distributions_answers_like_one_pass() -> None:
    parts = [d.generate(3000, seed=i).tolist() for i, d in enumerate(DISTRIBUTIONS)]
    whole = store_of([v for part in parts for v in part], cap=500)

    merged = QuantileStore(500, ALPHA)
    for part in reversed(parts):
        merged.merge_from(store_of(part, cap=500))

    assert answers(merged) == answers(whole)


def test_two_exact_stores_whose_union_exceeds_the_cap_merge_into_the_sketch() -> None:
    left, right = store_of(range(1, 601), cap=1000), store_of(range(601, 1201), cap=1000)

    left.merge_from(right)

    assert not left.exact
    assert left.count == 1200
    assert answers(left) == answers(store_of(range(1, 1201), cap=1000))


def test_merging_leaves_the_argument_unchanged() -> None:
    exact = store_of([1.0, 2.0, 3.0], cap=1000)
    sketched = store_of(Lognormal().generate(2000, seed=4), cap=100)
    before = (exact.to_obj(), sketched.to_obj())

    target = store_of(Lognormal().generate(3000, seed=9), cap=100)
    target.merge_from(exact)
    target.merge_from(sketched)
    empty = QuantileStore(100, ALPHA)
    empty.merge_from(sketched)
    empty.extend([5.0] * 10)

    assert (exact.to_obj(), sketched.to_obj()) == before


def test_merging_an_empty_store_changes_nothing() -> None:
    store = store_of([1.0, 2.0], cap=10)
    before = store.to_obj()

    store.merge_from(QuantileStore(10, ALPHA))

    assert store.to_obj() == before


@pytest.mark.parametrize("cap", [10, 100_000])
def test_a_store_round_trips_through_its_plain_object_form(cap: int) -> None:
    store = store_of(Lognormal().generate(5000, seed=6), cap=cap)

    copy = QuantileStore.from_obj(store.to_obj(), cap, ALPHA)

    assert copy.exact == store.exact
    assert answers(copy) == answers(store)
    assert copy.to_obj() == store.to_obj()


def test_a_sketch_stays_within_64_kb_even_over_an_enormous_range() -> None:
    values = np.logspace(-300, 300, 20_000)
    store = store_of(values, cap=10)

    assert store.sketch.counts.size <= BIN_LIMIT
    assert store.sketch.counts.nbytes <= 64 * 1024
    # The collapse only ever coarsens the smallest values; the top stays accurate.
    assert relative_error(store.quantile(0.99), exact_nearest_rank(values, 0.99)) <= ALPHA


def test_a_typical_duration_sketch_is_a_few_kilobytes() -> None:
    store = store_of(np.random.default_rng(0).uniform(0.001, 86_400, 20_000), cap=10)

    assert store.sketch.counts.nbytes <= 8 * 1024


def test_sketches_of_different_accuracy_refuse_to_merge() -> None:
    a, b = LogSketch(0.01), LogSketch(0.005)
    b.add_many(np.array([1.0, 2.0]))

    with pytest.raises(ValueError, match="relative accuracy"):
        a.merge_from(b)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_a_sketch_rejects_an_accuracy_outside_zero_to_one(alpha: float) -> None:
    with pytest.raises(ValueError):
        LogSketch(alpha)

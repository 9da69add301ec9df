"""Distinct workflow ids: exact up to a cap, then a HyperLogLog within 2%."""

from __future__ import annotations

import numpy as np
import pytest

from reducer.distinct import DistinctCounter


def random_ids(n: int, seed: int) -> list[int]:
    """``n`` random 128-bit ids (UUIDs as integers), fast."""
    raw = np.random.default_rng(seed).bytes(16 * n)
    return [int.from_bytes(raw[i : i + 16]) for i in range(0, 16 * n, 16)]


def counter_of(ids: list[int], cap: int) -> DistinctCounter:
    counter = DistinctCounter(cap)
    for i in range(0, len(ids), 5000):
        counter.add_many(ids[i : i + 5000])
    return counter


def test_an_empty_counter_counts_zero() -> None:
    assert DistinctCounter(10).estimate() == 0


def test_counting_is_exact_up_to_the_cap() -> None:
    ids = random_ids(1000, seed=1)
    counter = counter_of(ids + ids[:500], cap=1000)

    assert counter.exact
    assert counter.estimate() == 1000


def test_one_id_past_the_cap_switches_to_the_sketch() -> None:
    counter = counter_of(random_ids(1001, seed=2), cap=1000)

    assert not counter.exact
    assert counter.ids is None


@pytest.mark.parametrize("n", [1001, 5_000, 20_000, 100_000, 170_000, 250_000])
def test_the_sketch_estimate_is_within_two_percent(n: int) -> None:
    counter = counter_of(random_ids(n, seed=n), cap=1000)

    assert not counter.exact
    assert abs(counter.estimate() - n) <= 0.02 * n


def test_sequential_ids_are_hashed_well_enough_for_the_bound() -> None:
    n = 50_000
    counter = counter_of(list(range(n)), cap=100)

    assert abs(counter.estimate() - n) <= 0.02 * n


def test_repeated_ids_do_not_count_twice_in_the_sketch() -> None:
    ids = random_ids(20_000, seed=7)
    once = counter_of(ids, cap=100)
    thrice = counter_of(ids * 3, cap=100)

    assert thrice.estimate() == once.estimate()


@pytest.mark.parametrize("cap", [10, 3000, 100_000])
def test_merging_in_any_order_gives_the_same_count_as_one_pass(cap: int) -> None:
    ids = random_ids(6000, seed=3)
    parts = [ids[:100], ids[100:2500], ids[2000:6000]]  # overlapping parts
    whole = counter_of(ids, cap=cap)

    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        merged = DistinctCounter(cap)
        for i in order:
            merged.merge_from(counter_of(parts[i], cap=cap))
        assert merged.exact == whole.exact
        assert merged.estimate() == whole.estimate()


def test_merging_leaves_the_argument_unchanged() -> None:
    sketched = counter_of(random_ids(500, seed=4), cap=100)
    exact = counter_of(random_ids(50, seed=5), cap=100)
    before = (sketched.to_obj(), exact.to_obj())

    target = DistinctCounter(100)
    target.merge_from(sketched)
    target.merge_from(exact)
    target.add_many(random_ids(1000, seed=6))

    assert (sketched.to_obj(), exact.to_obj()) == before


@pytest.mark.parametrize("n", [10, 5000])
def test_a_counter_round_trips_through_its_plain_object_form(n: int) -> None:
    counter = counter_of(random_ids(n, seed=8), cap=1000)

    copy = DistinctCounter.from_obj(counter.to_obj(), 1000)

    assert copy.exact == counter.exact
    assert copy.estimate() == counter.estimate()
    copy.add_many([1, 2, 3])
    counter.add_many([1, 2, 3])
    assert copy.estimate() == counter.estimate()


SWEEP = sorted({int(x) for x in np.geomspace(1_000, 2_000_000, 40)} | {160_000, 163_840, 170_000})
"""1,000 to 2,000,000 distinct ids, log-spaced, plus the old estimator's switch-over region."""


def test_the_estimate_is_within_1_2_percent_from_1k_to_2m_ids_over_five_seeds() -> None:
    import random

    worst = 0.0
    for seed in range(5):
        rng = random.Random(seed)
        counter, added = DistinctCounter(0), 0
        for n in SWEEP:
            counter.add_many(rng.getrandbits(128) for _ in range(n - added))
            added = n
            worst = max(worst, abs(counter.estimate() / n - 1))
    assert worst <= 0.012, worst


def test_ertl_estimate_known_answers() -> None:
    from reducer.distinct import ertl_estimate

    m = 1 << 16
    assert ertl_estimate([m] + [0] * 49, m) == 0  # every register empty
    one = ertl_estimate([m - 1, 1] + [0] * 48, m)  # one id: one register holds 1
    assert one == pytest.approx(1.0, rel=0.01)
    assert ertl_estimate([0] * 49 + [m], m) == float("inf")  # every register saturated
    saturated = DistinctCounter(0)
    saturated.add_many([1])
    saturated.registers[:] = 49
    assert saturated.estimate() == 2**53

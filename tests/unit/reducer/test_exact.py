"""Exact, mergeable sums: every mean is computed from an exact sum and rounded once."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reducer.exact import ExactMean, decode, encode, ratio, scaled, scaled_sum, to_float

finite = st.floats(allow_nan=False, allow_infinity=False)
moderate = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


def exact_mean(values: list[float]) -> float:
    return float(sum(map(Fraction, values), Fraction(0)) / len(values))


def test_the_mean_of_five_values_of_0_92_is_exactly_0_92() -> None:
    mean = ExactMean()
    mean.extend([0.92] * 5)

    assert sum([0.92] * 5) / 5 != 0.92  # what a float running sum gives
    assert mean.mean == 0.92


def test_adding_one_value_at_a_time_gives_the_same_exact_mean() -> None:
    mean = ExactMean()
    for _ in range(5):
        mean.add(0.92)

    assert mean.mean == 0.92
    assert mean.count == 5


def test_an_empty_mean_is_zero() -> None:
    assert ExactMean().mean == 0.0
    assert ExactMean().sum == 0.0
    assert ratio(0, 0) == 0.0


def test_extending_with_nothing_changes_nothing() -> None:
    mean = ExactMean()
    mean.extend([])

    assert (mean.total, mean.count) == (0, 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=30))
def test_the_scaled_sum_is_the_exact_sum_of_any_finite_doubles(values: list[float]) -> None:
    exact = sum(map(Fraction, values), Fraction(0))

    assert Fraction(scaled_sum(values), 2**1074) == exact
    assert Fraction(sum(map(scaled, values)), 2**1074) == exact


@settings(max_examples=200, deadline=None)
@given(st.lists(moderate, min_size=1, max_size=30))
def test_mean_and_sum_are_correctly_rounded(values: list[float]) -> None:
    mean = ExactMean()
    mean.extend(values)

    assert mean.mean == exact_mean(values)
    assert mean.sum == float(sum(map(Fraction, values), Fraction(0)))


@settings(max_examples=100, deadline=None)
@given(st.lists(moderate, max_size=20), st.lists(moderate, max_size=20))
def test_merging_two_means_equals_one_mean_over_both(left: list[float], right: list[float]) -> None:
    a, b, whole = ExactMean(), ExactMean(), ExactMean()
    a.extend(left)
    b.extend(right)
    whole.extend(left + right)

    a.merge_from(b)

    assert (a.total, a.count) == (whole.total, whole.count)


@settings(max_examples=100, deadline=None)
@given(st.lists(moderate, min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_the_order_of_values_never_changes_the_sum(values: list[float], rng) -> None:
    shuffled = values[:]
    rng.shuffle(shuffled)

    assert scaled_sum(values) == scaled_sum(shuffled)


def test_sums_that_cancel_catastrophically_stay_exact() -> None:
    mean = ExactMean()
    mean.extend([1e16, 1.0, -1e16, 1.0])

    assert mean.sum == 2.0
    assert mean.mean == 0.5


def test_subnormal_values_are_summed_exactly() -> None:
    mean = ExactMean()
    mean.extend([5e-324, 5e-324, 5e-324])

    assert mean.sum == 1.5e-323


def test_an_intermediate_overflow_falls_back_to_exact_integers() -> None:
    values = [1.7e308, 1.7e308, -1.7e308]

    assert to_float(scaled_sum(values)) == 1.7e308


def test_a_sum_beyond_the_largest_double_saturates_to_infinity_instead_of_raising() -> None:
    mean = ExactMean()
    mean.extend([1e308, 1e308])

    assert mean.sum == math.inf
    assert mean.mean == 1e308
    negative = ExactMean()
    negative.extend([-1e308, -1e308])
    assert negative.sum == -math.inf


@pytest.mark.parametrize("value", [0, 1, -1, 2**2000 + 12345, -(2**1500) * 3, scaled(0.1)])
def test_the_compact_encoding_round_trips(value: int) -> None:
    assert decode(encode(value)) == value


def test_the_encoding_strips_trailing_zero_bits() -> None:
    mantissa, shift = encode(scaled(1.0))

    assert mantissa == "1"
    assert shift == 1074


def test_a_mean_round_trips_through_its_plain_object_form() -> None:
    mean = ExactMean()
    mean.extend([0.1, 0.2, 0.3])

    copy = ExactMean.from_obj(mean.to_obj())

    assert (copy.total, copy.count) == (mean.total, mean.count)

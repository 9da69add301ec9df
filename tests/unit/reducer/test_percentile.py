"""percentile(): nearest-rank, one definition for p50, p95 and p99 alike."""

from __future__ import annotations

import math
import random

import pytest

from reducer import nearest_rank, percentile


def test_the_percentile_of_no_values_is_zero() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([], 0.0) == 0.0
    assert percentile([], 1.0) == 0.0


@pytest.mark.parametrize("p", [0.0, -0.5, -math.inf])
def test_p_at_or_below_zero_is_the_minimum(p: float) -> None:
    assert percentile([5.0, 3.0, 9.0], p) == 3.0


@pytest.mark.parametrize("p", [1.0, 1.5, math.inf])
def test_p_at_or_above_one_is_the_maximum(p: float) -> None:
    assert percentile([5.0, 3.0, 9.0], p) == 9.0


def test_p_of_seven_hundredths_of_a_hundred_values_is_the_seventh() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(1).shuffle(values)

    # 0.07 * 100 == 7.000000000000001 in floats, whose ceiling would wrongly be 8.
    assert 0.07 * 100 > 7
    assert percentile(values, 0.07) == 7.0
    assert nearest_rank(0.07, 100) == 7


@pytest.mark.parametrize(("p", "expected"), [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)])
def test_p50_p95_p99_of_one_to_a_hundred_are_nearest_rank(p: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]

    assert percentile(values, p) == expected


def test_p50_of_an_even_count_is_the_lower_middle_value_not_an_interpolation() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([10.0], 0.5, 10.0),
        ([10.0], 0.99, 10.0),
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0], 0.34, 2.0),
        ([1.0, 2.0, 3.0], 0.33, 1.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 0.3, 20.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 0.4, 20.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 0.5, 35.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 1e-9, 15.0),
    ],
)
def test_percentile_is_the_ceil_p_n_th_smallest_value(
    values: list[float], p: float, expected: float
) -> None:
    assert percentile(values, p) == expected


@pytest.mark.parametrize("n", [1, 7, 10, 100, 1000, 12345])
@pytest.mark.parametrize("p", [0.01, 0.07, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999])
def test_nearest_rank_equals_ceil_of_the_exact_decimal_product(n: int, p: float) -> None:
    from fractions import Fraction

    expected = max(1, math.ceil(Fraction(repr(p)) * n))

    assert nearest_rank(p, n) == min(expected, n)


def test_percentile_does_not_reorder_its_input() -> None:
    values = [3.0, 1.0, 2.0]

    percentile(values, 0.5)

    assert values == [3.0, 1.0, 2.0]


def test_integer_values_come_back_as_floats() -> None:
    result = percentile([1, 2, 3], 0.5)

    assert result == 2.0
    assert isinstance(result, float)

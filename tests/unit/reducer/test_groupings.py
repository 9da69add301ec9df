"""Breakdowns by key with bounded memory, and the accumulators they hold."""

from __future__ import annotations

import random

import pytest

from reducer.groupings import (
    COMPLETED,
    FAILED,
    OTHER_KEY,
    STAGED,
    STARTED,
    Breakdown,
    Count,
    DurationStats,
    WorkflowSummary,
    key_hash,
    workflow_status,
)


def counts_of(keys: list[str], max_keys: int = 3, max_key_length: int = 256) -> Breakdown[Count]:
    breakdown: Breakdown[Count] = Breakdown(Count, max_keys, max_key_length)
    for key in keys:
        breakdown.slot(key).n += 1
    return breakdown


def as_dict(breakdown: Breakdown[Count]) -> dict[str, int]:
    return {key: entry.n for key, entry in breakdown.items()}


def test_keys_under_the_cap_are_kept_in_sorted_order() -> None:
    breakdown = counts_of(["b", "a", "b", "c"], max_keys=3)

    assert list(as_dict(breakdown).items()) == [("a", 1), ("b", 2), ("c", 1)]


def test_keys_beyond_the_cap_fold_into_other() -> None:
    keys = [f"model-{i}" for i in range(10)]
    breakdown = counts_of(keys * 2, max_keys=3)
    result = as_dict(breakdown)

    assert len(result) == 4
    assert list(result)[-1] == OTHER_KEY
    assert result[OTHER_KEY] == 14
    assert sum(result.values()) == 20
    assert all(n == 2 for key, n in result.items() if key != OTHER_KEY)


def test_the_kept_keys_are_those_with_the_smallest_hashes_whatever_the_order() -> None:
    keys = [f"k{i}" for i in range(50)]
    expected = set(sorted(keys, key=key_hash)[:5])

    for seed in range(5):
        shuffled = keys[:]
        random.Random(seed).shuffle(shuffled)
        breakdown = counts_of(shuffled, max_keys=5)
        assert set(breakdown.entries) == expected


def test_kept_keys_have_complete_counts_after_evictions() -> None:
    keys = [f"k{i}" for i in range(30)]
    stream = [k for k in keys for _ in range(3)]
    random.Random(1).shuffle(stream)

    breakdown = counts_of(stream, max_keys=4)

    assert all(entry.n == 3 for entry in breakdown.entries.values())
    assert breakdown.other.n == 3 * 26


def test_an_evicted_key_never_comes_back() -> None:
    keys = sorted((f"k{i}" for i in range(20)), key=key_hash)
    breakdown = counts_of([keys[-1], keys[0], keys[1]], max_keys=2)  # keys[-1] is evicted

    breakdown.slot(keys[-1]).n += 1

    assert keys[-1] not in breakdown.entries
    assert breakdown.other.n == 2


def test_keys_longer_than_the_limit_are_truncated() -> None:
    long_a, long_b = "m" * 300 + "a", "m" * 300 + "b"

    result = as_dict(counts_of([long_a, long_b, "short"], max_keys=10, max_key_length=256))

    assert result == {"m" * 256: 2, "short": 1}


def test_a_key_named_other_goes_to_the_other_entry() -> None:
    result = as_dict(counts_of([OTHER_KEY, "a"], max_keys=10))

    assert result == {"a": 1, OTHER_KEY: 1}


def test_a_flood_of_unique_keys_keeps_the_breakdown_bounded() -> None:
    breakdown = counts_of([f"model-{i}" for i in range(20_000)], max_keys=100)

    assert len(breakdown.entries) == 100
    assert len(breakdown) == 101
    assert breakdown.other.n == 19_900


@pytest.mark.parametrize("max_keys", [1, 3, 100])
def test_merging_breakdowns_equals_one_pass_over_all_keys(max_keys: int) -> None:
    rng = random.Random(max_keys)
    stream = [f"k{rng.randrange(40)}" for _ in range(500)]
    whole = as_dict(counts_of(stream, max_keys=max_keys))

    parts = [stream[:100], stream[100:350], stream[350:]]
    for order in ([0, 1, 2], [2, 0, 1]):
        merged: Breakdown[Count] = Breakdown(Count, max_keys, 256)
        for i in order:
            merged.merge_from(counts_of(parts[i], max_keys=max_keys))
        assert as_dict(merged) == whole


def test_a_breakdown_round_trips_through_its_plain_object_form() -> None:
    breakdown = counts_of([f"k{i % 7}" for i in range(40)], max_keys=3)

    copy = Breakdown(Count, 3, 256).load(breakdown.to_obj(), lambda n: Count(int(n)))

    assert as_dict(copy) == as_dict(breakdown)
    assert set(copy.entries) == set(breakdown.entries)


def test_duration_stats_merge_like_one_pass() -> None:
    a, b, whole = (DurationStats(100, 0.01) for _ in range(3))
    a.add_durations([1.0, 2.0])
    a.failures = 1
    b.add_durations([3.0])
    b.tokens = 7
    whole.add_durations([1.0, 2.0, 3.0])

    a.merge_from(b)

    assert a.count == whole.count == 3
    assert a.durations.mean == 2.0
    assert a.quantiles.quantile(0.5) == 2.0
    assert (a.failures, a.tokens) == (1, 7)
    assert a.to_obj()[:2] == whole.to_obj()[:2]


@pytest.mark.parametrize(
    ("bits", "status"),
    [
        (STARTED, "started"),
        (STARTED | STAGED, "running"),
        (STAGED, "running"),
        (STARTED | STAGED | FAILED, "failed"),
        (STARTED | STAGED | COMPLETED, "completed"),
        (FAILED | COMPLETED, "completed"),
    ],
)
def test_workflow_status_follows_the_furthest_state_reached(bits: int, status: str) -> None:
    assert workflow_status(bits) == status


def test_a_workflow_summary_row_reports_stages_seen_time_duration_and_cost() -> None:
    summary = WorkflowSummary()
    summary.status = STARTED | STAGED | COMPLETED
    summary.stages = (1 << 1) | (1 << 3) | (1 << 8)
    summary.stage_time.extend([1.5, 2.5])
    summary.duration.add(10.0)
    summary.cost.add(0.25)

    assert summary.row() == {
        "status": "completed",
        "stages_seen": [1, 3, 8],
        "stage_time_seconds": 4.0,
        "total_duration_seconds": 10.0,
        "total_cost_usd": 0.25,
    }
    assert WorkflowSummary.from_obj(summary.to_obj()).row() == summary.row()


def test_workflow_summaries_merge_in_any_order() -> None:
    first, second = WorkflowSummary(), WorkflowSummary()
    first.status, first.stages = COMPLETED, 1 << 2
    second.status, second.stages = STARTED, 1 << 1
    second.stage_time.add(3.0)

    a, b = WorkflowSummary(), WorkflowSummary()
    a.merge_from(first)
    a.merge_from(second)
    b.merge_from(second)
    b.merge_from(first)

    assert a.row() == b.row()
    assert a.row()["stages_seen"] == [1, 2]


@pytest.mark.parametrize("max_keys", [0, 1, 3, 100])
def test_a_ceiling_from_the_destination_folds_early_without_changing_the_merge(
    max_keys: int,
) -> None:
    """A delta built under the bar of the breakdown it will be merged into gives the same result
    as one built without, however many keys fold up front."""
    rng = random.Random(max_keys + 7)
    before = [f"k{rng.randrange(60)}" for _ in range(300)]
    after = [f"k{rng.randrange(60)}" for _ in range(300)]
    expected = as_dict(counts_of(before + after, max_keys=max_keys))

    destination = counts_of(before, max_keys=max_keys)
    delta: Breakdown[Count] = Breakdown(Count, max_keys, 256)
    delta.ceiling = destination.bar()
    for key in after:
        delta.slot(key).n += 1
    destination.merge_from(delta)

    assert as_dict(destination) == expected
    if max_keys < 60:  # the destination is full: the delta kept no key it would refuse
        assert len(delta.entries) < len(set(after))


def test_the_bar_only_rises_and_is_none_while_there_is_room() -> None:
    breakdown: Breakdown[Count] = Breakdown(Count, 5, 256)
    bars = []
    for i in range(50):
        breakdown.slot(f"k{i}").n += 1
        bars.append(breakdown.bar())

    assert bars[:4] == [None] * 4
    assert all(b is not None for b in bars[4:])
    assert bars[4:] == sorted(bars[4:])  # a higher rank folds more keys
    assert Breakdown(Count, 0, 256).bar() is not None  # no room at all

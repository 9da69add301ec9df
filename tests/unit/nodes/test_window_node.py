"""WindowNode: what a window actor does with batches, ticks and checkpoints, without Ray."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from models.metrics import EnumMetricsWindow
from models.settings import PipelineSettings, ReducerSettings
from reducer.nodes.messages import SourceRange, WindowBatch
from reducer.nodes.window import WindowNode, isolate
from reducer.state import AggregationState
from tests.datasets import completed_dict, failed_dict, started_dict

HOUR = datetime(2026, 10, 1, 10, tzinfo=UTC)
NOW = (HOUR + timedelta(hours=6)).timestamp()
TOPIC = "dev.codegen.completed.v1"
PIPELINE = PipelineSettings(windows=[EnumMetricsWindow.HOURLY], allowed_lateness_seconds=0)


def node(**pipeline: object) -> WindowNode:
    return WindowNode(0, ReducerSettings(), PIPELINE.model_copy(update=pipeline))


def batch(values: list[bytes], sequence: int = 1, partition: int = 0) -> WindowBatch:
    return WindowBatch(
        (0, sequence),
        values,
        [0] * len(values),
        [SourceRange(TOPIC, partition, 0, max(len(values) - 1, 0))],
        assigned=[(TOPIC, partition)],
        known=[(TOPIC, partition)],
    )


def encode(event: dict) -> bytes:
    return json.dumps(event).encode()


def hour_state(node: WindowNode, start: datetime = HOUR) -> AggregationState:
    return AggregationState.from_bytes(node.partial((EnumMetricsWindow.HOURLY, start)))


def test_a_batch_is_decoded_folded_and_each_bad_message_reported_by_position() -> None:
    windows = node()
    good = [encode(completed_dict(timestamp=HOUR + timedelta(minutes=i))) for i in range(5)]
    values = [good[0], b"{not json", good[1], b"[1]", *good[2:]]

    applied = windows.apply(batch(values), NOW)

    assert applied.applied == 5
    assert sorted((p, c) for p, c, _ in applied.rejects) == [
        (1, "invalid_json"),
        (3, "not_an_object"),
    ]
    assert applied.events_by_type == {"CODEGEN_COMPLETED": 5}
    assert hour_state(windows).events_by_type == [0, 0, 5, 0]


def test_a_timestamp_beyond_the_allowed_skew_is_rejected_not_opened_as_a_window() -> None:
    windows = node(max_future_skew_seconds=60)
    future = datetime.fromtimestamp(NOW + 3600, UTC)
    applied = windows.apply(batch([encode(started_dict(timestamp=future))]), NOW)

    assert [(p, c) for p, c, _ in applied.rejects] == [(0, "future_timestamp")]
    assert windows.stats(NOW).open_panes == 0


def test_a_replayed_batch_counts_once() -> None:
    windows = node()
    values = [encode(failed_dict(timestamp=HOUR + timedelta(minutes=i))) for i in range(7)]
    windows.apply(batch(values), NOW)
    again = windows.apply(batch(values, sequence=2), NOW)

    assert again.applied == 0 and again.duplicates == 7
    assert hour_state(windows).events_by_type == [0, 0, 0, 7]
    assert windows.stats(NOW).duplicates_dropped == 7


def test_events_of_an_hour_behind_the_watermark_come_back_late_with_their_position() -> None:
    windows = node()
    windows.apply(batch([encode(started_dict(timestamp=HOUR + timedelta(hours=3)))]), NOW)
    old = encode(started_dict(timestamp=HOUR))
    fresh = encode(started_dict(timestamp=HOUR + timedelta(hours=3, minutes=1)))

    applied = windows.apply(batch([fresh, old], sequence=2), NOW)

    assert [p for p, _ in applied.late] == [1]
    assert applied.applied == 1
    assert windows.stats(NOW).late_by_window == {"hourly:2026-10-01T10:00:00Z": 1}


def test_a_message_whose_fold_raises_is_set_aside_and_every_other_applied_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = AggregationState.add_batch

    def add_batch(self: AggregationState, events: list) -> AggregationState:
        if any(getattr(e, "node_type", "") == "poison" for e in events):
            raise ArithmeticError("poisoned " + "x" * 5000)
        return original(self, events)

    monkeypatch.setattr(AggregationState, "add_batch", add_batch)
    windows = node()
    values = [
        encode(completed_dict(timestamp=HOUR, node_type="poison" if i in (3, 40, 41) else "ok"))
        for i in range(64)
    ]

    applied = windows.apply(batch(values), NOW)

    errors = sorted(p for p, c, _ in applied.rejects if c == "processing_error")
    assert errors == [3, 40, 41]
    reason = next(r for _, c, r in applied.rejects if c == "processing_error")
    assert reason.startswith("ArithmeticError: poisoned") and len(reason.encode()) <= 1024
    assert applied.applied == 61
    assert applied.events_by_type == {"CODEGEN_COMPLETED": 61}
    assert hour_state(windows).events_by_type == [0, 0, 61, 0]
    assert windows.stats(NOW).processing_errors == 3


def test_isolate_finds_every_failing_item_and_attempts_the_rest_together() -> None:
    calls: list[list[int]] = []

    def attempt(part: list[int]) -> int:
        calls.append(part)
        if any(i % 10 == 7 for i in part):
            raise ValueError(f"bad in {part}")
        return sum(part)

    results, failed = isolate(list(range(40)), attempt)

    assert sorted(item for item, _ in failed) == [7, 17, 27, 37]
    assert results == [sum(range(40)) - (7 + 17 + 27 + 37)]
    assert calls[-1] == [i for i in range(40) if i % 10 != 7]


def test_isolate_falls_back_to_single_items_when_only_a_combination_fails() -> None:
    def attempt(part: list[int]) -> int:
        if 1 in part and 2 in part:
            raise ValueError("1 and 2 together")
        return sum(part)

    results, failed = isolate([1, 2, 3], attempt)

    assert failed == [] and sorted(results) == [1, 2, 3]


def test_collect_sends_everything_first_then_only_changes() -> None:
    windows = node()
    windows.apply(batch([encode(started_dict(timestamp=HOUR))]), NOW)
    first = windows.collect(NOW)
    windows.apply(batch([encode(started_dict(timestamp=HOUR))], sequence=2), NOW)
    second = windows.collect(NOW)

    assert first.full is not None and set(first.full.panes) == {HOUR} and not first.full.rollups
    assert second.full is None
    assert AggregationState.from_bytes(second.deltas[HOUR]).events_by_type == [1, 0, 0, 0]


def test_a_snapshot_restores_panes_dedup_ids_and_counters() -> None:
    windows = node()
    values = [encode(completed_dict(timestamp=HOUR + timedelta(minutes=i))) for i in range(9)]
    windows.apply(batch(values), NOW)
    restored = WindowNode(1, ReducerSettings(), PIPELINE, [windows.snapshot()], NOW)

    assert hour_state(restored).to_metrics().total_generations == 9
    assert restored.apply(batch(values, sequence=9), NOW).duplicates == 9
    assert restored.stats(NOW).events_applied == 9


def test_two_snapshots_restore_into_one_node_as_their_merge() -> None:
    a, b = node(), node()
    a.apply(batch([encode(started_dict(timestamp=HOUR))]), NOW)
    b.apply(
        batch([encode(started_dict(timestamp=HOUR)), encode(started_dict(timestamp=HOUR))]), NOW
    )

    both = WindowNode(0, ReducerSettings(), PIPELINE, [a.snapshot(), b.snapshot()], NOW)

    assert hour_state(both).events_by_type == [3, 0, 0, 0]
    assert both.stats(NOW).events_applied == 3


def test_out_of_range_events_are_refused_and_the_valid_ones_of_the_batch_applied() -> None:
    windows = node()
    good = [encode(failed_dict(timestamp=HOUR + timedelta(minutes=i))) for i in range(3)]
    poison = [
        encode(completed_dict(timestamp="0001-01-01T00:30:00+01:00")),
        encode(completed_dict(timestamp=HOUR, total_cost_usd=1e308)),
        json.dumps(completed_dict(timestamp=HOUR.isoformat()))
        .replace('"total_tokens": 1000', '"total_tokens": ' + "9" * 4300)
        .encode(),
    ]
    applied = windows.apply(
        batch([poison[0], good[0], poison[1], good[1], poison[2], good[2]]), NOW
    )

    assert sorted((p, c) for p, c, _ in applied.rejects) == [
        (0, "out_of_range"),
        (2, "out_of_range"),
        (4, "out_of_range"),
    ]
    assert applied.applied == 3
    collected = windows.collect(NOW)  # the watermark and the deltas stay computable
    assert collected.watermark is not None and collected.watermark.year == HOUR.year
    assert hour_state(windows).events_by_type == [0, 0, 0, 3]


def test_schema_registry_framed_messages_are_read_when_configured() -> None:
    framed = [
        b"\x00\x00\x00\x00\x07" + encode(failed_dict(timestamp=HOUR)),
        encode(failed_dict(timestamp=HOUR + timedelta(minutes=1))),  # plain JSON still read
    ]
    plain = node().apply(batch(framed), NOW)
    assert [(p, c) for p, c, _ in plain.rejects] == [(0, "invalid_json")]

    applied = node(schema_registry_framing=True).apply(batch(framed), NOW)
    assert applied.rejects == [] and applied.applied == 2


def test_a_message_that_makes_decoding_raise_is_set_aside_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """decode_batch never raises by contract; if a bug made it raise for some message, that
    message alone becomes a processing_error and the rest of its batch is applied, so a replay
    cannot fail at the same offset forever."""
    import reducer.nodes.window as window_module

    real = window_module.decode_batch

    def buggy(values: list[bytes], *args: object) -> object:
        if any(b"POISON" in v for v in values):
            raise RuntimeError("decoder bug")
        return real(values, *args)

    monkeypatch.setattr(window_module, "decode_batch", buggy)
    windows = node()
    good = [encode(failed_dict(timestamp=HOUR + timedelta(minutes=i))) for i in range(4)]
    values = [good[0], good[1], b'{"POISON": 1}', good[2], b"{not json", good[3]]

    applied = windows.apply(batch(values), NOW)

    assert sorted((p, c) for p, c, _ in applied.rejects) == [
        (2, "processing_error"),
        (4, "invalid_json"),
    ]
    assert applied.applied == 4 and windows.stats(NOW).processing_errors == 1
    assert hour_state(windows).events_by_type == [0, 0, 0, 4]


def test_the_first_applied_event_is_stamped_once_and_an_empty_or_bad_batch_does_not_count() -> None:
    windows = node()
    windows.apply(batch([]), NOW - 30)
    windows.apply(batch([b"{not json"]), NOW - 20)
    assert windows.stats(NOW).first_applied_at is None
    windows.apply(batch([encode(completed_dict(timestamp=HOUR))]), NOW - 10)
    windows.apply(batch([encode(completed_dict(timestamp=HOUR))], sequence=2), NOW)
    assert windows.stats(NOW).first_applied_at == NOW - 10

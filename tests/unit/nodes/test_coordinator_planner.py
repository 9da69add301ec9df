"""TickPlanner and HistoryView: the coordinator's decisions, with window nodes as sources."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models.intents import ModelEventPublishIntent
from models.metrics import EnumMetricsWindow, ModelEventMetricsRecorded
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.nodes.checkpoint import Checkpoint
from reducer.nodes.coordinator import TickPlanner, correlation_id, tick_wait
from reducer.nodes.history import HistoryView
from reducer.nodes.messages import Collected
from reducer.panes import PaneStore, WholeShare
from reducer.publication import REVISIONS_PER_EPOCH
from tests.datasets import completed, failed, started

HOURLY, DAILY = EnumMetricsWindow.HOURLY, EnumMetricsWindow.DAILY
TEN = datetime(2026, 3, 2, 10, tzinfo=UTC)
KAFKA = KafkaSettings(topic_prefix="t")
PIPELINE = PipelineSettings(windows=[HOURLY, DAILY], history_size=3)


def planner(restored: Checkpoint | None = None) -> TickPlanner:
    return TickPlanner(KAFKA, PIPELINE, ReducerSettings(), restored)


def store_with(*events: object) -> PaneStore:
    store = PaneStore(ReducerSettings(), [HOURLY, DAILY])
    store.apply(list(events), None)
    return store


def tick(core: TickPlanner, results: list[Collected]) -> list:
    full = core.begin()
    horizon = core.absorb(results, full)
    publications = core.plan(horizon)
    core.commit(publications, horizon)
    return publications


def test_one_tick_publishes_every_changed_window_with_a_stable_correlation_id() -> None:
    core = planner()
    a = store_with(completed(timestamp=TEN), failed(timestamp=TEN))
    b = store_with(completed(timestamp=TEN + timedelta(minutes=5)))

    publications = tick(
        core, [Collected(None, full=a.take_whole()), Collected(None, full=b.take_whole())]
    )

    by_id = {p.update.window_id: p for p in publications}
    assert set(by_id) == {"hourly:2026-03-02T10:00:00Z", "daily:2026-03-02T00:00:00Z"}
    for window_id, publication in by_id.items():
        intent = ModelEventPublishIntent.model_validate_json(publication.record()[1])
        assert intent.target_topic == "t.codegen.metrics_recorded.v1"
        assert intent.target_key == window_id
        assert intent.correlation_id == correlation_id(window_id)
        event = ModelEventMetricsRecorded.model_validate(intent.target_event_payload)
        assert (event.total_generations, event.successful_generations) == (3, 2)
        assert event.revision == 1 and not event.is_final


def test_deltas_raise_the_revision_and_a_passed_watermark_makes_the_last_one_final() -> None:
    core = planner()
    store = store_with(started(timestamp=TEN))
    tick(core, [Collected(None, full=store.take_whole())])
    store.apply([completed(timestamp=TEN)], None)
    second = tick(core, [Collected(None, deltas=store.take_deltas())])
    closing = tick(core, [Collected(TEN + timedelta(hours=1), deltas=store.take_deltas())])

    assert [p.update.revision for p in second] == [2, 2]
    assert [(p.update.window_id, p.update.is_final) for p in closing] == [
        ("hourly:2026-03-02T10:00:00Z", True)
    ]
    assert core.stats().finals_published == 1 and core.stats().open_windows == 1
    assert [h["window_id"] for h in core.history.recent("hourly", 5)] == [
        "hourly:2026-03-02T10:00:00Z"
    ]


def test_the_watermark_is_the_slowest_actors_and_none_while_one_has_none() -> None:
    core = planner()
    full = core.begin()
    assert core.absorb([Collected(TEN), Collected(None)], full) is None
    full = core.begin()
    assert core.absorb(
        [Collected(TEN), Collected(TEN - timedelta(hours=1))], full
    ) == TEN - timedelta(hours=1)


def test_an_actor_that_started_over_makes_every_actor_answer_whole() -> None:
    core = planner()
    core.absorb([Collected(None, full=WholeShare())], core.begin())

    assert core.begin() is False
    assert core.needs_full([Collected(None, deltas={}), Collected(None, full=WholeShare())], False)
    assert not core.needs_full([Collected(None, deltas={})], False)


def test_a_window_whose_event_cannot_be_built_is_set_aside_and_stays_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ModelEventMetricsRecorded.from_state.__func__

    def from_state(cls: type, state: object, **envelope: object) -> object:
        if envelope["window_id"].startswith("daily"):
            raise ValueError("cannot build")
        return original(cls, state, **envelope)

    monkeypatch.setattr(ModelEventMetricsRecorded, "from_state", classmethod(from_state))
    core = planner()
    store = store_with(started(timestamp=TEN))

    published = tick(core, [Collected(None, full=store.take_whole())])

    assert [p.update.window_id for p in published] == ["hourly:2026-03-02T10:00:00Z"]
    assert core.stats().windows_set_aside == 1
    monkeypatch.undo()
    again = core.plan(None)
    assert [p.update.window_id for p in again] == ["daily:2026-03-02T00:00:00Z"]


def test_a_checkpoint_takes_reported_positions_over_the_last_offsets() -> None:
    core = planner()
    core.offsets = {("in", 0): 5, ("in", 1): 9}
    checkpoint = core.checkpoint([{("in", 0): 7}, {("in", 2): 1}], [b"w0", b"w1"], 123.0)
    core.written(checkpoint)

    assert checkpoint.offsets == {("in", 0): 7, ("in", 1): 9, ("in", 2): 1}
    assert checkpoint.windows == [b"w0", b"w1"] and checkpoint.sequence == 1
    assert core.stats().checkpoint_sequence == 1 and core.stats().checkpoints == 1


def test_a_restored_planner_publishes_in_a_new_epoch_above_every_earlier_revision() -> None:
    first = planner()
    store = store_with(started(timestamp=TEN))
    tick(first, [Collected(None, full=store.take_whole())])
    tick(first, [Collected(None, full=store_with(started(timestamp=TEN)).take_whole())])
    checkpoint = first.checkpoint([], [], 0.0)

    second = planner(Checkpoint.decode(checkpoint.encode()))
    republished = tick(second, [Collected(None, full=store.take_whole())])

    earlier = max(first.book.revisions.values())
    assert all(p.update.revision > REVISIONS_PER_EPOCH + earlier - 1 for p in republished)
    assert second.stats().epoch == 1


def final(window_id: str, revision: int, start: str, window: str = "hourly") -> bytes:
    return json.dumps(
        {
            "window_id": window_id,
            "is_final": True,
            "revision": revision,
            "aggregation_type": window,
            "window_start": start,
            "id": str(uuid.uuid4()),
        }
    ).encode()


def test_history_keeps_the_latest_final_per_window_newest_first_within_its_size() -> None:
    history = HistoryView([HOURLY], size=2)
    for value in (
        final("hourly:a", 1, "2026-01-01T01"),
        b"junk",
        json.dumps({"window_id": "hourly:x", "is_final": False}).encode(),
        final("hourly:a", 3, "2026-01-01T01"),
        final("hourly:a", 2, "2026-01-01T01"),
        final("hourly:b", 1, "2026-01-01T02"),
        final("hourly:c", 1, "2026-01-01T03"),
        final("daily:d", 1, "2026-01-01T00", window="daily"),
        None,
    ):
        history.absorb(value)
    history.settle()

    recent = history.recent("hourly", 10)
    assert [p["window_id"] for p in recent] == ["hourly:c", "hourly:b"]
    assert history.recent("daily", 10) == []
    assert len(history.entries()) == 2 and bool(history)
    history.remember(recent[0])  # the same window again is not a new entry
    assert len(history.entries()) == 2


def long_name(tag: str, i: int) -> str:
    return f"{tag}-{i:04d}-".ljust(256, "x")


def test_a_window_too_large_to_publish_is_trimmed_to_the_producer_limit_totals_exact() -> None:
    limit = 100_000
    kafka = KafkaSettings(topic_prefix="t", extra_config={"message.max.bytes": str(limit)})
    core = TickPlanner(kafka, PIPELINE, ReducerSettings())
    flood = [
        completed(
            timestamp=TEN + timedelta(seconds=i),
            primary_model=long_name("model", i),
            node_type=long_name("node", i),
            total_tokens=1000 + i,
        )
        for i in range(400)
    ]

    (hourly, _daily) = tick(core, [Collected(None, full=store_with(*flood).take_whole())])

    record = hourly.record()[1]
    assert len(record) <= limit
    event = ModelEventMetricsRecorded.model_validate(hourly.intent.target_event_payload)
    assert event.breakdowns_truncated
    assert event.successful_generations == 400
    assert event.total_tokens == sum(1000 + i for i in range(400))
    assert sum(row["total_generations"] for row in event.model_metrics.values()) == 400
    assert "__other__" in event.model_metrics
    assert core.stats().windows_set_aside == 0


def test_a_window_whose_metrics_raise_is_set_aside_and_the_others_publish() -> None:
    core = planner()
    broken = store_with(completed(timestamp=TEN))
    good = store_with(completed(timestamp=TEN + timedelta(days=1)))
    results = [Collected(None, full=broken.take_whole()), Collected(None, full=good.take_whole())]
    full = core.begin()
    core.absorb(results, full)
    hour = (HOURLY, TEN)
    core.book.states[hour].cost.add(1e308)  # an exact sum no float can hold
    core.book.states[hour].cost.add(1e308)

    publications = core.plan(None)
    core.commit(publications, None)

    published = {p.update.window_id for p in publications}
    assert "hourly:2026-03-02T10:00:00Z" not in published
    assert {"hourly:2026-03-03T10:00:00Z", "daily:2026-03-03T00:00:00Z"} <= published
    assert core.stats().windows_set_aside == 1
    assert core.book.pending == {hour}  # tried again next tick


def test_ticks_come_at_their_period_and_an_early_one_at_most_once_a_second() -> None:
    assert tick_wait(0.0, 5.0) == 5.0
    assert tick_wait(3.5, 5.0) == 1.5
    assert tick_wait(7.0, 5.0) == 0.0  # a tick that overran: the next one at once
    assert tick_wait(0.2, 5.0, early=True) == pytest.approx(0.8)
    assert tick_wait(2.0, 5.0, early=True) == 0.0
    assert tick_wait(0.1, 0.5, early=True) == pytest.approx(0.4)  # never later than the period

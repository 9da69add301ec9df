"""PublicationBook: window actors' deltas merged per window, revisions, finality, forgetting.

A tick is ``plan`` (decide, book unchanged) then ``commit`` (what the broker acknowledged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import ReducerSettings
from reducer.aggregator import MetricsAggregator
from reducer.nodes.routing import owner
from reducer.panes import PaneStore, WindowKey
from reducer.publication import PublicationBook, WindowUpdate
from reducer.state import AggregationState
from reducer.windows import window_bounds, window_id
from tests.datasets import completed, failed, mixed_events, started

HOURLY, DAILY, WEEKLY, MONTHLY = (
    EnumMetricsWindow.HOURLY,
    EnumMetricsWindow.DAILY,
    EnumMetricsWindow.WEEKLY,
    EnumMetricsWindow.MONTHLY,
)
ALL_WINDOWS = (HOURLY, DAILY, WEEKLY, MONTHLY)
SETTINGS = ReducerSettings()
ACTORS = 3
#: Run-dependent fields of a ModelMetricsState: identity, creation time and timing.
VOLATILE = {"aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second"}
TEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR_TEN = (HOURLY, TEN)
HOUR_TEN_END = TEN + timedelta(hours=1)


def comparable(metrics: ModelMetricsState) -> dict[str, Any]:
    return metrics.model_dump(exclude=VOLATILE)


def key_of(timestamp: datetime, window: EnumMetricsWindow) -> WindowKey:
    return window, window_bounds(timestamp, window)[0]


def events_by_window(events: Iterable[CodegenEvent]) -> dict[WindowKey, list[CodegenEvent]]:
    grouped: dict[WindowKey, list[CodegenEvent]] = defaultdict(list)
    for event in events:
        for window in ALL_WINDOWS:
            grouped[key_of(event.timestamp, window)].append(event)
    return grouped


def one_pass(events: list[CodegenEvent], window: EnumMetricsWindow) -> dict[str, Any]:
    return comparable(MetricsAggregator.aggregate_events(events, window, SETTINGS))


def partial(*events: CodegenEvent) -> bytes:
    return AggregationState(SETTINGS).add_batch(events).to_bytes()


def publish(book: PublicationBook, watermark: datetime | None = None) -> list[WindowUpdate]:
    """One successful tick: plan, then commit everything planned."""
    updates = book.plan(watermark)
    book.commit(updates)
    return updates


def by_key(updates: list[WindowUpdate]) -> dict[WindowKey, WindowUpdate]:
    assert len({u.key for u in updates}) == len(updates), "a window published twice in a plan"
    return {u.key: u for u in updates}


class Pipeline:
    """Window actors (PaneStores) feeding the book, as the coordinator does on each tick."""

    def __init__(self, actors: int = ACTORS) -> None:
        self.stores = [PaneStore(SETTINGS, ALL_WINDOWS) for _ in range(actors)]
        self.book = PublicationBook(SETTINGS, ALL_WINDOWS)
        self.synced = False

    def apply(self, events: list[CodegenEvent], watermark: datetime | None = None) -> int:
        parts: list[list[CodegenEvent]] = [[] for _ in self.stores]
        for event in events:
            parts[owner(event.workflow_id, len(self.stores))].append(event)
        return sum(len(s.apply(p, watermark)) for s, p in zip(self.stores, parts, strict=True))

    def tick(self, watermark: datetime | None = None, full: bool = False) -> list[WindowUpdate]:
        """As the coordinator: every window whole on the first tick (or when asked), then
        deltas."""
        if full or not self.synced:
            self.book.reset()
            for store in self.stores:
                self.book.absorb_whole(store.take_whole())
            self.synced = True
        else:
            for store in self.stores:
                self.book.absorb_deltas(store.take_deltas())
        updates = publish(self.book, watermark)
        if watermark is not None:
            for store in self.stores:
                store.release(watermark)
        return updates


@pytest.fixture(scope="module")
def events() -> list[CodegenEvent]:
    """Two five-hour spans: across a day and ISO-week boundary, and across a month boundary."""
    return mixed_events(240, seed=3, start=datetime(2026, 3, 1, 22, tzinfo=UTC)) + mixed_events(
        240, seed=4, start=datetime(2026, 3, 31, 21, tzinfo=UTC)
    )


def test_partials_of_several_actors_merge_into_the_aggregate_of_all_events(
    events: list[CodegenEvent],
) -> None:
    pipeline = Pipeline()
    pipeline.apply(events)

    updates = by_key(pipeline.tick())
    expected = events_by_window(events)

    assert set(updates) == set(expected)
    for key, update in updates.items():
        assert comparable(update.metrics) == one_pass(expected[key], key[0]), key


def test_each_actor_holds_only_part_of_a_window_that_the_book_publishes_whole(
    events: list[CodegenEvent],
) -> None:
    pipeline = Pipeline()
    pipeline.apply(events)
    month = key_of(events[0].timestamp, MONTHLY)

    shares = [store.partial(month).events_processed for store in pipeline.stores]
    (update,) = [u for u in pipeline.tick() if u.key == month]

    assert all(0 < share < update.metrics.events_processed for share in shares)
    assert sum(shares) == update.metrics.events_processed


def test_deltas_of_an_hour_add_up_in_every_window_holding_it() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_deltas({TEN: partial(started(timestamp=TEN))})
    book.absorb_deltas({TEN: partial(failed(timestamp=TEN))})
    book.absorb_deltas({TEN: partial(completed(timestamp=TEN))})

    updates = publish(book, None)

    assert {u.key for u in updates} == set(events_by_window([started(timestamp=TEN)]))
    for update in updates:
        assert update.metrics.events_processed == 3, update.key
        assert update.metrics.total_generations == 2, update.key


def test_deltas_count_only_in_the_configured_window_types() -> None:
    book = PublicationBook(SETTINGS, (DAILY,))
    book.absorb_deltas({TEN: partial(started(timestamp=TEN))})

    assert [u.key for u in publish(book)] == [(DAILY, datetime(2026, 3, 2, tzinfo=UTC))]


def test_a_resync_replaces_the_book_with_the_actors_whole_state(
    events: list[CodegenEvent],
) -> None:
    """After a resync (every window whole again), nothing is counted twice."""
    pipeline = Pipeline()
    pipeline.apply(events[:300])
    pipeline.tick()
    pipeline.apply(events[300:])
    pipeline.tick()
    revisions = dict(pipeline.book.revisions)

    again = by_key(pipeline.tick(full=True))
    expected = events_by_window(events)

    assert set(again) == set(expected)
    for key, update in again.items():
        assert comparable(update.metrics) == one_pass(expected[key], key[0]), key
        # republished once more, under a newer revision: consumers keep the newest
        assert update.revision == revisions[key] + 1, key


def test_folding_a_delta_into_several_windows_shares_nothing_between_them() -> None:
    """The same decoded delta is merged into hour, day, week and month: a later change to one
    of them must not show in the others."""
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_deltas({TEN: partial(*mixed_events(40, seed=5, start=TEN))})
    before = {key: state.to_bytes() for key, state in book.states.items()}

    later = TEN + timedelta(hours=1)
    book.absorb_deltas({later: partial(completed(timestamp=later))})

    assert book.states[HOUR_TEN].to_bytes() == before[HOUR_TEN]
    assert all(
        book.states[key].to_bytes() != data for key, data in before.items() if key != HOUR_TEN
    )


def test_revisions_of_a_window_grow_one_two_three() -> None:
    pipeline = Pipeline()
    revisions = []
    for minute in (1, 2, 3):
        pipeline.apply([started(timestamp=TEN + timedelta(minutes=minute))])
        revisions.append(by_key(pipeline.tick())[HOUR_TEN].revision)

    assert revisions == [1, 2, 3]


def test_each_window_counts_its_own_revisions() -> None:
    pipeline = Pipeline()
    pipeline.apply([started(timestamp=TEN)])
    first = by_key(pipeline.tick())
    pipeline.apply([started(timestamp=TEN + timedelta(hours=1))])
    second = by_key(pipeline.tick())

    assert first[HOUR_TEN].revision == 1
    assert second[(HOURLY, TEN + timedelta(hours=1))].revision == 1
    assert second[(DAILY, datetime(2026, 3, 2, tzinfo=UTC))].revision == 2
    assert HOUR_TEN not in second


def test_an_unchanged_window_is_not_republished_until_it_is_final() -> None:
    pipeline = Pipeline()
    pipeline.apply([started(timestamp=TEN)])
    pipeline.tick()

    assert pipeline.tick() == []
    assert pipeline.tick(TEN + timedelta(minutes=59)) == []

    (final,) = [u for u in pipeline.tick(HOUR_TEN_END) if u.key == HOUR_TEN]

    assert final.is_final
    assert final.revision == 2


def test_open_window_updates_are_not_final() -> None:
    pipeline = Pipeline()
    pipeline.apply([started(timestamp=TEN)])

    assert all(not u.is_final for u in pipeline.tick(TEN + timedelta(minutes=30)))


def test_no_window_is_final_without_a_watermark() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({(HOURLY, datetime(2020, 1, 1, tzinfo=UTC)): partial(started())})

    assert all(not u.is_final for u in publish(book))
    assert book.open_windows == 1


def test_a_window_is_final_once_the_watermark_reaches_its_end_not_before() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    publish(book, None)

    assert publish(book, HOUR_TEN_END - timedelta(microseconds=1)) == []

    (final,) = publish(book, HOUR_TEN_END)

    assert final.is_final


def test_a_final_version_is_published_exactly_once_and_the_window_is_then_forgotten() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    publish(book, None)

    finals = publish(book, HOUR_TEN_END)
    later = publish(book, HOUR_TEN_END + timedelta(hours=5))

    assert [(u.key, u.is_final, u.revision) for u in finals] == [(HOUR_TEN, True, 2)]
    assert later == []
    assert book.states == {}
    assert book.revisions == {}
    assert book.open_windows == 0
    assert book.finalized == 1


def test_a_window_that_changed_as_it_closes_is_published_once_final_with_the_change() -> None:
    book = PublicationBook(SETTINGS, (HOURLY,))
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    publish(book, None)
    book.absorb_deltas({TEN: partial(completed(timestamp=TEN))})

    (final,) = publish(book, HOUR_TEN_END)

    assert final.is_final
    assert final.revision == 2
    assert final.metrics.events_processed == 2


def test_a_window_first_seen_after_it_closed_is_published_final_with_revision_one() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})

    (final,) = publish(book, HOUR_TEN_END + timedelta(hours=1))

    assert (final.revision, final.is_final) == (1, True)


def test_planning_does_not_change_the_book() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})

    first = book.plan(HOUR_TEN_END)
    again = book.plan(HOUR_TEN_END)

    assert [(u.key, u.revision, u.is_final) for u in first] == [(HOUR_TEN, 1, True)]
    assert [(u.key, u.revision, u.is_final) for u in again] == [(HOUR_TEN, 1, True)]
    assert book.open_windows == 1
    assert book.finalized == 0


def test_an_update_whose_publish_failed_is_planned_again_with_the_same_revision() -> None:
    book = PublicationBook(SETTINGS, (HOURLY,))
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    publish(book)
    book.absorb_deltas({TEN: partial(failed(timestamp=TEN))})

    book.plan(None)  # the broker did not acknowledge: nothing committed
    (retry,) = publish(book)

    assert retry.revision == 2
    assert retry.metrics.events_processed == 2
    assert publish(book) == []


def test_a_final_version_whose_publish_failed_is_kept_and_planned_again() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN))})
    publish(book)

    book.plan(HOUR_TEN_END)  # not committed
    (final,) = publish(book, HOUR_TEN_END)

    assert (final.revision, final.is_final) == (2, True)
    assert book.open_windows == 0
    assert book.finalized == 1


def test_committing_part_of_a_plan_leaves_the_rest_pending() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    day = (DAILY, datetime(2026, 3, 2, tzinfo=UTC))
    book.absorb_full({HOUR_TEN: partial(started(timestamp=TEN)), day: partial(started())})
    updates = by_key(book.plan(None))

    book.commit([updates[day]])

    assert [(u.key, u.revision) for u in publish(book)] == [(HOUR_TEN, 1)]
    assert publish(book) == []


def test_a_window_without_events_is_never_published() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    book.absorb_full({HOUR_TEN: AggregationState(SETTINGS).to_bytes()})
    book.absorb_full({HOUR_TEN: AggregationState(SETTINGS).to_bytes()})

    assert publish(book, None) == []
    assert publish(book, HOUR_TEN_END) == []
    assert publish(book, HOUR_TEN_END + timedelta(days=1)) == []
    assert book.finalized == 0


def test_a_window_nobody_reported_is_never_published() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)

    assert publish(book, None) == []
    assert publish(book, HOUR_TEN_END) == []


def test_an_update_carries_the_stable_window_id_and_the_window_bounds() -> None:
    book = PublicationBook(SETTINGS, ALL_WINDOWS)
    day = (DAILY, datetime(2026, 3, 2, tzinfo=UTC))
    book.absorb_full({day: partial(started(timestamp=TEN))})

    (update,) = publish(book, None)

    assert update.window_id == window_id(DAILY, day[1]) == "daily:2026-03-02T00:00:00Z"
    assert update.metrics.window_type is DAILY
    assert (update.metrics.window_start, update.metrics.window_end) == window_bounds(TEN, DAILY)


def test_a_streamed_run_publishes_every_window_final_once_equal_to_one_pass(
    events: list[CodegenEvent],
) -> None:
    """Events in time order, a tick per batch, the watermark a minute behind, then a drain."""
    pipeline = Pipeline()
    ordered = sorted(events, key=lambda e: e.timestamp)
    published: dict[WindowKey, list[WindowUpdate]] = defaultdict(list)
    late = 0
    watermark = None
    for start in range(0, len(ordered), 25):
        batch = ordered[start : start + 25]
        late += pipeline.apply(batch, watermark)  # judged by the watermark before this batch
        watermark = batch[-1].timestamp - timedelta(seconds=60)
        for update in pipeline.tick(watermark):
            published[update.key].append(update)
    for update in pipeline.tick(datetime(2026, 6, 1, tzinfo=UTC)):
        published[update.key].append(update)

    expected = events_by_window(events)
    assert late == 0
    assert set(published) == set(expected)
    for key, updates in published.items():
        assert [u.revision for u in updates] == list(range(1, len(updates) + 1)), key
        assert [u.is_final for u in updates] == [False] * (len(updates) - 1) + [True], key
        assert comparable(updates[-1].metrics) == one_pass(expected[key], key[0]), key
    assert pipeline.book.open_windows == 0
    assert pipeline.book.finalized == len(expected)
    assert all(store.panes == {} and store.rollups == {} for store in pipeline.stores)

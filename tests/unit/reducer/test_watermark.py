"""WatermarkTracker: per-partition event-time progress combined into the pipeline's watermark.

Wall-clock time is injected as float seconds, so every test moves time without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reducer.watermark import WatermarkTracker

LATENESS = 60.0
IDLE = 30.0
NOW = 1_772_445_600.0  # wall-clock seconds (2026-03-02 10:00 UTC); event time is independent
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STARTED = ("dev.codegen.started.v1", 0)
COMPLETED = ("dev.codegen.completed.v1", 0)
COMPLETED_1 = ("dev.codegen.completed.v1", 1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tracker() -> WatermarkTracker:
    return WatermarkTracker(allowed_lateness_s=LATENESS, idle_timeout_s=IDLE)


def minus_lateness(event_time: datetime) -> datetime:
    return event_time - timedelta(seconds=LATENESS)


def drained(marks: WatermarkTracker, partitions: list, now: float) -> None:
    """Their owner has read these partitions to the end of the log."""
    marks.report(partitions, partitions, now)


def test_the_watermark_is_none_before_any_partition_is_seen() -> None:
    assert tracker().watermark(NOW) is None


def test_the_watermark_is_none_while_assigned_partitions_have_not_produced_data() -> None:
    marks = tracker()
    marks.report([STARTED, COMPLETED], [], NOW)

    assert marks.watermark(NOW + 1) is None


def test_the_watermark_is_the_latest_event_time_minus_the_allowed_lateness() -> None:
    marks = tracker()
    marks.observe(STARTED, at(600), NOW)

    assert marks.watermark(NOW) == minus_lateness(at(600))


def test_the_allowed_lateness_is_configurable() -> None:
    marks = WatermarkTracker(allowed_lateness_s=5.0, idle_timeout_s=IDLE)
    marks.observe(STARTED, at(600), NOW)

    assert marks.watermark(NOW) == at(595)


def test_a_partition_progress_is_the_largest_event_time_it_has_shown() -> None:
    marks = tracker()
    marks.observe(STARTED, at(600), NOW)
    marks.observe(STARTED, at(300), NOW + 1)  # an older batch does not lower its progress

    assert marks.watermark(NOW + 1) == minus_lateness(at(600))


def test_a_partition_read_ahead_never_makes_the_other_partitions_late() -> None:
    marks = tracker()
    marks.observe(COMPLETED, at(3 * 3600), NOW)  # this topic is three hours ahead
    marks.observe(STARTED, at(120), NOW)

    watermark = marks.watermark(NOW)

    assert watermark == minus_lateness(at(120))
    assert watermark < at(120)  # the slow partition's next events are still on time


def test_the_watermark_is_the_minimum_over_every_active_partition() -> None:
    marks = tracker()
    marks.observe(STARTED, at(500), NOW)
    marks.observe(COMPLETED, at(400), NOW)
    marks.observe(COMPLETED_1, at(450), NOW)

    assert marks.watermark(NOW) == minus_lateness(at(400))


def test_a_drained_empty_partition_holds_the_watermark_back_until_the_idle_timeout() -> None:
    marks = tracker()
    drained(marks, [COMPLETED], NOW)
    marks.report([STARTED], [], NOW)
    marks.observe(STARTED, at(600), NOW + IDLE - 1)

    assert marks.watermark(NOW + IDLE - 1) is None  # COMPLETED might still deliver old events
    assert marks.watermark(NOW + IDLE) == minus_lateness(at(600))


def test_reporting_a_partition_again_does_not_reset_its_idle_clock() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(600), NOW + IDLE)
    drained(marks, [STARTED, COMPLETED], NOW + IDLE)  # every batch repeats the report

    assert marks.watermark(NOW + IDLE) == minus_lateness(at(600))


def test_a_partition_not_read_to_its_end_holds_the_watermark_back_however_long_it_takes() -> None:
    marks = tracker()
    marks.report([STARTED, COMPLETED], [STARTED], NOW)  # COMPLETED has a backlog to read
    marks.observe(STARTED, at(600), NOW)
    marks.heartbeat(NOW + 100 * IDLE)

    assert marks.watermark(NOW + 100 * IDLE) is None  # neither its progress nor the wall clock
    marks.observe(COMPLETED, at(60), NOW + 100 * IDLE)
    assert marks.watermark(NOW + 100 * IDLE) == minus_lateness(at(60))
    drained(marks, [STARTED, COMPLETED], NOW + 100 * IDLE + 1)
    assert marks.watermark(NOW + 101 * IDLE + 1) == minus_lateness(at(60))  # no newer data
    marks.heartbeat(NOW + 102 * IDLE - 1)
    assert marks.watermark(NOW + 102 * IDLE) == datetime.fromtimestamp(
        NOW + 102 * IDLE, UTC
    ) - timedelta(seconds=LATENESS)


def test_a_partition_handed_over_in_a_rebalance_holds_back_until_its_new_owner_drains_it() -> None:
    """The old owner read part of COMPLETED's backlog and lost it in a rebalance; the new owner
    takes longer than the idle timeout to start. Its backlog must not become late meanwhile."""
    marks = tracker()
    marks.report([STARTED, COMPLETED], [STARTED], NOW)  # owner A: COMPLETED not at its end
    marks.observe(STARTED, at(3600), NOW)
    marks.observe(COMPLETED, at(100), NOW)
    marks.report([STARTED], [STARTED], NOW + 1)  # A keeps STARTED; COMPLETED is revoked
    marks.observe(STARTED, at(3700), NOW + 5 * IDLE)

    assert marks.watermark(NOW + 5 * IDLE) == minus_lateness(at(100))
    marks.report([COMPLETED], [], NOW + 5 * IDLE)  # owner B starts reading
    marks.observe(COMPLETED, at(200), NOW + 5 * IDLE)
    assert marks.watermark(NOW + 5 * IDLE) == minus_lateness(at(200))
    drained(marks, [COMPLETED], NOW + 5 * IDLE + 1)
    marks.observe(STARTED, at(3800), NOW + 6 * IDLE + 1)
    assert marks.watermark(NOW + 6 * IDLE + 1) == minus_lateness(at(3800))


def test_restored_partitions_hold_back_until_their_owner_reports_them_drained() -> None:
    before = tracker()
    drained(before, [STARTED], NOW)
    before.observe(STARTED, at(600), NOW)
    later = NOW + 86_400  # a day later: the wall clock is far ahead of the restored progress
    restored = tracker().load(before.to_obj(), later)
    restored.heartbeat(later + 10 * IDLE)

    assert restored.watermark(later + 10 * IDLE) == minus_lateness(at(600))
    drained(restored, [STARTED], later + 10 * IDLE)
    restored.heartbeat(later + 11 * IDLE - 1)
    assert restored.watermark(later + 11 * IDLE) == datetime.fromtimestamp(
        later + 11 * IDLE, UTC
    ) - timedelta(seconds=LATENESS)


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(100), NOW)
    marks.observe(COMPLETED, at(900), NOW)
    assert marks.watermark(NOW) == minus_lateness(at(100))

    marks.observe(COMPLETED, at(1000), NOW + IDLE)  # STARTED has been silent for IDLE seconds

    assert marks.watermark(NOW + IDLE) == minus_lateness(at(1000))


def test_a_partition_is_still_active_just_before_the_idle_timeout() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(100), NOW)
    marks.observe(COMPLETED, at(1000), NOW + IDLE - 1)

    assert marks.watermark(NOW + IDLE - 0.001) == minus_lateness(at(100))


def test_a_partition_sending_only_bad_messages_goes_idle_and_stops_holding_back() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(100), NOW)
    marks.observe(COMPLETED, at(900), NOW)
    marks.observe(STARTED, None, NOW + IDLE - 1)  # messages, but no decodable events
    marks.observe(COMPLETED, at(1000), NOW + IDLE)

    assert marks.watermark(NOW + IDLE) == minus_lateness(at(1000))


def test_when_every_partition_is_idle_the_watermark_follows_the_wall_clock_minus_lateness() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(100), NOW)
    marks.observe(COMPLETED, at(200), NOW)
    later = NOW + 2 * 3600
    marks.heartbeat(later - 1)  # the consumer keeps polling and finds nothing

    assert marks.watermark(later) == datetime.fromtimestamp(later, UTC) - timedelta(
        seconds=LATENESS
    )
    marks.heartbeat(later + 9)
    assert marks.watermark(later + 10) == datetime.fromtimestamp(later + 10, UTC) - timedelta(
        seconds=LATENESS
    )


def test_assigned_partitions_that_never_produce_let_the_wall_clock_close_windows() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.heartbeat(NOW + IDLE - 1)

    assert marks.watermark(NOW + IDLE) == datetime.fromtimestamp(NOW + IDLE, UTC) - timedelta(
        seconds=LATENESS
    )


def test_the_watermark_is_a_utc_datetime() -> None:
    marks = tracker()
    drained(marks, [STARTED], NOW)
    marks.heartbeat(NOW + IDLE - 1)

    watermark = marks.watermark(NOW + IDLE)

    assert watermark is not None
    assert watermark.utcoffset() == timedelta(0)


def test_the_watermark_never_goes_backwards_when_a_new_partition_is_assigned() -> None:
    marks = tracker()
    marks.observe(STARTED, at(600), NOW)
    before = marks.watermark(NOW)

    marks.report([COMPLETED], [], NOW + 1)  # new, no data yet: holds back, but cannot undo

    assert marks.watermark(NOW + 1) == before


def test_the_watermark_never_goes_backwards_when_a_slower_partition_appears() -> None:
    marks = tracker()
    marks.observe(STARTED, at(600), NOW)
    before = marks.watermark(NOW)

    marks.observe(COMPLETED, at(60), NOW + 1)

    assert marks.watermark(NOW + 1) == before


def test_the_watermark_never_goes_backwards_when_an_idle_partition_resumes_behind() -> None:
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    marks.observe(STARTED, at(100), NOW)
    marks.observe(COMPLETED, at(900), NOW + IDLE)
    before = marks.watermark(NOW + IDLE)  # STARTED idle: follows COMPLETED

    marks.observe(STARTED, at(200), NOW + IDLE + 1)  # resumes behind the watermark

    assert marks.watermark(NOW + IDLE + 1) == before


def test_the_watermark_never_goes_backwards_when_the_wall_clock_is_behind_event_time() -> None:
    marks = tracker()
    future = datetime.fromtimestamp(NOW, UTC) + timedelta(days=1)
    drained(marks, [STARTED], NOW)
    marks.observe(STARTED, future, NOW)
    before = marks.watermark(NOW)

    assert marks.watermark(NOW + IDLE) == before  # all idle: the wall clock is a day behind


def test_the_watermark_never_goes_backwards_over_an_arbitrary_sequence() -> None:
    marks = tracker()
    partitions = [STARTED, COMPLETED, COMPLETED_1]
    drained(marks, partitions, NOW)
    seen: list[datetime] = []
    for step in range(200):
        now = NOW + step * 7.0
        key = partitions[step % 3]
        event_seconds = (step * 7919) % 3600  # jumps back and forth in event time
        if step % 11:
            marks.observe(key, at(event_seconds), now)
        watermark = marks.watermark(now)
        if watermark is not None:
            seen.append(watermark)

    assert seen
    assert seen == sorted(seen)


def test_a_flood_of_bad_messages_is_not_quiet_so_the_watermark_does_not_follow_the_wall_clock() -> (
    None
):
    marks = tracker()
    drained(marks, [STARTED, COMPLETED], NOW)
    for step in range(1, 10):  # only undecodable messages, for longer than the idle timeout
        marks.observe(STARTED, None, NOW + step * IDLE)
    assert marks.watermark(NOW + 9 * IDLE) is None
    marks.observe(STARTED, at(100), NOW + 10 * IDLE)  # then a backlog of real events
    assert marks.watermark(NOW + 10 * IDLE) == minus_lateness(at(100))


def test_quiet_partitions_without_a_polling_consumer_do_not_advance_the_wall_clock() -> None:
    marks = tracker()
    drained(marks, [STARTED], NOW)
    marks.observe(STARTED, at(100), NOW)
    assert marks.watermark(NOW) == minus_lateness(at(100))
    # then the consumer restarts: no polls for a while, so the quiet proves nothing
    assert marks.watermark(NOW + 3 * IDLE) == minus_lateness(at(100))
    later = NOW + 100 * IDLE
    marks.heartbeat(later)  # polling again, still nothing: now the quiet is real
    assert marks.watermark(later + 1) == datetime.fromtimestamp(later + 1, UTC) - timedelta(
        seconds=LATENESS
    )


def test_a_partition_whose_consumer_has_not_started_yet_holds_the_watermark_back() -> None:
    """Consumer A reads its partitions to recent events before consumer B has even started:
    B's partitions are known from the topics' metadata, so their old backlog is not late."""
    marks = tracker()
    marks.report([STARTED], [STARTED], NOW, known=[STARTED, COMPLETED])
    marks.observe(STARTED, at(7200), NOW)
    marks.heartbeat(NOW + 10 * IDLE)

    assert marks.watermark(NOW + 10 * IDLE) is None  # COMPLETED: not read by anyone yet
    marks.report([COMPLETED], [], NOW + 10 * IDLE, known=[STARTED, COMPLETED])
    marks.observe(COMPLETED, at(60), NOW + 10 * IDLE)
    assert marks.watermark(NOW + 10 * IDLE) == minus_lateness(at(60))


def test_a_revoked_partition_holds_the_watermark_back_even_if_it_was_drained() -> None:
    """Consumer 0 drained COMPLETED, more arrived, and it lost COMPLETED in a rebalance before
    fetching that: the partition is unowned until consumer 1 drains it, whatever the idle time."""
    marks = tracker()
    marks.report([STARTED, COMPLETED], [STARTED, COMPLETED], NOW, owner=0)
    marks.observe(COMPLETED, at(60), NOW)
    marks.report([STARTED], [STARTED], NOW + 1, owner=0)  # COMPLETED revoked
    marks.observe(STARTED, at(7200), NOW + 10 * IDLE)

    assert marks.watermark(NOW + 10 * IDLE) == minus_lateness(at(60))  # held by COMPLETED
    marks.report([COMPLETED], [], NOW + 10 * IDLE, owner=1)
    marks.observe(COMPLETED, at(120), NOW + 10 * IDLE)
    assert marks.watermark(NOW + 10 * IDLE) == minus_lateness(at(120))
    marks.report([COMPLETED], [COMPLETED], NOW + 10 * IDLE + 1, owner=1)
    marks.observe(STARTED, at(7300), NOW + 11 * IDLE + 2)
    assert marks.watermark(NOW + 11 * IDLE + 2) == minus_lateness(at(7300))


def test_one_consumer_losing_a_partition_does_not_touch_another_consumers_partitions() -> None:
    marks = tracker()
    marks.report([STARTED], [STARTED], NOW, owner=0)
    marks.report([COMPLETED], [COMPLETED], NOW, owner=1)
    marks.report([], [], NOW + 1, owner=0)  # consumer 0 lost everything

    assert marks.partitions[COMPLETED].drained and marks.partitions[COMPLETED].owner == 1
    assert not marks.partitions[STARTED].drained and marks.partitions[STARTED].owner is None

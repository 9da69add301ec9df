"""Health rules and rebuild decisions over typed stats, with time passed in."""

from __future__ import annotations

from dataclasses import replace

from reducer.nodes.stats import (
    CoordinatorStats,
    ExecutorStats,
    IngestStats,
    PipelineStats,
    WindowStats,
)
from reducer.nodes.supervisor import (
    DEGRADED,
    HEALTHY,
    MAX_BACKOFF_S,
    UNHEALTHY,
    Action,
    Supervisor,
    evaluate_health,
    unowned_partitions,
)

EVERY = ["in[0]", "in[1]", "in[2]", "in[3]"]
INGEST = IngestStats(index=0, running=True, seconds_since_poll=0.2, partitions=EVERY)
WINDOW = WindowStats(index=0)
COORDINATOR = CoordinatorStats(seconds_since_tick=1.0)
EXECUTOR = ExecutorStats(published=7)


def pipeline(
    ingest: list | None = None,
    windows: list | None = None,
    coordinator: CoordinatorStats | None = COORDINATOR,
    executor: ExecutorStats | None = EXECUTOR,
) -> PipelineStats:
    if ingest is None:
        ingest = [
            replace(INGEST, assigned=EVERY[:2]),
            replace(INGEST, index=1, assigned=EVERY[2:]),
        ]
    return PipelineStats(
        ingest, windows if windows is not None else [WINDOW], coordinator, executor
    )


def test_all_actors_answering_and_progressing_is_healthy() -> None:
    assert evaluate_health(pipeline(), 30) == (HEALTHY, [])


def test_an_actor_that_stopped_making_progress_is_unhealthy_with_a_short_reason() -> None:
    cases = {
        "ingest-1 has not polled Kafka for 45 s": pipeline(
            ingest=[INGEST, replace(INGEST, index=1, seconds_since_poll=45.0)]
        ),
        "ingest-1 has stopped consuming": pipeline(
            ingest=[INGEST, replace(INGEST, index=1, running=False, error="KafkaException: x")]
        ),
        "ingest-1 is down": pipeline(ingest=[INGEST, None]),
        "coordinator has not ticked for 31 s": pipeline(
            coordinator=replace(COORDINATOR, seconds_since_tick=31.0, error="Boom: 10.0.0.7")
        ),
        "coordinator is down": pipeline(coordinator=None),
        "1 window actor(s) down": pipeline(windows=[WINDOW, None]),
    }
    for reason, stats in cases.items():
        status, reasons = evaluate_health(stats, 30)
        assert status == UNHEALTHY and reasons[0] == reason, (reason, reasons)
        assert all("10.0.0" not in r and "Exception" not in r for r in reasons)


def test_metrics_still_flowing_with_an_executor_checkpoint_or_tick_problem_is_degraded() -> None:
    cases = {
        "intent executor is down": pipeline(executor=None),
        "intent executor has stopped": pipeline(executor=replace(EXECUTOR, error="x")),
        "last tick failed": pipeline(coordinator=replace(COORDINATOR, error="x")),
        "last checkpoint failed": pipeline(coordinator=replace(COORDINATOR, checkpoint_error="x")),
        "2 window update(s) set aside": pipeline(
            coordinator=replace(COORDINATOR, windows_set_aside=2)
        ),
    }
    for reason, stats in cases.items():
        assert evaluate_health(stats, 30) == (DEGRADED, [reason])


def test_unowned_partitions_are_those_no_running_ingest_actor_owns() -> None:
    a = replace(INGEST, assigned=EVERY[:2])
    b = replace(INGEST, index=1, assigned=EVERY[2:])
    assert unowned_partitions([a, b]) == []
    assert unowned_partitions([a, replace(b, assigned=[])]) == ["in[2]", "in[3]"]
    # A stopped actor's (stale) assignment owns nothing; a dead one (None) is skipped.
    assert unowned_partitions([a, replace(b, running=False)]) == ["in[2]", "in[3]"]
    assert unowned_partitions([a, None]) == ["in[2]", "in[3]"]
    # Partitions only one actor has heard of still count (metadata refreshes at its own pace).
    assert unowned_partitions([a, replace(b, partitions=[*EVERY, "in[4]"])]) == ["in[4]"]
    assert unowned_partitions([None]) == []


def test_unhealthy_means_rebuild_with_backoff_that_resets_once_healthy() -> None:
    supervisor = Supervisor(stall_s=30, assignment_stall_s=60)
    broken = pipeline(windows=[None])

    first = supervisor.decide(broken, now=100.0)
    assert first.action is Action.REBUILD and first.reason == "1 window actor(s) down"
    assert supervisor.decide(broken, now=101.0).action is Action.NONE  # backing off 2 s
    assert supervisor.decide(broken, now=102.0).action is Action.REBUILD
    assert supervisor.decide(broken, now=105.0).action is Action.NONE  # now 4 s
    assert supervisor.decide(broken, now=106.0).action is Action.REBUILD
    for step in range(20):
        supervisor.decide(broken, now=200.0 + step * 400)
    assert supervisor.backoff_s == MAX_BACKOFF_S
    assert supervisor.decide(pipeline(), now=10_000.0).action is Action.NONE
    assert supervisor.decide(broken, now=10_001.0).action is Action.REBUILD


def test_a_dead_executor_is_restarted_alone() -> None:
    supervisor = Supervisor(stall_s=30, assignment_stall_s=60)
    assert supervisor.decide(pipeline(executor=None), 0.0).action is Action.RESTART_EXECUTOR


def test_partitions_unowned_for_the_assignment_stall_reset_the_group() -> None:
    supervisor = Supervisor(stall_s=30, assignment_stall_s=60)
    stuck = pipeline(ingest=[replace(INGEST, assigned=EVERY[:2]), replace(INGEST, index=1)])

    assert supervisor.decide(stuck, now=0.0).action is Action.NONE
    assert supervisor.decide(stuck, now=59.0).action is Action.NONE
    decision = supervisor.decide(stuck, now=60.5)
    assert decision.action is Action.RESET_GROUP and "in[2]" in decision.reason
    # Owned again in between: the clock starts over.
    supervisor.decide(pipeline(), now=61.0)
    assert supervisor.decide(stuck, now=100.0).action is Action.NONE

"""Fault injection: kill actors, restart the job, rebalance, pause the broker; then check the final
metrics still equal MetricsAggregator over the unique valid events (nothing lost, nothing twice)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import ray

from actors import kafka
from actors.fleet import produce_events
from actors.names import COORDINATOR, INTENT_EXECUTOR, ingest_name, window_name
from actors.pipeline import Pipeline
from models.settings import KafkaSettings
from tests.integration.test_pipeline import assert_exact, expected_all, fleet, settings_for

# produce_events writes topic by topic, so one topic's newer events can be read before
# another's older ones exist, while that topic sits drained and idle: producer skew, which
# allowed lateness is for. An hour covers it; windows still close (by the wall clock) once
# everything is read.
FAST = {
    "checkpoint_interval_seconds": 1.0,
    "idle_partition_timeout_seconds": 4,
    "allowed_lateness_seconds": 3600,
}


def latest_finals(settings: KafkaSettings, expected: int, timeout: float) -> dict[str, dict]:
    """Highest-revision final payload per window id (a recovery may republish a final)."""
    deadline = time.monotonic() + timeout
    finals: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for message in kafka.consume_all(settings, settings.target_topic, None, timeout=1.0):
            payload = json.loads(message.value())
            key = payload["window_id"]
            if payload["is_final"] and payload["revision"] >= finals.get(key, {}).get(
                "revision", -1
            ):
                finals[key] = payload
        if len(finals) >= expected:
            break
    return finals


def drive(pipeline: Pipeline, until: Callable[[], bool], timeout: float = 90) -> list[str]:
    """Play the driver: supervise until ``until()`` holds; returns the recoveries performed."""
    actions: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        action = pipeline.supervise()
        if action:
            actions.append(action)
        try:
            if until():
                return actions
        except Exception:  # an actor died between supervise() and until()
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out; recoveries: {actions}")


def checkpoints(pipeline: Pipeline) -> int:
    return pipeline.stats().coordinator.checkpoints


def applied(pipeline: Pipeline) -> int:
    return sum(w.events_applied for w in pipeline.stats().windows)


def kill(pipeline: Pipeline, name: str) -> None:
    ray.kill(ray.get_actor(name, namespace=pipeline.namespace), no_restart=True)


class Feeder(threading.Thread):
    """Produces events at a steady rate in the background; ``finish`` re-raises its failure."""

    def __init__(self, settings: KafkaSettings, events: list[dict], rate: float = 200) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings, self.events, self.rate = settings, events, rate
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            produce_events(self.settings, self.events, rate=self.rate, stop=self.stopped)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 120) -> None:
        self.join(timeout)
        if self.is_alive() or self.error is not None:
            self.stopped.set()
            raise AssertionError(f"feeder did not finish: {self.error!r}")


def run_with_fault(
    kafka_settings: KafkaSettings,
    inject: Callable[[Pipeline], Pipeline | None],
    seed: int,
    **pipeline: object,
) -> tuple[dict[str, dict], dict[str, dict], list[str]]:
    events = fleet(200, seed=seed)
    first, second = events[:900], events[900:]
    settings = settings_for(kafka_settings, **{**FAST, **pipeline})
    pipeline = Pipeline(settings).start()
    feeder = Feeder(kafka_settings, second)
    try:
        produce_events(kafka_settings, first)
        # The second half follows at once, paced: a pause between the halves longer than the
        # idle timeout would be quiet input, and the wall clock would rightly close every window
        # (the second half then late). So the stream never pauses and the fault lands mid-stream.
        feeder.start()
        drive(pipeline, lambda: applied(pipeline) >= len(first) and checkpoints(pipeline) >= 1)
        replaced = inject(pipeline)
        if replaced is not None:
            pipeline = replaced
        feeder.finish()
        actions = drive(pipeline, lambda: pipeline.stats().coordinator.checkpoints > 0)
        expected = expected_all(events, settings.pipeline.windows)
        drive(pipeline, lambda: pipeline.stats().coordinator.finals_published > 0)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
    finally:
        feeder.stopped.set()
        pipeline.stop()
    return finals, expected, actions


@pytest.mark.parametrize(
    "victim", [window_name(0), ingest_name(0), COORDINATOR], ids=["window", "ingest", "coordinator"]
)
def test_killing_a_stateful_actor_mid_stream_restores_from_the_checkpoint_exactly(
    ray_session: None, kafka_settings: KafkaSettings, victim: str
) -> None:
    finals, expected, actions = run_with_fault(
        kafka_settings, lambda pipeline: kill(pipeline, victim), seed=21
    )
    assert any("restored the pipeline from the latest checkpoint" in a for a in actions), actions
    assert_exact(finals, expected)


def test_killing_the_intent_executor_restarts_it_and_loses_no_update(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    finals, expected, actions = run_with_fault(
        kafka_settings, lambda pipeline: kill(pipeline, INTENT_EXECUTOR), seed=22
    )
    assert "restarted the intent executor" in actions
    assert_exact(finals, expected)


def test_restarting_the_whole_job_resumes_from_the_checkpoint(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    def crash_and_restart(pipeline: Pipeline) -> Pipeline:
        # No clean stop: every actor dies at once, as when the driver process is killed.
        pipeline._kill_graph()
        ray.kill(pipeline.executor, no_restart=True)
        time.sleep(1)
        return Pipeline(pipeline.settings).start()

    finals, expected, _ = run_with_fault(kafka_settings, crash_and_restart, seed=23)
    assert_exact(finals, expected)


def test_a_consumer_group_rebalance_while_batches_are_in_flight_loses_and_doubles_nothing(
    ray_session: None, kafka_settings: KafkaSettings
) -> None:
    def intruder(_pipeline: Pipeline) -> None:
        # Another member joins the group, takes partitions (and fetches from them) then leaves:
        # two rebalances while the pipeline has batches in flight.
        consumer = kafka.make_consumer(kafka_settings)
        consumer.subscribe(kafka_settings.input_topics)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not consumer.assignment():
            consumer.poll(0.2)
        consumer.poll(0.5)
        consumer.close()

    # The idle timeout (4 s) is below the hand-over gap (leave + join, 5-10 s on Tansu): a
    # revoked partition nobody reads yet still holds the watermark, because it is not drained
    # (and a partition whose EOF predates messages fetched since is not drained either).
    finals, expected, _ = run_with_fault(kafka_settings, intruder, seed=24)
    assert_exact(finals, expected)


def test_the_broker_unavailable_for_a_few_seconds_loses_nothing(
    ray_session: None, kafka_settings: KafkaSettings, broker_process: int
) -> None:
    def pause_broker(_pipeline: Pipeline) -> None:
        os.kill(broker_process, signal.SIGSTOP)
        try:
            time.sleep(4)
        finally:
            os.kill(broker_process, signal.SIGCONT)

    # An outage longer than the idle timeout looks like quiet partitions to the watermark
    # (consumers poll and get nothing), so the timeout must exceed the outage: the default is 30 s.
    finals, expected, _ = run_with_fault(
        kafka_settings, pause_broker, seed=25, idle_partition_timeout_seconds=12
    )
    assert_exact(finals, expected)

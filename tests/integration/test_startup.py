"""A death during start-up or a restore costs an attempt, not the job (real broker and Ray).

Each actor kind is killed the moment it appears: during a fresh start (before the first
checkpoint), during a start that restores a checkpoint, and right after start-up (the first
tick). Start-up must retry, the pipeline must keep running, and the final metrics must be exact.
"""

from __future__ import annotations

import threading
import time

import pytest
import ray

from actors.fleet import produce_events
from actors.names import COORDINATOR, INTENT_EXECUTOR, ingest_name, namespace, window_name
from actors.pipeline import Pipeline
from models.settings import KafkaSettings, Settings
from tests.integration.test_faults import FAST, applied, drive, latest_finals
from tests.integration.test_pipeline import assert_exact, expected_all, fleet, settings_for

VICTIMS = [window_name(0), ingest_name(0), COORDINATOR, INTENT_EXECUTOR]


def kill_when_it_appears(name: str, where: str, timeout: float = 60) -> threading.Thread:
    """Kill the named actor as soon as it exists (in the background)."""

    def hunt() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ray.kill(ray.get_actor(name, namespace=where), no_restart=True)
                return
            except ValueError:  # not there yet
                time.sleep(0.01)

    hunter = threading.Thread(target=hunt, daemon=True)
    hunter.start()
    return hunter


def start_despite(settings: Settings, victim: str) -> Pipeline:
    hunter = kill_when_it_appears(victim, namespace(settings.instance))
    pipeline = Pipeline(settings).start()
    hunter.join(60)
    assert not hunter.is_alive(), f"{victim} never appeared"
    return pipeline


def finish_exact(pipeline: Pipeline, kafka_settings: KafkaSettings, events: list[dict]) -> None:
    try:
        drive(pipeline, lambda: applied(pipeline) >= len(events), timeout=120)
        expected = expected_all(events, pipeline.settings.pipeline.windows)
        drive(pipeline, lambda: pipeline.stats().coordinator.finals_published > 0)
        finals = latest_finals(kafka_settings, len(expected), timeout=90)
    finally:
        pipeline.stop()
    assert_exact(finals, expected)


@pytest.mark.parametrize("victim", VICTIMS)
def test_a_death_during_a_fresh_start_is_retried_and_nothing_is_lost(
    ray_session: None, kafka_settings: KafkaSettings, victim: str
) -> None:
    events = fleet(80, seed=41)
    produce_events(kafka_settings, events)
    pipeline = start_despite(settings_for(kafka_settings, **FAST), victim)
    finish_exact(pipeline, kafka_settings, events)


@pytest.mark.parametrize("victim", VICTIMS)
def test_a_death_while_a_checkpoint_is_restored_is_retried_and_nothing_is_lost(
    ray_session: None, kafka_settings: KafkaSettings, victim: str
) -> None:
    events = fleet(80, seed=43)
    half = len(events) // 2
    settings = settings_for(kafka_settings, **FAST)
    first = Pipeline(settings).start()
    try:
        produce_events(kafka_settings, events[:half])
        drive(first, lambda: applied(first) >= half)
    finally:
        first.stop()  # a final checkpoint holding the first half's windows
    produce_events(kafka_settings, events[half:])
    pipeline = start_despite(settings, victim)
    finish_exact(pipeline, kafka_settings, events)


@pytest.mark.parametrize("victim", [COORDINATOR, window_name(1)])
def test_a_death_right_after_start_up_is_recovered_and_nothing_is_lost(
    ray_session: None, kafka_settings: KafkaSettings, victim: str
) -> None:
    events = fleet(80, seed=47)
    produce_events(kafka_settings, events)
    pipeline = Pipeline(settings_for(kafka_settings, **FAST)).start()
    ray.kill(ray.get_actor(victim, namespace=pipeline.namespace), no_restart=True)
    finish_exact(pipeline, kafka_settings, events)

"""Two pipelines on one Ray cluster and one broker: different consumer groups, topic prefixes
and route prefixes. Each one's metrics are exact, and stopping one leaves the other's actors and
API answering (real broker, real Ray and Serve)."""

from __future__ import annotations

import uuid

import pytest
import ray
from ray import serve

from actors.broker import free_port
from actors.fleet import produce_events
from actors.names import app_name, namespace
from actors.pipeline import Pipeline
from actors.serve_app import RouteTaken, start_api, stop_api
from models.settings import KafkaSettings, ServeSettings, Settings
from tests.integration.test_faults import FAST, applied, drive, latest_finals
from tests.integration.test_pipeline import assert_exact, expected_all, fleet, settings_for
from tests.integration.test_serve_api import get_json


def team(broker: str, route: str, port: int) -> Settings:
    tag = uuid.uuid4().hex[:6]
    kafka_settings = KafkaSettings(
        bootstrap_servers=broker, topic_prefix=f"team{tag}", group_id=f"Team {tag} reducer"
    )
    # One ingest and one window actor each: both pipelines and both Serve replicas fit the
    # 2-CPU test cluster (0.7 + 0.1 CPU each).
    settings = settings_for(kafka_settings, **{**FAST, "window_actors": 1, "ingest_actors": 1})
    return settings.model_copy(update={"serve": ServeSettings(port=port, route_prefix=route)})


def test_two_pipelines_share_a_cluster_and_stopping_one_leaves_the_other(
    ray_session: None, broker: str
) -> None:
    port = free_port()
    a, b = team(broker, "/", port), team(broker, "/b", port)
    assert a.instance != b.instance and namespace(a.instance) != namespace(b.instance)
    events = {a.instance: fleet(60, seed=51), b.instance: fleet(40, seed=52)}
    pipelines = {}
    try:
        for settings in (a, b):
            produce_events(settings.kafka, events[settings.instance])
            pipelines[settings.instance] = Pipeline(settings).start()
        urls = {s.instance: start_api(s, "node").url for s in (a, b)}
        with pytest.raises(RouteTaken, match="already serves '/b'"):
            start_api(team(broker, "/b", port), "node")

        for settings in (a, b):
            pipeline = pipelines[settings.instance]
            expected = expected_all(events[settings.instance], settings.pipeline.windows)
            drive(pipeline, lambda p=pipeline, s=settings: applied(p) == len(events[s.instance]))
            drive(pipeline, lambda p=pipeline: p.stats().coordinator.finals_published > 0)
            assert_exact(latest_finals(settings.kafka, len(expected), timeout=90), expected)
            status, body = get_json(urls[settings.instance], "/health", token=None)
            assert status == 200 and body["events_in"] == len(events[settings.instance])

        stop_api(a)
        pipelines.pop(a.instance).stop()

        assert app_name(a.instance) not in serve.status().applications
        assert app_name(b.instance) in serve.status().applications
        status, body = get_json(urls[b.instance], "/health", token=None)
        assert status == 200 and body["status"] in ("healthy", "degraded"), body
        assert ray.get_actor("coordinator", namespace=namespace(b.instance))
        with pytest.raises(ValueError):
            ray.get_actor("coordinator", namespace=namespace(a.instance))
    finally:
        for settings in (a, b):
            stop_api(settings)
        for pipeline in pipelines.values():
            pipeline.stop()

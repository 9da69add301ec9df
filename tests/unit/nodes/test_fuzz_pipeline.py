"""Hypothesis fuzz through the code the actors run, in process: random mixes of valid, extreme
and malformed messages are routed, decoded and folded by window nodes, collected, merged and
planned by the coordinator's planner, and encoded as intents.

Asserts: nothing raises; every message is accounted for exactly once (applied, rejected,
late, or a duplicate); every planned event validates against ModelEventMetricsRecorded,
carries only finite numbers and fits the producer's limit."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.metrics import EnumMetricsWindow, ModelEventMetricsRecorded
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.nodes.coordinator import TickPlanner
from reducer.nodes.messages import SourceRange, WindowBatch
from reducer.nodes.routing import route_messages
from reducer.nodes.window import WindowNode
from tests.datasets import DICT_FACTORIES
from tests.hostile import HOSTILE_KINDS, hostile

HOUR = datetime(2026, 10, 1, 10, tzinfo=UTC)
NOW = (HOUR + timedelta(hours=3)).timestamp()
TOPIC = "dev.codegen.completed.v1"
LIMIT = 60_000
"""The producer's message.max.bytes in this test: small, so that trimming is exercised."""
PIPELINE = PipelineSettings(
    windows=[EnumMetricsWindow.HOURLY, EnumMetricsWindow.DAILY], allowed_lateness_seconds=1800
)
REDUCER = ReducerSettings(max_keys_per_breakdown=200)
NODES = 2

EXTREMES = {
    "timestamp": ["0001-01-01T00:30:00+01:00", "0999-06-01T00:00:00Z", 1e12, -1, "2999-01-01"],
    "total_tokens": [2**53, 2**53 + 1, 10**400],
    "total_cost_usd": [1e308, 10_000, 10_000.5, 5e-324],
    "total_duration_seconds": [1e308, 604_800, 0.0],
    "duration_seconds": [1e308, 604_800.5],
    "partial_duration_seconds": [1e308, 0.0],
    "complexity_score": [-1e13, 1e12, None],
    "primary_model": ["m" * 300, "\u017f", ""],
    "node_type": ["n" * 256],
    "stage_name": ["s" * 1000],
    "error_code": ["E" * 257],
}


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    """A batch: mostly valid events of a few workflows around HOUR, some with one extreme value,
    some malformed, some repeated (a producer's retry)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 60))):
        factory = rng.choice(list(DICT_FACTORIES.values()))
        minutes = rng.randrange(-120, 180)
        event = factory(
            timestamp=(HOUR + timedelta(minutes=minutes)).isoformat(),
            workflow_id=str(rng.choice(WORKFLOWS)),
        )
        kind = rng.random()
        if kind < 0.25:
            field = rng.choice([f for f in EXTREMES if f in event or f == "complexity_score"])
            event[field] = rng.choice(EXTREMES[field])
            out.append(json.dumps(event).encode())
        elif kind < 0.4:
            out.append(hostile(rng.choice(HOSTILE_KINDS), event, rng, max_bytes=4096))
        elif kind < 0.45 and out:
            out.append(rng.choice(out))  # a duplicate delivery
        else:
            out.append(json.dumps(event).encode())
    return out


WORKFLOWS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(40)]


def batch_for(values: list[bytes], sequence: int) -> WindowBatch:
    return WindowBatch(
        (0, sequence),
        values,
        [0] * len(values),
        [SourceRange(TOPIC, 0, sequence * 1000, sequence * 1000 + max(len(values) - 1, 0))],
        assigned=[(TOPIC, 0)],
        known=[(TOPIC, 0)],
    )


def finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=4))
def test_hostile_mixes_are_accounted_for_once_and_publish_only_valid_events(
    batches: list[list[bytes]],
) -> None:
    nodes = [WindowNode(j, REDUCER, PIPELINE, now=NOW) for j in range(NODES)]
    kafka = KafkaSettings(topic_prefix="f", extra_config={"message.max.bytes": str(LIMIT)})
    planner = TickPlanner(kafka, PIPELINE, REDUCER)
    for sequence, values in enumerate(batches, start=1):
        accounted = 0
        for j, positions in enumerate(route_messages(values, NODES)):
            part = [values[p] for p in positions]
            applied = nodes[j].apply(batch_for(part, sequence), NOW)
            seen = [p for p, _c, _r in applied.rejects] + [p for p, _r in applied.late]
            assert len(seen) == len(set(seen)), "a message reported twice"
            assert all(0 <= p < len(part) for p in seen)
            accounted += len(seen) + applied.duplicates + applied.applied
        assert accounted == len(values)

        full = planner.begin()
        horizon = planner.absorb([node.collect(NOW, full) for node in nodes], full)
        publications = planner.plan(horizon)
        for publication in publications:
            key, record = publication.record()
            assert len(record) <= LIMIT, len(record)
            payload = json.loads(record)["target_event_payload"]
            assert finite(payload)
            event = ModelEventMetricsRecorded.model_validate(payload)
            assert event.window_id == key.decode()
        planner.commit(publications, horizon)
        for node in nodes:
            node.snapshot()  # a checkpoint of whatever got in never raises
    assert planner.stats().windows_set_aside == 0
    STATS["applied"] += sum(node.events_applied for node in nodes)
    STATS["published"] += planner.stats().intents_published


STATS = {"applied": 0, "published": 0}


def test_the_fuzz_exercised_the_pipeline() -> None:
    """Runs after the fuzz (file order): it applied and published, so it was not vacuous."""
    assert STATS["applied"] > 100 and STATS["published"] > 10, STATS

"""The published JSON Schema, checked with the jsonschema library (not our models): it accepts
the simulator's events and refuses the documented bad ones; the output schema accepts what the
coordinator publishes."""

from __future__ import annotations

import json

import jsonschema
import pytest

from cli.main import main
from cli.simulator import fleet_json_lines
from models.bounds import EventBounds
from models.metrics import EnumMetricsWindow
from models.schema import input_schema, output_schema
from models.settings import KafkaSettings, PipelineSettings
from reducer import AggregationState
from reducer.nodes.coordinator import build_intent
from reducer.publication import WindowUpdate
from tests.datasets import completed_dict, failed_dict, mixed_events, stage_dict, started_dict

VALIDATOR = jsonschema.Draft202012Validator(input_schema())


def test_every_simulated_event_is_valid() -> None:
    events = [json.loads(line) for line in fleet_json_lines(50, seed=4)]
    assert {e["event_type"] for e in events} == {
        "CODEGEN_STARTED",
        "CODEGEN_STAGE_COMPLETED",
        "CODEGEN_COMPLETED",
        "CODEGEN_FAILED",
    }
    for event in events:
        VALIDATOR.validate(event)


BAD = [
    pytest.param(completed_dict(total_tokens=2**53 + 1), id="tokens>2**53"),
    pytest.param(completed_dict(total_cost_usd=1e308), id="cost"),
    pytest.param(completed_dict(quality_score=1.5), id="quality>1"),
    pytest.param(completed_dict(complexity_score=-1e13), id="complexity"),
    pytest.param(stage_dict(duration_seconds=604_801), id="stage-duration"),
    pytest.param(stage_dict(stage_number=9), id="stage-number"),
    pytest.param(failed_dict(partial_duration_seconds=-1), id="negative"),
    pytest.param(failed_dict(timestamp="0001-01-01T00:30:00+01:00"), id="year-1"),
    pytest.param(failed_dict(timestamp="1999-12-31T23:59:59Z"), id="1999"),
    pytest.param({**started_dict(), "event_type": "CODEGEN_EXPLODED"}, id="unknown-type"),
    pytest.param({k: v for k, v in completed_dict().items() if k != "node_module"}, id="missing"),
]


@pytest.mark.parametrize("event", BAD)
def test_documented_bad_events_are_invalid(event: dict) -> None:
    assert not VALIDATOR.is_valid(event)


def test_the_configured_bounds_are_in_the_schema() -> None:
    strict = jsonschema.Draft202012Validator(input_schema(EventBounds(max_cost_usd=1.0)))
    assert not strict.is_valid(completed_dict(total_cost_usd=2.0))
    assert VALIDATOR.is_valid(completed_dict(total_cost_usd=2.0))


def test_a_published_event_is_valid_against_the_output_schema() -> None:
    state = AggregationState().add_batch(mixed_events(500, seed=3))
    metrics = state.to_metrics()
    update = WindowUpdate(
        (EnumMetricsWindow.HOURLY, metrics.window_start),
        "hourly:2026-03-02T10:00:00Z",
        metrics,
        1,
        False,
        state,
    )
    intent = build_intent(update, KafkaSettings(), PipelineSettings(), None, 900_000)
    jsonschema.Draft202012Validator(output_schema()).validate(intent.target_event_payload)


@pytest.mark.parametrize("which", ["input", "output"])
def test_the_schema_command_prints_the_schema(which: str, capsys) -> None:
    assert main(["schema", which]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == (input_schema() if which == "input" else output_schema())
    jsonschema.Draft202012Validator.check_schema(printed)

"""`codegen-metrics simulate`: a realistic, deterministic synthetic fleet."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from cli.main import main
from cli.simulator import MODELS, NODE_TYPES, fleet_json_lines, simulate_fleet
from models import decode_batch
from models.events import DEFAULT_PIPELINE_STAGES
from reducer import MetricsAggregator


@pytest.fixture(scope="module")
def fleet() -> list[dict]:
    return list(simulate_fleet(1000, seed=42))


def test_simulate_writes_n_workflows_as_json_lines(tmp_path: Path, capsys) -> None:
    out = tmp_path / "fleet.jsonl"

    code = main(["simulate", "--out", str(out), "--workflows", "50", "--seed", "7"])

    lines = out.read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    assert code == 0
    assert sum(e["event_type"] == "CODEGEN_STARTED" for e in events) == 50
    assert len({e["workflow_id"] for e in events}) == 50
    assert f"wrote {len(lines)} events of 50 workflows" in capsys.readouterr().err


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"

    main(["simulate", "--out", str(first), "--workflows", "30", "--seed", "7"])
    main(["simulate", "--out", str(second), "--workflows", "30", "--seed", "7"])
    main(["simulate", "--out", str(other), "--workflows", "30", "--seed", "8"])

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_a_gz_output_is_compressed(tmp_path: Path) -> None:
    out = tmp_path / "fleet.jsonl.gz"

    assert main(["simulate", "--out", str(out), "--workflows", "5", "--seed", "1"]) == 0

    assert gzip.decompress(out.read_bytes()) == b"".join(
        line + b"\n" for line in fleet_json_lines(5, 1)
    )


def test_an_unwritable_output_exits_2(tmp_path: Path, capsys) -> None:
    code = main(["simulate", "--out", str(tmp_path / "missing" / "x.jsonl"), "--workflows", "1"])

    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_every_simulated_event_is_valid(fleet: list[dict]) -> None:
    decoded = decode_batch([json.dumps(e).encode() for e in fleet])

    assert decoded.rejects == []
    assert len(decoded.events) == len(fleet)


def test_about_ten_percent_of_workflows_fail(fleet: list[dict]) -> None:
    outcomes = Counter(
        e["event_type"] for e in fleet if e["event_type"] in ("CODEGEN_COMPLETED", "CODEGEN_FAILED")
    )

    assert outcomes["CODEGEN_COMPLETED"] + outcomes["CODEGEN_FAILED"] == 1000
    assert 0.06 <= outcomes["CODEGEN_FAILED"] / 1000 <= 0.14


def test_the_fleet_uses_several_models_and_node_types(fleet: list[dict]) -> None:
    completions = [e for e in fleet if e["event_type"] == "CODEGEN_COMPLETED"]

    assert {e["primary_model"] for e in completions} == set(MODELS)
    assert {e["node_type"] for e in completions} == set(NODE_TYPES)
    assert len(MODELS) >= 3
    assert len(NODE_TYPES) >= 3


def test_each_workflow_runs_its_stages_in_order_and_ends_once(fleet: list[dict]) -> None:
    by_workflow: dict[str, list[dict]] = {}
    for event in fleet:
        by_workflow.setdefault(event["workflow_id"], []).append(event)

    for events in by_workflow.values():
        kinds = [e["event_type"] for e in events]
        assert kinds[0] == "CODEGEN_STARTED"
        assert kinds[-1] in ("CODEGEN_COMPLETED", "CODEGEN_FAILED")
        stages = [e for e in events if e["event_type"] == "CODEGEN_STAGE_COMPLETED"]
        assert [s["stage_number"] for s in stages] == list(range(1, len(stages) + 1))
        assert [s["stage_name"] for s in stages] == list(DEFAULT_PIPELINE_STAGES[: len(stages)])
        if kinds[-1] == "CODEGEN_COMPLETED":
            assert len(stages) == 8
            assert all(s["success"] for s in stages)
        else:
            assert stages[-1]["success"] is False
            assert events[-1]["failed_stage"] == stages[-1]["stage_name"]
        timestamps = [e["timestamp"] for e in events]
        assert timestamps == sorted(timestamps)


def test_cost_follows_tokens_at_each_model_price(fleet: list[dict]) -> None:
    for event in fleet:
        if event["event_type"] == "CODEGEN_COMPLETED":
            price = MODELS[event["primary_model"]][0]
            assert event["total_cost_usd"] == round(event["total_tokens"] / 1000 * price, 6)


def test_durations_are_positive_and_spread_like_a_lognormal(fleet: list[dict]) -> None:
    durations = [
        e["total_duration_seconds"] for e in fleet if e["event_type"] == "CODEGEN_COMPLETED"
    ]
    result = MetricsAggregator.aggregate_events(
        decode_batch([json.dumps(e).encode() for e in fleet]).events
    )

    assert min(durations) > 0
    assert result.p99_duration_seconds > result.p50_duration_seconds > 0
    assert result.success_rate == pytest.approx(0.9, abs=0.04)
    assert result.workflow_ids_tracked == 1000

"""A real two-node Ray cluster on this machine: placement across nodes, then a node loss.

Depends on the reliability work (checkpoints and Pipeline.supervise): after the second node's
raylet is killed, the pipeline must rebuild on the head from its checkpoint with exact results.

Both nodes stay on loopback: the head on 127.0.0.2, the worker on 127.0.0.3 (Ray would replace a
literal 127.0.0.1 with the machine's external address once multi-node mode is on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.broker import free_port
from actors.ray_env import RAY_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        **RAY_ENVIRONMENT,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # allow a second node
        "PYTHONPATH": str(ROOT),
    }


def _ray_start(*args: str) -> None:
    done = subprocess.run(
        [RAY, "start", *args], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _kill_node(temp_dir: str) -> None:
    # Only this cluster's processes: never `ray stop`, which would kill every Ray on the machine.
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)


@pytest.fixture
def two_node_cluster() -> Iterator[dict[str, str]]:
    port = free_port()
    head_dir = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")
    worker_dir = tempfile.mkdtemp(prefix="raywork", dir="/tmp")
    common = ["--include-dashboard=false", "--disable-usage-stats"]
    try:
        _ray_start(
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            f"--node-ip-address={HEAD_IP}",
            f"--temp-dir={head_dir}",
            *common,
        )
        _ray_start(
            f"--address={HEAD_IP}:{port}",
            "--num-cpus=1",
            f"--node-ip-address={WORKER_IP}",
            f"--temp-dir={worker_dir}",
        )
        yield {"address": f"{HEAD_IP}:{port}", "worker_dir": worker_dir}
    finally:
        _kill_node(worker_dir)
        _kill_node(head_dir)


def test_actors_spread_over_two_nodes_and_survive_losing_one_with_exact_results(
    two_node_cluster: dict[str, str], broker: str
) -> None:
    prefix = f"mn{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.multinode_driver",
            "--address",
            two_node_cluster["address"],
            "--node-ip",
            HEAD_IP,
            "--bootstrap-servers",
            broker,
            "--prefix",
            prefix,
            "--worker-temp-dir",
            two_node_cluster["worker_dir"],
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"driver exit code {run.returncode}\n" + run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert "error" not in result, json.dumps(result, indent=1)
    before, after, head = result["before"], result["after"], result["head"]
    assert before["coordinator"] == head  # pinned to the head node
    spread = {before[name] for name in before if name.startswith(("ingest-", "window-"))}
    assert len(spread) == 2, before  # ingest and window actors on both nodes
    assert result["killed_raylets"] >= 1
    assert any("restored the pipeline from the latest checkpoint" in a for a in result["actions"])
    assert set(after.values()) == {head}  # everything rebuilt on the surviving node
    assert result["missing"] == [] and result["wrong"] == []
    assert result["windows"] > 0

"""`codegen-metrics run` as an operator starts it: its own local Ray and embedded broker, the API
on the port the flag names, registration in Consul (the in-process fake agent: no real agent can
be installed here), and on Ctrl-C or SIGTERM the same clean stop, deregistering first, exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from actors.broker import free_port
from actors.consul import SERVICE_NAME
from tests.fake_consul import FakeConsulAgent

TOKEN = "acl-t0ken"


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.mark.parametrize(
    "stop",
    [
        # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
        pytest.param(lambda child: os.killpg(child.pid, signal.SIGINT), id="ctrl-c"),
        # ray job stop, systemd and Kubernetes send SIGTERM to the process alone.
        pytest.param(lambda child: child.send_signal(signal.SIGTERM), id="sigterm"),
    ],
)
def test_run_serves_on_the_flagged_port_registers_in_consul_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop
) -> None:
    port = free_port()
    with FakeConsulAgent(required_token=TOKEN) as agent:
        env = {**os.environ, "CONSUL_HTTP_ADDR": agent.address, "CONSUL_TOKEN": TOKEN}
        env.pop("RAY_ADDRESS", None)
        command = [sys.executable, "-m", "cli.main", "run", "--demo", "--no-dashboard"]
        child = subprocess.Popen(
            [*command, "--serve-port", str(port), "--duration", "240"],
            cwd=tmp_path,  # its checkpoints land here
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a process group, as a shell makes a foreground job
        )
        try:
            deadline = time.monotonic() + 180
            health = None
            while time.monotonic() < deadline and child.poll() is None:
                health = _health(port)
                if health and health["events_in"] > 0:
                    break
                time.sleep(1)
            assert health is not None and health["events_in"] > 0, health
            assert health["node_type"] == "REDUCER"
            assert agent.wait_for(lambda: len(agent.services) == 1, timeout=30)
            (service,) = agent.services.values()
            assert service["Service"] == SERVICE_NAME
            assert (service["Address"], service["Port"]) == ("127.0.0.1", port)

            stop(child)
            out, _ = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.communicate()
        assert child.returncode == 0, out[-3000:]
        assert "stopping: draining" in out and "stopped cleanly" in out, out[-3000:]
        assert "SIGTERM received" not in out  # Ray's handler, with its C++ stack dump
        assert agent.services == {}
        assert agent.requests_to("PUT", "/v1/agent/service/deregister/")
        assert [(r.method, r.path) for r in agent.requests if r.token() != TOKEN] == []
    assert _health(port) is None  # the API went down with it

"""Registration round trip against a real Consul agent when CONSUL_HTTP_ADDR is set.

No agent can be installed on the build machine, so without CONSUL_HTTP_ADDR the same test runs
against the in-process fake agent instead of being skipped; the test id says which one ran
(``[real-agent]`` or ``[fake-agent]``). The token, if the agent needs one, comes from
CONSUL_TOKEN / CONSUL_HTTP_TOKEN.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import consul
import pytest

from actors.consul import SERVICE_NAME, ConsulRegistrar
from models.settings import ConsulSettings, ServeSettings
from tests.fake_consul import FakeConsulAgent

AGENT = "real-agent" if os.environ.get("CONSUL_HTTP_ADDR") else "fake-agent"


@pytest.fixture(params=[AGENT])
def consul_settings(request: pytest.FixtureRequest) -> Iterator[ConsulSettings]:
    fast = {"retry_initial_seconds": 0.1, "retry_max_seconds": 1.0, "resync_seconds": 0.2}
    if request.param == "real-agent":
        yield ConsulSettings(**{**ConsulSettings.env_values(os.environ), **fast})
        return
    with FakeConsulAgent() as agent:
        yield ConsulSettings(host=agent.host, port=agent.port, **fast)


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_reducer_registers_is_discoverable_and_deregisters_on_stop(
    consul_settings: ConsulSettings,
) -> None:
    node_id = uuid.uuid4().hex[:12]
    service_id = f"{SERVICE_NAME}-{node_id}"
    s = consul_settings
    client = consul.Consul(host=s.host, port=s.port, scheme=s.scheme, verify=s.ca_file or True)
    client.token = s.token.get_secret_value() if s.token else None
    registrar = ConsulRegistrar.from_settings(
        s, ServeSettings(port=8063), node_id=node_id, version="9.9.9", window_type="hourly"
    ).start()
    try:
        assert client.status.leader(), "the agent has no cluster leader"
        assert _wait(lambda: service_id in client.agent.services()), registrar.status()

        service = client.agent.services()[service_id]
        checks = client.agent.checks()
        _, nodes = client.health.service(SERVICE_NAME)

        assert service["Service"] == SERVICE_NAME
        assert (service["Address"], service["Port"]) == ("127.0.0.1", 8063)
        assert "window_type:hourly" in service["Tags"]
        assert service["Meta"] == {"version": "9.9.9", "node_id": node_id, "window_type": "hourly"}
        assert checks[f"service:{service_id}"]["ServiceID"] == service_id
        assert service_id in [n["Service"]["ID"] for n in nodes]
    finally:
        registrar.stop()

    assert service_id not in client.agent.services()

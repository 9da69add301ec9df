"""ConsulRegistrar against the in-process fake agent: exact requests, retries, re-registration,
deregistration, and silence when no address is configured."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors.broker import free_port
from actors.consul import SERVICE_NAME, ConsulRegistrar
from models.settings import ConsulSettings, ServeSettings
from tests.fake_consul import FakeConsulAgent

TOKEN = "s3cret-acl-token"
NODE_ID = "node-7"
SERVICE_ID = f"{SERVICE_NAME}-{NODE_ID}"
FAST = {
    "retry_initial_seconds": 0.02,
    "retry_max_seconds": 0.08,
    "resync_seconds": 0.02,
    "request_timeout_seconds": 3.0,
}


@pytest.fixture
def agent() -> Iterator[FakeConsulAgent]:
    with FakeConsulAgent(required_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def running(agent: FakeConsulAgent) -> Iterator[ConsulRegistrar]:
    registrar = make_registrar(agent).start()
    try:
        yield registrar
    finally:
        registrar.stop()


def make_registrar(agent: FakeConsulAgent, **overrides: Any) -> ConsulRegistrar:
    settings = ConsulSettings(
        host=agent.host, port=agent.port, token=TOKEN, **{**FAST, **overrides}
    )
    return ConsulRegistrar.from_settings(
        settings,
        ServeSettings(host="127.0.0.1", port=8063),
        node_id=NODE_ID,
        version="1.2.3",
        window_type="hourly",
    )


def registered(registrar: ConsulRegistrar) -> bool:
    return bool(registrar.status()["registered"])


def test_registration_sends_exactly_the_payload_py_consul_builds(
    agent: FakeConsulAgent, running: ConsulRegistrar
) -> None:
    assert agent.wait_for(lambda: registered(running))
    [request] = agent.requests_to("PUT", "/v1/agent/service/register")

    # py-consul lowercases every key except the check's DeregisterCriticalServiceAfter.
    assert request.body == {
        "name": "codegen-metrics-reducer",
        "id": "codegen-metrics-reducer-node-7",
        "address": "127.0.0.1",
        "port": 8063,
        "tags": [
            "onex",
            "bridge",
            "codegen-metrics-reducer",
            "version:1.2.3",
            "node_type:reducer",
            "window_type:hourly",
        ],
        "meta": {"version": "1.2.3", "node_id": "node-7", "window_type": "hourly"},
        "checks": [
            {
                "http": "http://127.0.0.1:8063/health",
                "interval": "30s",
                "timeout": "5s",
                "DeregisterCriticalServiceAfter": "5m",
            }
        ],
    }
    assert request.query == {"replace-existing-checks": "true"}
    assert request.headers["x-consul-token"] == TOKEN
    assert agent.services[SERVICE_ID]["Port"] == 8063


def test_the_agent_names_the_single_check_after_the_service(
    agent: FakeConsulAgent, running: ConsulRegistrar
) -> None:
    import consul

    assert agent.wait_for(lambda: registered(running))
    client = consul.Consul(host=agent.host, port=agent.port, token=TOKEN)

    check = client.agent.checks()[f"service:{SERVICE_ID}"]
    _, nodes = client.health.service(SERVICE_NAME)

    assert check["ServiceID"] == SERVICE_ID
    assert check["Definition"]["DeregisterCriticalServiceAfter"] == "5m"
    assert [n["Service"]["ID"] for n in nodes] == [SERVICE_ID]


def test_deregister_critical_after_is_configurable(agent: FakeConsulAgent) -> None:
    registrar = make_registrar(agent, deregister_critical_after="90s").start()
    try:
        assert agent.wait_for(lambda: registered(registrar))
    finally:
        registrar.stop()

    [request] = agent.requests_to("PUT", "/v1/agent/service/register")
    assert request.body["checks"][0]["DeregisterCriticalServiceAfter"] == "90s"


def test_every_request_carries_the_token_and_no_log_line_shows_it(
    agent: FakeConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent.refuse(1)
    registrar = make_registrar(agent).start()
    assert agent.wait_for(lambda: len(agent.requests_to("GET", "/v1/agent/services")) >= 2)
    registrar.stop()

    methods = {(r.method, r.path) for r in agent.requests}
    assert ("PUT", f"/v1/agent/service/deregister/{SERVICE_ID}") in methods
    assert all(r.token() == TOKEN for r in agent.requests)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(registrar.settings)
    assert TOKEN not in str(registrar.status())


@pytest.mark.parametrize("mode", ["500", "close"])
def test_registration_retries_until_the_refusing_agent_accepts(
    agent: FakeConsulAgent, mode: str
) -> None:
    agent.refuse(3, mode)  # type: ignore[arg-type]
    registrar = make_registrar(agent).start()
    try:
        assert agent.wait_for(lambda: registered(registrar))
        status = registrar.status()
    finally:
        registrar.stop()

    assert status["attempts"] == 4
    assert status["last_error"] is None
    assert [r.refused for r in agent.requests[:4]] == [True, True, True, False]


def test_retry_waits_double_up_to_the_cap(
    agent: FakeConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actors.consul")
    agent.refuse(4)
    registrar = make_registrar(agent).start()
    try:
        assert agent.wait_for(lambda: registered(registrar))
    finally:
        registrar.stop()

    waits = [r.args[-1] for r in caplog.records if "retry in" in r.getMessage()]  # type: ignore[index]
    assert waits == [0.02, 0.04, 0.08, 0.08]


def test_start_returns_at_once_and_reports_the_error_when_no_agent_listens() -> None:
    settings = ConsulSettings(host="127.0.0.1", port=free_port(), **FAST)
    registrar = ConsulRegistrar(
        settings, node_id=NODE_ID, address="127.0.0.1", port=8063, version="1", window_type="daily"
    )

    began = time.monotonic()
    registrar.start()
    started_in = time.monotonic() - began
    deadline = time.monotonic() + 5
    while registrar.status()["attempts"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    status = registrar.status()
    began = time.monotonic()
    registrar.stop()

    assert started_in < 0.1
    assert time.monotonic() - began < settings.request_timeout_seconds * 2 + 1
    assert status["enabled"] is True
    assert status["registered"] is False
    assert status["attempts"] >= 3
    assert "ConnectionError" in status["last_error"]


def test_a_restarted_agent_that_forgot_the_service_gets_it_again(
    agent: FakeConsulAgent, running: ConsulRegistrar
) -> None:
    assert agent.wait_for(lambda: SERVICE_ID in agent.services)

    agent.restart()

    assert agent.wait_for(lambda: SERVICE_ID in agent.services)
    assert agent.wait_for(lambda: registered(running))  # the reply lands after the agent's write
    registers = agent.requests_to("PUT", "/v1/agent/service/register")
    assert len(registers) == 2
    assert registers[0].body == registers[1].body


def test_an_agent_that_still_has_the_service_is_only_asked_not_written_to(
    agent: FakeConsulAgent, running: ConsulRegistrar
) -> None:
    assert agent.wait_for(lambda: len(agent.requests_to("GET", "/v1/agent/services")) >= 5)

    assert len(agent.requests_to("PUT", "/v1/agent/service/register")) == 1


def test_stop_deregisters_and_ends_the_thread(agent: FakeConsulAgent) -> None:
    registrar = make_registrar(agent).start()
    assert agent.wait_for(lambda: registered(registrar))
    thread = registrar._thread

    registrar.stop()
    seen = len(agent.requests)
    time.sleep(0.1)

    assert agent.services == {}
    assert agent.requests[-1].method == "PUT"
    assert agent.requests[-1].path == f"/v1/agent/service/deregister/{SERVICE_ID}"
    assert thread is not None and not thread.is_alive()
    assert len(agent.requests) == seen
    assert registrar.status()["registered"] is False


def test_without_an_address_consul_is_off_silent_on_the_wire_and_says_so_once(
    agent: FakeConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actors.consul")
    settings = ConsulSettings(port=agent.port, token=TOKEN, **FAST)  # a port but no host
    registrar = ConsulRegistrar.from_settings(
        settings, ServeSettings(), node_id=NODE_ID, version="1", window_type="hourly"
    )

    registrar.start()
    registrar.start()
    time.sleep(0.1)
    registrar.stop()

    assert agent.requests == []
    assert [r.getMessage() for r in caplog.records] == [
        "Consul registration off (no CONSUL_HTTP_ADDR/CONSUL_HOST)"
    ]
    assert registrar.status() == {
        "enabled": False,
        "registered": False,
        "service_id": SERVICE_ID,
        "attempts": 0,
        "last_error": None,
    }


def test_a_bind_all_serve_host_is_advertised_as_a_reachable_address() -> None:
    settings = ConsulSettings(host="consul.invalid")
    wildcard = ConsulRegistrar.from_settings(
        settings, ServeSettings(host="0.0.0.0"), node_id="n", version="1", window_type="hourly"
    )
    chosen = ConsulRegistrar.from_settings(
        settings.model_copy(update={"service_address": "10.1.2.3"}),
        ServeSettings(host="0.0.0.0", port=8063),
        node_id="n",
        version="1",
        window_type="hourly",
        port=43210,
    )

    assert wildcard.address not in ("0.0.0.0", "")
    assert (chosen.address, chosen.port) == ("10.1.2.3", 43210)
    assert chosen.registration()["check"]["http"] == "http://10.1.2.3:43210/health"

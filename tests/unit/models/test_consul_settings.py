"""ConsulSettings: the standard CONSUL_* variables, their precedence, and validation."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from models import ConsulSettings, Settings


@pytest.fixture(autouse=True)
def clean_consul_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("CONSUL_", "CODEGEN_METRICS_CONSUL__")):
            monkeypatch.delenv(name)
    yield


def test_consul_is_off_by_default_with_the_issue_defaults() -> None:
    consul = Settings().consul

    assert consul.enabled is False
    assert (consul.check_interval, consul.check_timeout) == ("30s", "5s")
    assert consul.deregister_critical_after == "5m"
    assert consul.token is None


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("10.0.0.5:8501", ("http", "10.0.0.5", 8501)),
        ("consul.local", ("http", "consul.local", 8500)),
        ("http://consul.local:9500", ("http", "consul.local", 9500)),
        ("https://consul.example", ("https", "consul.example", 443)),
        ("https://consul.example:8501", ("https", "consul.example", 8501)),
    ],
)
def test_consul_http_addr_is_parsed_like_the_consul_cli(
    monkeypatch: pytest.MonkeyPatch, addr: str, expected: tuple[str, str, int]
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", addr)

    consul = Settings().consul

    assert (consul.scheme, consul.host, consul.port) == expected
    assert consul.enabled is True


def test_consul_host_and_port_are_used_when_consul_http_addr_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HOST", "agent.local")
    monkeypatch.setenv("CONSUL_PORT", "18500")

    consul = Settings().consul

    assert (consul.host, consul.port, consul.address) == (
        "agent.local",
        18500,
        "http://agent.local:18500",
    )


def test_consul_http_addr_wins_over_consul_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HOST", "ignored")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "chosen:8500")

    assert Settings().consul.host == "chosen"


def test_consul_http_ssl_selects_https_when_the_address_has_no_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "agent:8501")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")

    assert Settings().consul.scheme == "https"


@pytest.mark.parametrize("name", ["CONSUL_TOKEN", "CONSUL_HTTP_TOKEN"])
def test_the_acl_token_comes_from_either_standard_name_and_stays_obscured(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "tok-123")

    settings = Settings()

    assert settings.consul.token is not None
    assert settings.consul.token.get_secret_value() == "tok-123"
    assert "tok-123" not in repr(settings)


def test_prefixed_variables_override_the_standard_ones_field_by_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "agent:8500")
    monkeypatch.setenv("CONSUL_TOKEN", "standard")
    monkeypatch.setenv("CODEGEN_METRICS_CONSUL__PORT", "9500")
    monkeypatch.setenv("CODEGEN_METRICS_CONSUL__DEREGISTER_CRITICAL_AFTER", "2m")

    consul = Settings().consul

    assert (consul.host, consul.port, consul.deregister_critical_after) == ("agent", 9500, "2m")
    assert consul.token is not None and consul.token.get_secret_value() == "standard"


def test_init_values_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "agent:8500")

    assert Settings(consul={"host": "flag"}).consul.host == "flag"


def test_from_env_reads_a_given_mapping_not_the_process_environment() -> None:
    consul = ConsulSettings.from_env({"CONSUL_HOST": "h", "CONSUL_PORT": "", "OTHER": "x"})

    assert (consul.host, consul.port) == ("h", 8500)
    assert ConsulSettings.from_env({}).enabled is False


@pytest.mark.parametrize("addr", ["unix:///var/run/consul.sock", "http://:8500", "host:notaport"])
def test_an_unusable_consul_http_addr_is_a_clear_configuration_error(addr: str) -> None:
    with pytest.raises(ValueError, match="CONSUL_HTTP_ADDR"):
        ConsulSettings.from_env({"CONSUL_HTTP_ADDR": addr})


@pytest.mark.parametrize("field", ["check_interval", "check_timeout", "deregister_critical_after"])
def test_durations_must_be_go_durations(field: str) -> None:
    assert ConsulSettings(**{field: "1h30m"})
    with pytest.raises(ValidationError):
        ConsulSettings(**{field: "30 seconds"})


def test_the_retry_cap_may_not_be_below_the_first_wait() -> None:
    with pytest.raises(ValidationError):
        ConsulSettings(retry_initial_seconds=5, retry_max_seconds=1)

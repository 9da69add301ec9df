"""`codegen-metrics run` flags: every setting reachable, defaults and variables in --help, bad
items refused, secrets never echoed."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from cli.flags import FlagError, describe_invalid, secret_variables, settings_flags
from cli.main import build_parser, main
from cli.run import ProgressLine, settings_from_args
from models.settings import KafkaSettings, Settings
from reducer.nodes.stats import PipelineStats


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_every_setting_is_a_flag_or_a_named_secret_variable() -> None:
    flagged = {(f.section, f.field) for f in settings_flags()}
    secrets = set(secret_variables())
    for section, info in Settings.model_fields.items():
        for field in info.annotation.model_fields:
            variable = f"CODEGEN_METRICS_{section.upper()}__{field.upper()}"
            assert (section, field) in flagged or variable in secrets, variable
    assert "CODEGEN_METRICS_KAFKA__SASL_PASSWORD" in secrets
    assert len(flagged) + len(secrets) == sum(
        len(info.annotation.model_fields) for info in Settings.model_fields.values()
    )


def test_help_shows_each_flags_default_and_variable(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse would break long variable names
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in settings_flags():
        assert flag.flag in text
        assert flag.env in text, flag.env
    assert "--max-cost-usd FLOAT A generation costing more is" in text
    assert "(default: 10000.0) [env: CODEGEN_METRICS_PIPELINE__MAX_COST_USD]" in text
    assert "CODEGEN_METRICS_SERVE__TOKEN" in text  # secrets: named, with no flag


def test_flags_reach_every_section() -> None:
    settings = settings_from_args(
        parse(
            "--group-id", "team a",
            "--reset-state",
            "--route-prefix", "/team-a",
            "--serve-port", "9000",
            "--no-serve",
            "--windows", "hourly, daily",
            "--kafka-config", "client.rack=a",
            "--kafka-config", "linger.ms=5",
            "--reducer-cost-bucket-edges", "0.1,1,10",
            "--consul-host", "consul.local",
            "--log-level", "DEBUG",
            "--log-format", "json",
            "--max-cost-usd", "50",
        )
    )  # fmt: skip
    assert settings.kafka.group_id == "team a" and settings.instance == "team-a"
    assert settings.pipeline.reset_state and settings.pipeline.max_cost_usd == 50
    assert settings.serve.route_prefix == "/team-a" and settings.serve.port == 9000
    assert not settings.serve.enabled
    assert [w.value for w in settings.pipeline.windows] == ["hourly", "daily"]
    assert settings.kafka.extra_config == {"client.rack": "a", "linger.ms": "5"}
    assert settings.reducer.cost_bucket_edges == (0.1, 1.0, 10.0)
    assert settings.consul.host == "consul.local"
    assert (settings.log.level, settings.log.format) == ("DEBUG", "json")


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEGEN_METRICS_PIPELINE__BATCH_SIZE", "500")
    monkeypatch.setenv("CODEGEN_METRICS_PIPELINE__TICK_SECONDS", "9")
    settings = settings_from_args(parse("--batch-size", "700"))
    assert (settings.pipeline.batch_size, settings.pipeline.tick_seconds) == (700, 9.0)


@pytest.mark.parametrize("item", ["client.rack", "=value", "  =x"])
def test_a_malformed_kafka_config_item_is_an_error_not_dropped(item: str, capsys) -> None:
    with pytest.raises(FlagError, match="KEY=VALUE"):
        settings_from_args(parse("--kafka-config", item))
    assert main(["run", "--kafka-config", item]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_a_mistyped_secret_variable_is_named_but_its_value_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CODEGEN_METRICS_KAFKA__SASL_PASSWD", "hunter2-secret")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "hunter2" in str(caught.value)  # pydantic's own message echoes it ...
    assert "hunter2" not in describe_invalid(caught.value)  # ... ours does not
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "kafka.sasl_passwd" in err and "hunter2" not in err


def test_secret_kafka_properties_are_redacted_in_repr_and_errors() -> None:
    kafka = KafkaSettings(
        extra_config={"sasl.password": "hunter2", "ssl.key.pem": "PEM-x", "client.rack": "r1"}
    )
    shown = repr(Settings(kafka=kafka)) + str(kafka)
    assert "hunter2" not in shown and "PEM-x" not in shown and "r1" in shown
    assert kafka.client_config()["sasl.password"] == "hunter2"  # the client still gets it


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("codegen-metrics ")


def test_the_progress_line_is_rendered_every_time_on_a_terminal_else_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("cli.run.time.monotonic", lambda: clock[0])
    terminal, log = ProgressLine(interactive=True), ProgressLine(interactive=False)
    stats = PipelineStats([], [], None, None)
    due = []
    for _ in range(40):  # 80 s of 2 s polls
        due.append((terminal.due(), log.due()))
        for line in (terminal, log):
            if line.due():
                line.render(stats)
        clock[0] += 2.0
    assert sum(t for t, _ in due) == 40
    assert sum(g for _, g in due) == 2  # at 0 s and 60 s

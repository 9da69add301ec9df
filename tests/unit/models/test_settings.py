"""Settings: reducer bounds and bucket edges, and the environment at the edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from models import KafkaSettings, ReducerSettings, Settings
from models.settings import PipelineSettings, instance_name


def test_reducer_defaults_follow_the_issue() -> None:
    settings = ReducerSettings()

    assert settings.exact_percentile_cap == 10_000
    assert settings.sketch_relative_accuracy == 0.01
    assert settings.max_keys_per_breakdown == 1000
    assert settings.max_key_length == 256
    assert settings.quality_bucket_edges == (0.6, 0.8)
    assert settings.cost_bucket_edges == (0.01, 0.05, 0.10, 0.50, 1.00)


@pytest.mark.parametrize(
    "edges", [(), (0.5, 0.5), (1.0, 0.5), (0.01, 0.1, 0.05)], ids=["empty", "equal", "desc", "mix"]
)
def test_cost_bucket_edges_must_be_non_empty_and_strictly_ascending(edges: tuple) -> None:
    with pytest.raises(ValidationError):
        ReducerSettings(cost_bucket_edges=edges)


def test_quality_bucket_edges_must_ascend() -> None:
    with pytest.raises(ValidationError):
        ReducerSettings(quality_bucket_edges=(0.8, 0.6))


def test_sketch_accuracy_may_not_be_looser_than_one_percent() -> None:
    with pytest.raises(ValidationError):
        ReducerSettings(sketch_relative_accuracy=0.02)


def test_reducer_settings_are_frozen_and_reject_unknown_knobs() -> None:
    settings = ReducerSettings()
    with pytest.raises(ValidationError):
        settings.max_workflows = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ReducerSettings(exact_cap=5)


def test_settings_read_nested_values_from_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEGEN_METRICS_REDUCER__EXACT_PERCENTILE_CAP", "123")
    monkeypatch.setenv("CODEGEN_METRICS_KAFKA__TOPIC_PREFIX", "prod")

    settings = Settings()

    assert settings.reducer.exact_percentile_cap == 123
    assert settings.kafka.topic_prefix == "prod"


def test_topic_names_carry_the_environment_prefix() -> None:
    kafka = KafkaSettings(topic_prefix="dev")

    assert kafka.input_topics == [
        "dev.codegen.started.v1",
        "dev.codegen.stage_completed.v1",
        "dev.codegen.completed.v1",
        "dev.codegen.failed.v1",
    ]
    assert kafka.intent_topic == "dev.coordination.event_publish_intent.v1"
    assert kafka.target_topic == "dev.codegen.metrics_recorded.v1"


def test_secrets_are_obscured_when_printed_and_revealed_only_in_the_client_config() -> None:
    kafka = KafkaSettings(bootstrap_servers="b:9092", sasl_password="hunter2")

    assert "hunter2" not in repr(kafka)
    assert kafka.client_config()["sasl.password"] == "hunter2"


def test_the_api_binds_to_localhost_8063_by_default_and_needs_a_fixed_port() -> None:
    from models.settings import ServeSettings

    assert (ServeSettings().host, ServeSettings().port) == ("127.0.0.1", 8063)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ServeSettings(port=0)  # Consul would be told port 0


def test_checkpoints_default_to_a_stable_folder_per_instance_outside_the_working_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    settings = Settings(kafka={"group_id": "Team B / metrics"})
    assert settings.instance == "team-b-metrics"
    assert settings.checkpoint_location == f"{tmp_path}/state/codegen-metrics/team-b-metrics"
    monkeypatch.delenv("XDG_STATE_HOME")
    home = Settings(pipeline={"instance": "blue"})
    assert home.checkpoint_location.endswith("/.local/state/codegen-metrics/blue")
    assert not home.checkpoint_location.startswith(str(tmp_path))


def test_a_storage_uri_keeps_its_scheme_and_the_instance_is_appended() -> None:
    settings = Settings(pipeline={"storage_path": "s3://bucket/ckpt/", "instance": "prod-a"})
    assert settings.checkpoint_location == "s3://bucket/ckpt/prod-a"


def test_an_instance_name_must_be_safe_for_ray_consul_and_paths() -> None:
    for bad in ("Prod", "a/b", "-x", "x" * 64):
        with pytest.raises(ValidationError):
            PipelineSettings(instance=bad)
    assert instance_name("///") == "default"

"""cluster.yaml, the `ray up` config, checked offline against Ray's own rules.

`ray up` has no dry run. Before it contacts any host it runs
``ray.autoscaler._private.commands._bootstrap_config``: ``prepare_config`` (merges the provider's
defaults.yaml; for the local provider it also builds the single ``local.cluster.node`` type from
head_ip and worker_ips), ``validate_config`` (jsonschema against ray/autoscaler/ray-schema.json,
then cross-field checks) and the provider's ``bootstrap_config`` (a no-op for the local
provider). For the local provider every one of those steps is pure: no SSH, no network, no Ray
runtime, and with ``no_config_cache=True`` no cache file either. So these tests run the very same
steps; anything that fails here would fail `ray up` before it touched a machine.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
AWS_BLOCK = re.compile(
    r"^# --- aws example begin ---\n(.*?)^# --- aws example end ---", re.S | re.M
)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture
def config() -> dict[str, Any]:
    """A fresh parse per test, so a test that breaks its copy cannot leak into another."""
    loaded = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(loaded, dict)
    return loaded


def pins(config: dict[str, Any]) -> dict[str, Requirement]:
    """Every ``name==version`` argument in the setup commands, by canonical name."""
    found: dict[str, Requirement] = {}
    for command in config["setup_commands"]:
        for token in shlex.split(command):
            if "==" in token and not token.startswith("-"):
                requirement = Requirement(token)
                found[canonicalize_name(requirement.name)] = requirement
    return found


def pinned_version(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", requirement
    return spec.version


# -- the file as written is valid ------------------------------------------------------------


def test_cluster_yaml_matches_rays_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.validate(config, schema)


def test_cluster_yaml_passes_ray_prepare_and_validate(config: dict[str, Any]) -> None:
    validate_config(config)  # the file as written
    prepared = prepare_config(config)
    validate_config(prepared)  # what `ray up` validates and uploads to the head

    # The local provider turned head_ip/worker_ips into its single node type.
    (node_type,) = prepared["available_node_types"]
    assert prepared["head_node_type"] == node_type
    limits = prepared["available_node_types"][node_type]
    assert limits["min_workers"] == limits["max_workers"] == len(config["provider"]["worker_ips"])
    assert prepared["max_workers"] == config["max_workers"]
    # The shared setup commands reach both the head and the workers.
    assert (
        prepared["head_setup_commands"][: len(config["setup_commands"])]
        == (config["setup_commands"])
    )
    assert (
        prepared["worker_setup_commands"][: len(config["setup_commands"])]
        == (config["setup_commands"])
    )
    # The head's autoscaler prepares the uploaded config again; that must be a no-op.
    assert prepare_config(prepared) == prepared


def test_cluster_yaml_passes_the_offline_part_of_ray_up(config: dict[str, Any]) -> None:
    resolved = _bootstrap_config(config, no_config_cache=True)

    validate_config(resolved)
    assert resolved["provider"]["type"] == "local"
    assert resolved["head_node_type"] in resolved["available_node_types"]


def test_placeholder_addresses_are_distinct_ip_addresses(config: dict[str, Any]) -> None:
    provider = config["provider"]
    addresses = [provider["head_ip"], *provider["worker_ips"]]

    for address in addresses:
        ipaddress.ip_address(address)
    assert len(set(addresses)) == len(addresses)
    assert config["max_workers"] <= len(provider["worker_ips"])


def test_aws_example_in_the_comments_is_a_valid_config(
    config: dict[str, Any], schema: dict[str, Any]
) -> None:
    match = AWS_BLOCK.search(CLUSTER_YAML.read_text())
    assert match, "the commented AWS example lost its markers"
    lines = match.group(1).splitlines()
    assert all(line.startswith("#") for line in lines)
    snippet = yaml.safe_load("\n".join(line.removeprefix("#").removeprefix(" ") for line in lines))

    config.update(snippet)
    jsonschema.validate(config, schema)
    prepared = prepare_config(config)  # aws defaults merge; no AWS call happens before bootstrap
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    for node_type in prepared["available_node_types"].values():
        assert node_type["max_workers"] <= prepared["max_workers"]


# -- broken copies are rejected --------------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda c: c.update(max_workers="many"), "'many' is not of type 'integer'"),
        (lambda c: c.pop("provider"), "'provider' is a required property"),
        (
            lambda c: c.update(setup_command=c.pop("setup_commands")),
            "'setup_command' was unexpected",
        ),
        (lambda c: c["setup_commands"].append(["pip", "install"]), "is not of type 'string'"),
        (lambda c: c["auth"].update(ssh_key="~/.ssh/id_rsa"), "'ssh_key' was unexpected"),
        (lambda c: c.update(idle_timeout_minutes=-1), "less than the minimum"),
    ],
    ids=[
        "wrong-type",
        "missing-required",
        "misspelled-key",
        "non-string-command",
        "bad-auth",
        "negative-timeout",
    ],
)
def test_broken_copy_is_rejected(
    config: dict[str, Any], schema: dict[str, Any], breakage: Any, message: str
) -> None:
    broken = copy.deepcopy(config)
    breakage(broken)

    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        validate_config(broken)
    # `ray up` stops before contacting any host. Its prepare step runs before the schema check,
    # so some breakages surface there first, as a plain KeyError/TypeError.
    with pytest.raises((jsonschema.ValidationError, KeyError, TypeError)):
        _bootstrap_config(broken, no_config_cache=True)


def test_head_node_type_missing_from_node_types_is_rejected(config: dict[str, Any]) -> None:
    # Cross-field rule that the schema alone cannot express (checked on the AWS-style shape).
    config["provider"] = {"type": "aws", "region": "us-west-2"}
    config["available_node_types"] = {"worker": {"node_config": {}, "resources": {}}}
    config["head_node_type"] = "head"

    with pytest.raises(ValueError, match="must be one of `available_node_types`"):
        validate_config(config)


def test_local_provider_rejects_explicit_node_types(config: dict[str, Any]) -> None:
    # Why cluster.yaml has no available_node_types: the on-prem provider refuses them.
    config["available_node_types"] = {"worker": {"node_config": {}, "resources": {}}}
    config["head_node_type"] = "worker"

    with pytest.raises(click.ClickException, match="not supported for on-premise clusters"):
        prepare_config(config)


def test_local_provider_without_worker_ips_is_rejected(config: dict[str, Any]) -> None:
    del config["provider"]["worker_ips"]

    with pytest.raises(click.ClickException, match="worker_ips"):
        prepare_config(config)


# -- what the nodes run ----------------------------------------------------------------------


def test_setup_commands_pin_ray_to_the_installed_version(config: dict[str, Any]) -> None:
    ray_pin = pins(config).get("ray")

    assert ray_pin is not None, "setup_commands must pin ray"
    assert pinned_version(ray_pin) == ray.__version__, (
        f"cluster.yaml pins ray {pinned_version(ray_pin)} but this venv has {ray.__version__}; "
        "nodes and the machine running `ray up` / `ray job submit` must match"
    )


def test_setup_commands_pin_every_project_dependency(config: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins(config)

    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        assert name in pinned, f"{dependency.name} is not pinned in setup_commands"
        pin = pinned[name]
        assert dependency.specifier.contains(pinned_version(pin), prereleases=True), (
            f"the pin {pin} is outside pyproject's {dependency}"
        )
        assert dependency.extras <= pin.extras, f"the pin {pin} drops extras of {dependency}"


def test_setup_commands_install_this_project_from_its_file_mount(config: dict[str, Any]) -> None:
    (remote, local) = next(iter(config["file_mounts"].items()))
    # `ray up` resolves the local side from where it runs: the repo root.
    shipped = (ROOT / local).resolve()
    assert (shipped / "pyproject.toml").is_file()
    name = tomllib.loads((shipped / "pyproject.toml").read_text())["project"]["name"]
    assert name == "codegen-metrics-reducer"

    commands = [shlex.split(command) for command in config["setup_commands"]]
    installs = [argv for argv in commands if argv[1:3] == ["install", "--quiet"]]
    editable = [argv for argv in installs if "-e" in argv]
    assert len(editable) == 1
    assert editable[0][editable[0].index("-e") + 1] == remote
    # The pinned install runs first and in the same venv, so `-e` finds its pins satisfied.
    pinned_install = next(argv for argv in installs if any("ray[" in arg for arg in argv))
    assert installs.index(pinned_install) < installs.index(editable[0])
    assert pinned_install[0] == editable[0][0]
    venv = str(Path(editable[0][0]).parent.parent)
    assert any(argv[-1] == venv and "venv" in argv for argv in commands), "no venv is created"


def test_start_commands_run_the_dashboard_locally_and_join_the_head(
    config: dict[str, Any],
) -> None:
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])

    assert "ray start --head" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--dashboard-host=127.0.0.1" in head
    assert "--metrics-export-port=" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker
    assert "--port=6379" in head


def test_start_commands_give_every_node_the_pipelines_ray_environment(
    config: dict[str, Any],
) -> None:
    from actors.ray_env import RAY_ENVIRONMENT

    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        exports = {
            word.split("=", 1)[0]: word.split("=", 1)[1].rstrip(";")
            for line in commands
            for word in line.split()
            if "=" in word and word.startswith("RAY_")
        }
        for name, value in RAY_ENVIRONMENT.items():
            if name != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER":  # a local-machine guard only
                assert exports.get(name) == value, name

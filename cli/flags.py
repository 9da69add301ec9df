"""Command-line flags generated from the settings model: every setting is a flag, or (secrets)
an environment variable, and ``--help`` shows each one's default and variable.

A field's flag is ``--<field>`` when the name is unique among the kafka, pipeline and serve
sections (``--group-id``, ``--reset-state``, ``--route-prefix``), else ``--<section>-<field>``
(``--serve-port``, ``--consul-host``, ``--reducer-max-workflows``, ``--log-level``). Lists take
comma-separated values; ``--kafka-config KEY=VALUE`` repeats. Secrets have no flag (a flag shows
up in ``ps``): set them through their environment variable. Flags win over the environment,
which wins over defaults.
"""

from __future__ import annotations

import argparse
import re
import typing
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from models.settings import Settings

ENV_PREFIX = "CODEGEN_METRICS_"
UNPREFIXED = ("kafka", "pipeline", "serve")
"""Sections whose unique field names are flags as they are."""
SPECIAL = {
    ("kafka", "extra_config"): "--kafka-config",
    ("pipeline", "windows"): "--windows",
    ("serve", "enabled"): "--serve",
    ("serve", "host"): "--serve-host",
    ("serve", "port"): "--serve-port",
}


class FlagError(ValueError):
    """A flag's value cannot be read (e.g. a ``--kafka-config`` item without ``=``)."""


@dataclass(frozen=True)
class Flag:
    flag: str
    section: str
    field: str
    info: FieldInfo

    @property
    def dest(self) -> str:
        return f"setting__{self.section}__{self.field}"

    @property
    def env(self) -> str:
        return env_name(self.section, self.field)


def env_name(section: str, field: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{field.upper()}"


def _sections() -> dict[str, type[BaseModel]]:
    return {name: info.annotation for name, info in Settings.model_fields.items()}  # type: ignore[misc]


def _is_secret(info: FieldInfo) -> bool:
    return SecretStr in (info.annotation, *typing.get_args(info.annotation))


def settings_flags() -> list[Flag]:
    """One flag per field of every section, secrets excepted."""
    sections = _sections()
    counts = Counter(f for name in UNPREFIXED for f in sections[name].model_fields)
    flags = []
    for section, model in sections.items():
        for field, info in model.model_fields.items():
            if _is_secret(info):
                continue
            flag = SPECIAL.get((section, field))
            if flag is None:
                unique = section in UNPREFIXED and counts[field] == 1
                name = field if unique else f"{section}_{field}"
                flag = "--" + name.replace("_", "-")
            flags.append(Flag(flag, section, field, info))
    return flags


def secret_variables() -> list[str]:
    return [
        env_name(section, field)
        for section, model in _sections().items()
        for field, info in model.model_fields.items()
        if _is_secret(info)
    ]


def _kind(info: FieldInfo) -> str:
    annotation = info.annotation
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool"
    if origin in (tuple, list):
        return "list"
    if origin is dict:
        return "mapping"
    return "scalar"


def _help(flag: Flag) -> str:
    text = (flag.info.description or "").strip().split("\n\n")[0].replace("\n", " ")
    text = re.split(r"\.\s+(?=[A-Z(])", text)[0].rstrip(".")
    default = flag.info.get_default(call_default_factory=True)
    if isinstance(default, tuple | list):
        default = ",".join(str(getattr(v, "value", v)) for v in default) or "none"
    elif default in ("", None):
        default = "unset"
    shown = f"{text} " if text else ""
    return f"{shown}(default: {default}) [env: {flag.env}]".replace("%", "%%")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Every settings flag, grouped by section."""
    groups: dict[str, Any] = {}
    for flag in settings_flags():
        group = groups.get(flag.section)
        if group is None:
            group = groups[flag.section] = parser.add_argument_group(f"{flag.section} settings")
        kind = _kind(flag.info)
        options: dict[str, Any] = {"dest": flag.dest, "default": None, "help": _help(flag)}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        elif kind == "mapping":
            options.update(action="append", metavar="KEY=VALUE")
        elif kind == "list":
            options["metavar"] = "A,B,..."
        else:
            annotation = flag.info.annotation
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) == 1 and type(None) in typing.get_args(annotation):
                annotation = inner[0]  # an optional scalar: its type's name
            if typing.get_origin(annotation) is Literal:
                options["choices"] = list(typing.get_args(annotation))
            else:
                options["metavar"] = getattr(annotation, "__name__", "str").upper()
        group.add_argument(flag.flag, **options)
    parser.epilog = (
        "Secrets have no flag; set them in the environment: " + ", ".join(secret_variables()) + "."
    )


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings the flags set, by section (pydantic validates and converts them)."""
    overrides: dict[str, dict[str, Any]] = {}
    for flag in settings_flags():
        value = getattr(args, flag.dest, None)
        if value is None:
            continue
        kind = _kind(flag.info)
        if kind == "list":
            value = [item.strip() for item in value.split(",") if item.strip()]
        elif kind == "mapping":
            value = dict(_pair(flag.flag, item) for item in value)
        overrides.setdefault(flag.section, {})[flag.field] = value
    return overrides


def _pair(flag: str, item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise FlagError(f"{flag} {item.split('=')[0][:40]!r}...: expected KEY=VALUE")
    return key.strip(), value


def describe_invalid(error: ValidationError) -> str:
    """A settings validation error without the values given: a mistyped secret's variable must
    not print the secret."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in problem["loc"])
        lines.append(f"  {where}: {problem['msg']}")
    return f"{error.error_count()} invalid setting(s):\n" + "\n".join(lines)

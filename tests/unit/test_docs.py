"""The README documents every knob and keeps its two set-up commands; docs carry no history."""

from __future__ import annotations

import re
from pathlib import Path

from cli.flags import settings_flags
from models.settings import Settings

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table_with_its_flag() -> None:
    flags = {(f.section, f.field): f.flag for f in settings_flags()}
    for section, info in Settings.model_fields.items():
        for field in info.annotation.model_fields:
            row = next(
                (line for line in README.splitlines() if line.startswith(f"| `{section}.{field}`")),
                None,
            )
            assert row is not None, f"{section}.{field} is not in the README"
            flag = flags.get((section, field))
            assert (f"`{flag}`" if flag else "env only") in row, row


def test_the_two_set_up_commands_are_there() -> None:
    install = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
    assert install + ".venv/bin/codegen-metrics run --demo" in README
    assert install + ".venv/bin/python -m pytest" in README


def test_docs_tell_no_history() -> None:
    for path in (ROOT / "README.md", ROOT / "benchmarks" / "README.md"):
        text = path.read_text(encoding="utf-8")
        for pattern in (
            r"\bsessions?\b(?![ .-]timeout)",  # Kafka's "session timeout" is a term
            r"\b20\d\d-\d\d-\d\d\b(?!T)",
            r"\bearlier (runs|we)\b",
        ):
            assert not re.search(pattern, text, re.IGNORECASE), (path.name, pattern)

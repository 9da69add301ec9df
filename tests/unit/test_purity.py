"""The pure core never imports a transport, and the unit-test guard against one works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GUARD_MESSAGE = "unit tests must not use"

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_core_leaves_ray_and_kafka_out_of_sys_modules() -> None:
    # A fresh interpreter: imports made by other tests in this process cannot pollute it.
    code = (
        "import sys\n"
        "import reducer, models, models.decode, reducer.aggregator, reducer.codec\n"
        "import models.dead_letter, reducer.nodes.ingest, reducer.nodes.window\n"
        "import reducer.nodes.coordinator, reducer.nodes.history, reducer.nodes.supervisor\n"
        "import cli.main, cli.aggregate, cli.simulator\n"
        "from reducer import MetricsAggregator, AggregationState, percentile\n"
        "loaded = sorted(m for m in ('ray', 'confluent_kafka') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""


def test_constructing_a_kafka_client_in_a_unit_test_raises() -> None:
    import confluent_kafka

    with pytest.raises(RuntimeError, match=GUARD_MESSAGE):
        confluent_kafka.Consumer({"group.id": "g"})
    with pytest.raises(RuntimeError, match=GUARD_MESSAGE):
        confluent_kafka.Producer({})


def test_initialising_ray_in_a_unit_test_raises() -> None:
    import ray

    with pytest.raises(RuntimeError, match=GUARD_MESSAGE):
        ray.init()

"""Fixtures for tests that need the real Tansu broker and/or a local Ray.

One broker and (on demand) one Ray session per pytest session, because Ray takes ~5 s to start;
every test gets its own topic prefix and consumer group so tests never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.broker import EmbeddedBroker
from actors.ray_env import apply_ray_environment
from models.settings import KafkaSettings

# Before Ray starts: the pipeline's own Ray environment (actors/ray_env.py).
apply_ray_environment()

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="session")
def broker(embedded_broker: EmbeddedBroker) -> str:
    """Bootstrap servers of an embedded Tansu broker on a free 127.0.0.1 port."""
    return embedded_broker.bootstrap_servers


@pytest.fixture
def broker_process(embedded_broker: EmbeddedBroker) -> int:
    """PID of the broker, for fault injection (SIGSTOP/SIGCONT)."""
    assert embedded_broker.pid is not None
    return embedded_broker.pid


@pytest.fixture
def kafka_settings(broker: str) -> KafkaSettings:
    """Settings with a per-test topic prefix and group id."""
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings(bootstrap_servers=broker, topic_prefix=f"t{tag}", group_id=f"g{tag}")


RAY_METRICS_PORT: list[int] = []


@pytest.fixture(scope="session")
def ray_metrics_port(ray_session: None) -> int:
    """Where Ray exports actor metrics (ray.util.metrics) in Prometheus format."""
    return RAY_METRICS_PORT[0]


CRASH_MARKER = "__end-the-window-actor-process__"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole session (not autouse: only tests that ask pay ~5 s)."""
    import ray

    # Short path: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    from actors.broker import free_port

    RAY_METRICS_PORT.append(free_port())
    # The window actors (started by this Ray) end their process on a message holding it:
    # tests/integration/test_big_messages.py, the quarantine.
    os.environ["CODEGEN_METRICS_TEST_CRASH_MARKER"] = CRASH_MARKER
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace="codegen_metrics",
        _temp_dir=temp_dir,
        _metrics_export_port=RAY_METRICS_PORT[0],
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

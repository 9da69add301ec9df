"""The start-up figures `codegen-metrics run` logs: process start, first event applied."""

from __future__ import annotations

import subprocess
import sys
import time

from cli.run import first_applied
from reducer.nodes.stats import PipelineStats, WindowStats

AGE = (
    "import time; from cli.run import process_started_at; print(time.time() - process_started_at())"
)


def test_a_process_knows_when_it_started_within_its_own_lifetime() -> None:
    began = time.time()
    output = subprocess.run(
        [sys.executable, "-c", AGE], capture_output=True, text=True, check=True
    ).stdout
    lived = time.time() - began
    # the child's age when it asked: after its own start, and within the time we waited for it
    assert 0.0 <= float(output) <= lived + 0.02  # /proc/uptime counts in hundredths


def test_the_first_event_applied_is_the_earliest_window_actors_stamp() -> None:
    def stats(*stamps: float | None) -> PipelineStats:
        windows = [WindowStats(index=i, first_applied_at=s) for i, s in enumerate(stamps)]
        return PipelineStats(ingest=[], windows=[*windows, None], coordinator=None,
                             intent_executor=None)  # fmt: skip

    assert first_applied(stats(None, None)) is None
    assert first_applied(stats(None, 1700000012.5, 1700000010.25)) == 1700000010.25


def test_a_run_on_the_embedded_broker_joins_with_tansus_shorter_session_unless_one_is_set() -> None:
    from actors.kafka import EMBEDDED_SESSION_TIMEOUT_MS, SESSION_TIMEOUT_MS
    from cli.run import on_embedded_broker
    from models import Settings

    embedded = on_embedded_broker(Settings(), "127.0.0.1:9", "/tmp/somewhere")
    chosen = on_embedded_broker(
        Settings(kafka={"session_timeout_ms": 7000, "group_id": "g"}), "127.0.0.1:9", "/x"
    )

    assert embedded.kafka.bootstrap_servers == "127.0.0.1:9"
    assert embedded.pipeline.storage_path == "/tmp/somewhere"
    assert embedded.kafka.session_timeout_ms == EMBEDDED_SESSION_TIMEOUT_MS < SESSION_TIMEOUT_MS
    assert (chosen.kafka.session_timeout_ms, chosen.kafka.group_id) == (7000, "g")
    assert Settings().kafka.session_timeout_ms is None  # any other broker: Kafka's floor

"""Driver for the multi-node test, run in its own process (one Ray cluster per process).

Connects to a two-node cluster, runs the pipeline against the test broker, reports where the
actors landed, kills the second node's raylet mid-stream, supervises the recovery, and prints one
JSON line with placement, recoveries and whether every window's final metrics are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
import traceback

import ray

from actors.fleet import produce_events
from actors.pipeline import Pipeline
from models.settings import KafkaSettings
from reducer.nodes.stats import as_json
from tests.integration.test_faults import applied, checkpoints, drive, latest_finals
from tests.integration.test_pipeline import body, expected_all, fleet, settings_for


def placement(pipeline: Pipeline) -> dict[str, str]:
    """Actor name -> node id, as each actor reports it."""
    stats = pipeline.stats()
    where = {"coordinator": stats.coordinator.node_id}
    where.update({f"ingest-{s.index}": s.node_id for s in stats.ingest})
    where.update({f"window-{s.index}": s.node_id for s in stats.windows})
    return where


def raylet_pids(temp_dir: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"raylet.*{temp_dir}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _safe_stats(pipeline: Pipeline) -> object:
    try:
        stats = pipeline.stats()
    except Exception as exc:
        return repr(exc)
    return {**as_json(stats), "restores": pipeline.restores}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--worker-temp-dir", required=True)
    args = parser.parse_args()

    ray.init(address=args.address, _node_ip_address=args.node_ip, namespace="codegen-metrics-tests")
    kafka_settings = KafkaSettings(
        bootstrap_servers=args.bootstrap_servers, topic_prefix=args.prefix, group_id=args.prefix
    )
    settings = settings_for(
        kafka_settings,
        ingest_actors=2,
        window_actors=3,
        checkpoint_interval_seconds=1.0,
        idle_partition_timeout_seconds=4,  # below the hand-over gap of a lost node
    )
    events = fleet(200, seed=41)
    first, second = events[:900], events[900:]
    pipeline = Pipeline(settings).start()
    result: dict = {"head": pipeline.head_node}
    try:
        result["before"] = placement(pipeline)
        produce_events(kafka_settings, first)
        drive(pipeline, lambda: applied(pipeline) >= len(first) and checkpoints(pipeline) >= 1)
        produce_events(kafka_settings, second)
        killed = raylet_pids(args.worker_temp_dir)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        result["killed_raylets"] = len(killed)
        result["actions"] = drive(
            pipeline,
            lambda: pipeline.restores > 0 and checkpoints(pipeline) > 0,
            timeout=180,
        )
        expected = expected_all(events, settings.pipeline.windows)
        # Generous: a loaded CI machine once took over 90 s here (restore, rebalance, idle).
        drive(
            pipeline,
            lambda: pipeline.stats().coordinator.finals_published > 0,
            timeout=180,
        )
        finals = latest_finals(kafka_settings, len(expected), timeout=120)
        result["after"] = placement(pipeline)
        result["windows"] = len(expected)
        result["missing"] = sorted(set(expected) - set(finals))
        result["wrong"] = sorted(
            k for k in finals if k in expected and body(finals[k]) != expected[k]
        )
    except Exception:  # reported in the RESULT line: Ray's log floods this process's stderr
        result["error"] = traceback.format_exc()
        result["stats"] = _safe_stats(pipeline)
    finally:
        pipeline.stop()
        time.sleep(0.5)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""Start-up: from `codegen-metrics run` to the first event applied, cold and against a running Ray.

    python benchmarks/startup.py              # 3 runs of each, about 2 minutes

A backlog of the simulated fleet waits in an embedded Tansu broker before each run. Then, with
the command's defaults (HTTP API on, Ray dashboard on):

  cold      ``codegen-metrics run`` starting its own local Ray (``--ray-address local``);
  running   ``codegen-metrics run --ray-address ADDR`` against a Ray started beforehand with
            ``ray start --head --num-cpus 2`` (as on a cluster: Ray is already up);
  short     the same with ``--session-timeout-ms 3000``, which Tansu allows (Kafka does not by
            default): Tansu answers a join after about half the session timeout;
  embedded  ``codegen-metrics run --demo``: its own broker (3 s sessions) and local Ray, no
            backlog: the simulated fleet produces as the pipeline starts.

Times are the command's own log lines: "first events applied N s after launch" (the window
actors stamp the first event they apply; launch is the process's start, from /proc) and
"started ... (Ray R s, actors A s)". Baseline in the same run: a bare ``confluent_kafka``
consumer process subscribing to the same backlog, from ``Popen`` to its first message (a group
join, which the pipeline's ingest actors make too).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import common as c

from actors import kafka
from actors.broker import EmbeddedBroker, free_port
from actors.fleet import produce_events
from actors.ray_env import RAY_ENVIRONMENT
from cli.simulator import simulate_fleet
from models.settings import KafkaSettings

COMMAND = str(Path(sys.executable).with_name("codegen-metrics"))
FIRST = re.compile(r"first events applied ([\d.]+) s after launch")
STARTED = re.compile(r"started [\d.]+ s after launch \(Ray ([\d.]+) s, actors ([\d.]+) s\)")
FIRST_MESSAGE = """
import sys, time
from models.settings import KafkaSettings
from actors import kafka
ks = KafkaSettings.model_validate_json(sys.argv[1])
consumer = kafka.make_consumer(ks, group_id=ks.group_id + "-bare")
consumer.subscribe(ks.input_topics)
while not consumer.consume(1, timeout=0.1):
    pass
print("first", flush=True)
consumer.close()
"""


def timed_run(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Launch the command; seconds to its first-event line, and its own split; then stop it."""
    began = time.monotonic()
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    found: dict[str, float] = {}
    assert process.stderr is not None
    for line in process.stderr:
        if match := STARTED.search(line):
            found["ray_s"], found["actors_s"] = float(match[1]), float(match[2])
        if match := FIRST.search(line):
            found["first_s"] = float(match[1])
            break
        if time.monotonic() - began > 120:
            break
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    if "first_s" not in found:
        raise RuntimeError(f"{argv[:3]}: no first event applied within 120 s")
    return found


def launch_seconds(argv: list[str], env: dict[str, str], until: str) -> float:
    """Seconds from ``Popen`` to the line holding ``until`` on the process's stdout."""
    began = time.monotonic()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if until in line:
            break
    elapsed = time.monotonic() - began
    process.wait(timeout=30)
    return elapsed


def backlog(bootstrap: str, n: int) -> KafkaSettings:
    tag = os.urandom(4).hex()
    ks = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"s{tag}", group_id=f"g{tag}")
    kafka.ensure_topics(ks, ks.input_topics)
    produce_events(ks, islice(simulate_fleet(10**9, seed=1), n))
    return ks


def run_argv(ks: KafkaSettings, ray_address: str, *more: str) -> list[str]:
    storage = tempfile.mkdtemp(prefix="bench-start-")
    return [COMMAND, "run", "--bootstrap-servers", ks.bootstrap_servers, "--topic-prefix",
            ks.topic_prefix, "--group-id", ks.group_id, "--storage-path", storage,
            "--ray-address", ray_address, *more]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    env = {**os.environ, **RAY_ENVIRONMENT, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    rows: dict[str, list[dict[str, float]]] = {
        "cold": [], "running": [], "short": [], "embedded": [], "bare": []
    }  # fmt: skip
    header = c.machine()
    with EmbeddedBroker() as broker:
        for run in range(args.runs):
            ks = backlog(broker.bootstrap_servers, args.events)
            bare = [sys.executable, "-c", FIRST_MESSAGE, ks.model_dump_json()]
            rows["bare"].append({"first_s": launch_seconds(bare, env, until="first")})
            rows["cold"].append(timed_run(run_argv(ks, "local"), env))
            rows["embedded"].append(timed_run([COMMAND, "run", "--demo"], env))
            temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
            ray = str(Path(sys.executable).with_name("ray"))
            address = f"127.0.0.1:{free_port()}"
            subprocess.run(
                [ray, "start", "--head", "--num-cpus", "2", "--port", address.split(":")[1],
                 "--node-ip-address", "127.0.0.1", "--temp-dir", temp,
                 "--dashboard-host", "127.0.0.1", "--disable-usage-stats"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            try:
                ks = backlog(broker.bootstrap_servers, args.events)
                rows["running"].append(timed_run(run_argv(ks, address), env))
                ks = backlog(broker.bootstrap_servers, args.events)
                short = run_argv(ks, address, "--session-timeout-ms", "3000")
                rows["short"].append(timed_run(short, env))
            finally:
                subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
                shutil.rmtree(temp, ignore_errors=True)
            c.log(f"run {run + 1} of {args.runs}: " + ", ".join(
                f"{k} {v[-1]['first_s']:.1f} s" for k, v in rows.items()))  # fmt: skip

    def cell(side: str, key: str) -> str:
        values = [r[key] for r in rows[side] if key in r]
        if not values:
            return ""
        spread = f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else ""
        return f"{statistics.median(values):.1f} s{spread}"

    print(f"{args.events:,}-event backlog, {args.runs} runs each (median and range)\n")
    table = [
        ("codegen-metrics run, cold local Ray", cell("cold", "first_s"), cell("cold", "ray_s"),
         cell("cold", "actors_s")),
        ("codegen-metrics run --ray-address (Ray running)", cell("running", "first_s"),
         cell("running", "ray_s"), cell("running", "actors_s")),
        ("the same, --session-timeout-ms 3000", cell("short", "first_s"),
         cell("short", "ray_s"), cell("short", "actors_s")),
        ("codegen-metrics run --demo (embedded broker, cold local Ray)",
         cell("embedded", "first_s"), cell("embedded", "ray_s"), cell("embedded", "actors_s")),
        ("baseline: a bare consumer process, to its first message", cell("bare", "first_s"), "",
         ""),
    ]  # fmt: skip
    print(c.table(["launch -> first event applied", "total", "of which Ray", "actors"], table))
    print(f"\n{header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

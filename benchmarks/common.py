"""What the benchmarks share: interleaved timing, child processes, event sources, tables, and a
local broker + Ray for the pipeline scripts.

Production code is imported, never copied. Ray is imported only inside ``local_cluster`` so that
core.py's memory children do not carry it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from importlib.metadata import version
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

from cli.simulator import fleet_json_lines
from models.decode import decode_batch
from models.events import CodegenEvent

REPO = Path(__file__).resolve().parent.parent
BATCH = 1000
"""Messages per decode_batch / add_batch call, as the pipeline batches them (batch_size)."""

# -- timing --------------------------------------------------------------------------------------


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function over ``repeats`` rounds (a, b, c, a, b, c, ...)
    after one untimed round: a load change on a shared machine hits every side alike, so the
    ratios stay fair even when the absolute rates do not."""
    for fn in fns.values():
        fn()
    timings: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            began = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - began)
    return {name: statistics.median(times) for name, times in timings.items()}


@contextlib.contextmanager
def frozen_inputs() -> Iterator[None]:
    """Keep the prepared inputs out of the cycle collector while timing: otherwise every full
    collection walks the benchmark's own 100k events, a cost of the harness, not of the code."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()


def rate(items: int, seconds: float) -> float:
    return items / seconds if seconds > 0 else float("inf")


# -- processes -----------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak RSS of this process (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Linux carries ru_maxrss over fork + exec: a child started straight from a big parent reports
# the parent's peak. A tiny ``python -S`` launcher in between resets it to about 10 MiB.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_child(
    args: Sequence[str], timeout: float = 1800, pythonpath: Path = REPO
) -> dict[str, Any]:
    """Run ``python ARGS`` fresh, with ``pythonpath`` (the code under test) first on the path;
    its last stdout line is a JSON object."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-S", "-c", _LAUNCHER, sys.executable, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``: the broker, raylet, GCS and Ray workers."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def process_memory(pid: int) -> tuple[str, float, float]:
    """(title, VmRSS MiB, VmHWM MiB) of a process: ray::Class for a Ray worker, the script's
    name for other Python processes (Ray's monitors and agents), else the program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        fields = {
            line.split(":")[0]: int(line.split()[1]) / 1024
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith(("VmRSS:", "VmHWM:"))
        }
    except OSError:
        return "?", float("nan"), float("nan")
    title = argv[0] if argv[0].startswith("ray::") else Path(argv[0].split(" ")[0]).name
    if title.startswith("python"):
        title = next((Path(a).name for a in argv[1:] if a.endswith(".py")), title)
    return title, fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/PID/stat), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu() -> dict[int, float]:
    """CPU seconds used so far by this process and each descendant, by pid."""
    return {pid: cpu_seconds(pid) for pid in [os.getpid(), *descendants(os.getpid())]}


def tree_memory() -> list[tuple[str, int, float, float]]:
    """(title, pid, RSS, peak RSS) of this process and every descendant with memory."""
    rows = []
    for pid in [os.getpid(), *descendants(os.getpid())]:
        title, rss, hwm = process_memory(pid)
        if hwm > 1:
            rows.append(("this driver" if pid == os.getpid() else title, pid, rss, hwm))
    return sorted(rows)


# -- events --------------------------------------------------------------------------------------


def fleet_lines(workflows: int, seed: int = 0) -> list[bytes]:
    """Raw JSON of the synthetic fleet (cli/simulator.py, about 9.7 events a workflow)."""
    return list(fleet_json_lines(workflows, seed=seed))


def batches(items: Sequence[Any], size: int = BATCH) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def parse_lines(lines: Sequence[bytes]) -> list[CodegenEvent]:
    events: list[CodegenEvent] = []
    for batch in batches(lines):
        decoded = decode_batch(batch)
        if decoded.rejects:
            raise ValueError(f"the fleet made bad messages: {decoded.rejects[:3]}")
        events += decoded.events
    return events


_SALT = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: cycle k XORs every id with k * salt
_MASK = (1 << 128) - 1


def _fresh_ids(ids: Iterable[UUID], cycle: int) -> dict[UUID, UUID]:
    salt = (cycle * _SALT) & _MASK
    return {old: UUID(int=old.int ^ salt) for old in ids}


def cycle_copies(pool: Sequence[CodegenEvent], n: int) -> Iterator[CodegenEvent]:
    """``n`` events cycling through ``pool`` with fresh workflow ids and later timestamps each
    cycle (``model_copy``, no re-validation), so distinct ids and event time grow with ``n``."""
    ids = list(dict.fromkeys(e.workflow_id for e in pool))
    span = max(e.timestamp for e in pool) - min(e.timestamp for e in pool) + timedelta(seconds=1)
    made = 0
    for cycle in count():
        fresh, shift = _fresh_ids(ids, cycle), span * cycle
        for event in pool:
            if made == n:
                return
            update = {"workflow_id": fresh[event.workflow_id], "timestamp": event.timestamp + shift}
            yield event.model_copy(update=update)
            made += 1


def cycle_lines(pool: Sequence[bytes], n: int) -> Iterator[bytes]:
    """``n`` raw messages cycling through ``pool``, with fresh workflow ids in the bytes."""
    texts = [json.loads(line)["workflow_id"] for line in pool]
    ids = [UUID(text) for text in dict.fromkeys(texts)]
    made = 0
    for cycle in count():
        fresh = {str(old): str(new).encode() for old, new in _fresh_ids(ids, cycle).items()}
        for line, text in zip(pool, texts, strict=True):
            if made == n:
                return
            yield line.replace(text.encode(), fresh[text])
            made += 1


def decoded_stream(lines: Iterable[bytes]) -> Iterator[CodegenEvent]:
    """Events decoded ``BATCH`` messages at a time, as the window actors decode them."""
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == BATCH:
            yield from decode_batch(batch).events
            batch = []
    yield from decode_batch(batch).events


# -- a broker and a local Ray ----------------------------------------------------------------------


@contextlib.contextmanager
def local_cluster() -> Iterator[str]:
    """An embedded Tansu broker and a local 2-CPU Ray, as the integration tests start them;
    yields the bootstrap servers. Everything is stopped on the way out."""
    import ray

    from actors.broker import EmbeddedBroker
    from actors.ray_env import apply_ray_environment

    apply_ray_environment()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    with EmbeddedBroker() as broker:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp_dir,
        )
        try:
            yield broker.bootstrap_servers
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def pipeline_settings(bootstrap: str, **pipeline: Any) -> Any:
    """Settings with fresh topics, group and checkpoint directory; ``pipeline`` overrides."""
    from models.settings import KafkaSettings, PipelineSettings, Settings

    tag = os.urandom(4).hex()
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"b{tag}", group_id=f"g{tag}")
    storage = tempfile.mkdtemp(prefix="bench-ckpt-")
    return Settings(kafka=kafka, pipeline=PipelineSettings(storage_path=storage, **pipeline))


# -- output --------------------------------------------------------------------------------------


def machine() -> str:
    """One line naming what the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    ram = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    libs = ", ".join(f"{p} {version(p)}" for p in ("pydantic", "pydantic-core", "numpy"))
    return (
        f"{os.cpu_count()} x {cpu}, {ram:.1f} GiB, Python {platform.python_version()}, {libs}, "
        f"load {os.getloadavg()[0]:.2f}"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table, columns padded."""
    cells = [list(map(str, headers)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def ev_s(value: float) -> str:
    return f"{value:,.0f} ev/s"


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp} load {os.getloadavg()[0]:.1f}] {message}", file=sys.stderr, flush=True)

"""Shared helpers of the benchmarks: timing, memory, child processes, event sources, tables.

Timings are medians of several repeats of wall-clock time (``time.perf_counter``); process CPU
time (``time.process_time``) is recorded beside it, since the machine may be shared. Memory is the
peak resident set size from ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in a fresh child process
(kilobytes on Linux, reported here in MiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

from cli.simulator import fleet_json_lines
from models.decode import decode_batch
from models.events import CodegenEvent
from models.settings import PipelineSettings

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
BATCH = 1000
"""Events per add_batch / decode_batch call, as the ingest path batches them."""
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# -- timing ------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall and CPU seconds of each repeat."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.wall), max(self.wall)

    def to_obj(self) -> dict[str, Any]:
        return {"wall": self.wall, "cpu": self.cpu, "median": self.median}


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Timing]:
    """Wall and CPU seconds of each function, after one untimed warm-up round, over ``repeats``
    rounds (a, b, c, a, b, c, ...) with a gc before each call, so a change in the machine's load
    hits every function alike and their ratios stay fair."""
    for fn in fns.values():  # warm-up round
        fn()
    timings = {name: Timing() for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            timings[name].cpu.append(time.process_time() - cpu)
            timings[name].wall.append(time.perf_counter() - wall)
    return timings


def freeze_inputs() -> None:
    """Move every object alive now (the prepared inputs) out of the garbage collector's reach.

    Otherwise each full collection during a timed call walks the hundreds of thousands of input
    events, a cost that depends on what the benchmark holds, not on the code measured. Both sides
    get the same treatment; objects they create while timed are collected as usual.
    """
    gc.collect()
    gc.freeze()


def unfreeze_inputs() -> None:
    gc.unfreeze()
    gc.collect()


def add_gc_young_threshold(parser: argparse.ArgumentParser) -> None:
    """``--gc-young-threshold``: A/B of the actors' collector setting (actors/collector.py)."""
    parser.add_argument(
        "--gc-young-threshold",
        type=int,
        default=PipelineSettings().gc_young_threshold,
        help="pipeline.gc_young_threshold (0: Python's collector as is)",
    )


def rate(items: int, seconds: float) -> float:
    return items / seconds if seconds > 0 else float("inf")


# -- memory ------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def high_water_mib() -> float:
    """VmHWM of /proc/self/status: the same peak, from the kernel's per-process counter."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# Linux carries ru_maxrss across fork + exec: a child spawned straight from this (large) process
# would start with this process's peak as its own. A small launcher in between (python -S, about
# 10 MiB) resets it to the launcher's size, far below any child's own peak.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_child(args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a fresh Python child (through the launcher) whose last stdout line is a JSON object."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    command = [sys.executable, "-S", "-c", _LAUNCHER, sys.executable, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- other processes (by pid, from /proc) --------------------------------------------------------


def proc_memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; (nan, nan) once it is gone."""
    found: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found.get("VmRSS", float("nan")), found.get("VmHWM", float("nan"))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far; nan once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)


def proc_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def rest_usage(known: set[int]) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) summed over this process's descendants not in ``known``: the rest
    of a local Ray session (raylet, gcs_server, idle workers, agents)."""
    rss_total = cpu_total = 0.0
    for pid in descendants(os.getpid()):
        if pid in known:
            continue
        rss, _ = proc_memory_mib(pid)
        cpu = proc_cpu_seconds(pid)
        rss_total += 0.0 if math.isnan(rss) else rss  # NaN: the process ended while read
        cpu_total += 0.0 if math.isnan(cpu) else cpu
    return rss_total, cpu_total


def wait_for_load(
    below: float = 1.5, poll_seconds: float = 20.0, max_wait_seconds: float = 900.0
) -> dict[str, float]:
    """Wait until the 1-minute load average is below ``below`` (the machine is shared).

    Gives up after ``max_wait_seconds`` and measures anyway; returns the load it measured under
    and how long it waited, so the caller can report both.
    """
    began = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - began
        if load < below or waited >= max_wait_seconds:
            if load >= below:
                log(f"load {load:.2f} still >= {below} after {waited:.0f} s; measuring anyway")
            return {"load_1min": load, "waited_s": waited, "met": load < below}
        log(f"load {load:.2f} >= {below}; waiting ({waited:.0f} s so far)")
        time.sleep(poll_seconds)


# -- event sources -----------------------------------------------------------------------------


def fleet_lines(workflows: int, seed: int = 0) -> list[bytes]:
    """Raw JSON messages of the synthetic fleet (about 9.7 events per workflow)."""
    return list(fleet_json_lines(workflows, seed=seed))


def batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def parse_lines(lines: Sequence[bytes], size: int = BATCH) -> list[CodegenEvent]:
    events: list[CodegenEvent] = []
    for batch in batches(lines, size):
        decoded = decode_batch(list(batch))
        if decoded.rejects:
            raise ValueError(f"fleet produced bad messages: {decoded.rejects[:3]}")
        events.extend(decoded.events)
    return events


_SALT = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd 128-bit constant: cycle k XORs ids with k*salt
_MASK = (1 << 128) - 1


def _fresh_ids(pool_ids: Iterable[UUID], cycle: int) -> dict[UUID, UUID]:
    salt = (cycle * _SALT) & _MASK
    return {old: UUID(int=old.int ^ salt) for old in pool_ids}


def cycle_copies(
    pool: Sequence[CodegenEvent],
    n: int,
    copy: Callable[[CodegenEvent, UUID, Any], Any] | None = None,
    first_cycle: int = 0,
) -> Iterator[Any]:
    """``n`` events cycling through ``pool``, each cycle with fresh workflow ids and timestamps
    shifted past the previous cycle, so distinct ids and time keep growing with ``n``.

    Copies are made with ``model_copy(update=...)`` (no re-validation) unless ``copy`` is given.
    """
    ids = list(dict.fromkeys(e.workflow_id for e in pool))
    span = max(e.timestamp for e in pool) - min(e.timestamp for e in pool) + timedelta(seconds=1)
    made = 0
    for cycle in count(first_cycle):
        fresh = _fresh_ids(ids, cycle)
        shift = span * cycle
        for event in pool:
            if made == n:
                return
            workflow_id, timestamp = fresh[event.workflow_id], event.timestamp + shift
            if copy is None:
                yield event.model_copy(update={"workflow_id": workflow_id, "timestamp": timestamp})
            else:
                yield copy(event, workflow_id, timestamp)
            made += 1


def cycle_lines(pool_lines: Sequence[bytes], n: int) -> Iterator[bytes]:
    """``n`` raw JSON messages cycling through ``pool_lines`` with fresh workflow ids per cycle
    (the id's text is replaced in the bytes; everything else repeats)."""
    texts = [json.loads(line)["workflow_id"] for line in pool_lines]
    ids = [UUID(t) for t in dict.fromkeys(texts)]
    made = 0
    for cycle in count():
        fresh = {
            str(old).encode(): str(new).encode() for old, new in _fresh_ids(ids, cycle).items()
        }
        for line, text in zip(pool_lines, texts, strict=True):
            if made == n:
                return
            old = text.encode()
            yield line.replace(old, fresh[old]) if cycle else line
            made += 1


def decoded_stream(lines: Iterable[bytes], size: int = BATCH) -> Iterator[CodegenEvent]:
    """Events decoded from raw messages ``size`` at a time (each event validated once)."""
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield from decode_batch(batch).events
            batch = []
    if batch:
        yield from decode_batch(batch).events


# -- machine and output ------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import numpy
    import pydantic
    import pydantic_core

    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pydantic": pydantic.__version__,
        "pydantic_core": pydantic_core.__version__,
        "load_average": os.getloadavg(),
    }


def code_info(
    paths: Sequence[str] = ("models", "reducer", "cli", "benchmarks"),
) -> dict[str, Any]:
    """The commit measured, and which files of the measured packages differ from it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=30, cwd=REPO
            )
        except OSError:
            return ""
        return done.stdout

    dirty = git("status", "--short", "--", *paths)
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted": [line.strip() for line in dirty.splitlines() if line.strip()],
    }


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [list(map(str, headers)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} load {load:.1f}] {message}", file=sys.stderr, flush=True)

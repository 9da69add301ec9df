"""Memory of one window actor, without Ray or Kafka: what grows, and where it levels off.

    python benchmarks/window_memory.py                                # the soak's 10 minutes
    python benchmarks/window_memory.py --restore-at 5                 # ... with its restore
    python benchmarks/window_memory.py --minutes 240 --source pool --tick 60 --checkpoint 60
                                                                      # the dedup plateau
    python benchmarks/window_memory.py --minutes 20 --tracemalloc     # which lines hold memory

It runs, in this one process, the pure code a window actor runs (``actors/window.py``): per batch
``decode_batch``, the future-skew check, ``DedupFilter.admit``, ``PaneStore.apply`` with the
watermark, ``WatermarkTracker.report/observe/heartbeat`` and ``late_by_window``; per tick
(``--tick``, default 5 s of event time, the pipeline's ``tick_seconds``) what the coordinator
makes it do: ``collect`` (``DedupFilter.forget_before(watermark)``, ``PaneStore.take_deltas``)
then ``release(watermark)``; and every ``--checkpoint`` seconds (default 30, the pipeline's
interval) ``WindowActor.checkpoint``'s blob, built and dropped. ``--restore-at M`` replaces the
process at event minute M by a fresh one (``os.execv``) that loads a checkpoint taken then and
carries on, as the soak's kill and restore do. Like the actor, it first fixes glibc's mmap
threshold (``actors/allocator.py``) and settles the garbage collector (``actors/collector.py``);
``--dynamic-mmap`` leaves glibc's default, ``--gc-young-threshold 0`` Python's collector. Not
modelled: Ray itself (the actor's metrics objects, the call machinery, copying arguments and results
through the object store).

Time is simulated: the clock is the event time of the newest workflow (the soak's producer
stamps workflows with the wall clock), so hours of event time pass in minutes and the watermark,
the dedup horizon and the closing of hourly panes behave as in a live run. Events:

  - ``--source simulate`` (default): ``cli.simulator.simulate_fleet`` (what ``codegen-metrics
    simulate`` and the soak produce), serialised as the producer does. One window actor of the
    soak sees the workflows routed to it, half of a 1,000 events/s fleet: statistically the same
    as a 500 events/s fleet, so ``--rate`` (default 500) is the rate *this actor* sees.
  - ``--source pool``: the same fleet's messages as templates (``--pool`` workflows), each
    workflow replayed with fresh workflow, correlation and event ids and shifted timestamps.
    About 5x cheaper to make (7 against 35 us per event here), for hours of event time.

Every ``--every`` seconds of event time a row: events applied, dedup ids tracked, the filter's
bytes (its numpy buffers) against a plain Python ``set`` of the same ids (what version 1 held:
one set per hour, table size by CPython's growth rule plus a 48-byte block per 64-bit int; no
such set is built), the open panes and roll-ups (a deep ``sys.getsizeof`` walk), glibc's heap
(``mallinfo2``: in use and free), pymalloc's arenas, and VmRSS. ``--tracemalloc`` also traces
allocations (slower, and its own bookkeeping inflates RSS, so its RSS column is not comparable)
and prints the source lines whose live memory grew the most between ``--warmup`` and the end,
and per row the live bytes by file.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import add_gc_young_threshold

from actors.allocator import fix_mmap_threshold
from actors.collector import collector_stats, settle_collector
from cli.simulator import simulate_fleet
from models.decode import decode_batch
from models.metrics import EnumMetricsWindow
from models.settings import KafkaSettings, PipelineSettings, ReducerSettings
from reducer.dedup import DedupFilter
from reducer.nodes.checkpoint import SECTION, split_sections
from reducer.panes import PaneStore
from reducer.watermark import WatermarkTracker
from reducer.windows import hour_start, window_id

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
EVENTS_PER_WORKFLOW = 9.7  # the simulator's average (as in soak.py)
LATE_WINDOWS_KEPT = 1000  # actors/window.py
HOUR = EnumMetricsWindow.HOURLY
START = datetime(2026, 11, 2, tzinfo=UTC)
TOPICS = KafkaSettings().input_topics
TOPIC_OF = {
    t: i for i, t in enumerate(("STARTED", "STAGE_COMPLETED", "COMPLETED", "FAILED"))
}  # the order of KafkaSettings.input_topics


# -- memory probes -------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.mallinfo2.restype = _MallInfo2
except (OSError, AttributeError):  # not glibc, or glibc < 2.33
    _LIBC = None


def malloc_mib() -> dict[str, float]:
    """glibc's view (main arena plus others): heap bytes in use, free inside the heap, mmapped."""
    if _LIBC is None:
        return {}
    info = _LIBC.mallinfo2()
    return {
        "heap_used": info.uordblks / MIB,
        "heap_free": info.fordblks / MIB,
        "mmapped": info.hblkhd / MIB,
    }


def pymalloc_mib() -> dict[str, float]:
    """pymalloc's arenas (1 MiB each in 3.11, returned to the OS only when wholly empty) and the
    bytes in their allocated blocks, from ``sys._debugmallocstats`` (which writes to fd 2)."""
    with tempfile.TemporaryFile(mode="w+b") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "# arenas allocated current":
            found["arenas"] = int(value.replace(",", ""))
        elif " arenas * " in name:  # "<n> arenas * <size> bytes/arena = <total>"
            found["arenas_mib"] = int(value.replace(",", "")) / MIB
        elif name.strip() == "# bytes in allocated blocks":
            found["blocks_mib"] = int(value.replace(",", "")) / MIB
    return found


def deep_bytes(root: Any, skip: tuple[Any, ...] = ()) -> int:
    """``sys.getsizeof`` summed over everything reachable from ``root`` (numpy arrays and
    ``array.array`` count their buffers; types, modules, functions and ``skip`` are not
    entered: the settings object and the class objects are shared, not held by one state)."""
    seen = {id(s) for s in skip}
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | type(sys) | type(deep_bytes)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def set_bytes(n: int) -> int:
    """A Python ``set`` of ``n`` distinct random 64-bit ints built by adding them one by one:
    the set object, its table (CPython 3.11 ``set_add_entry``: resize when fill*5 >= mask*3, to
    used*4 up to 50,000 entries, used*2 beyond; 16-byte entries) and one 48-byte pymalloc block
    per int (``sys.getsizeof(2**63)`` is 36, and pymalloc rounds to 16 bytes)."""
    empty = sys.getsizeof(set())
    mask, used = 7, 0
    table = 0  # the 8-entry small table lives inside the object
    while used < n:
        # add ids until the next resize, then resize
        room = -(-(3 * mask) // 5)  # the fill at which adding triggers the resize
        if n < room:
            used = n
            break
        used = room
        minused = used * 4 if used <= 50_000 else used * 2
        size = 8
        while size <= minused:
            size <<= 1
        mask = size - 1
        table = size * 16
    return empty + table + 48 * n


# -- event sources -------------------------------------------------------------------------------


def simulated(rate: float, seed: int) -> Iterator[tuple[float, int, bytes]]:
    """(clock, topic index, message) of the simulated fleet; clock = its newest workflow's start."""
    clock = START.timestamp()
    for event in simulate_fleet(
        10**12, seed=seed, start=START, workflows_per_second=rate / EVENTS_PER_WORKFLOW
    ):
        kind = event["event_type"].removeprefix("CODEGEN_")
        if kind == "STARTED":
            clock = datetime.fromisoformat(event["timestamp"]).timestamp()
        yield clock, TOPIC_OF[kind], json.dumps(event, separators=(",", ":")).encode()


_SENTINELS = ("@@WID@@", "@@CID@@", "@@EID@@", "@@TS@@")


def _uuid_text(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def pooled(rate: float, seed: int, workflows: int) -> Iterator[tuple[float, int, bytes]]:
    """The fleet of ``simulated`` cut into ``workflows`` templates, replayed with fresh ids."""
    templates: list[list[tuple[float, int, str]]] = []  # per workflow: (offset s, topic, text)
    current: list[tuple[float, int, str]] = []
    began = 0.0
    for event in simulate_fleet(workflows, seed=seed, start=START):
        kind = event["event_type"].removeprefix("CODEGEN_")
        at = datetime.fromisoformat(event["timestamp"]).timestamp()
        if kind == "STARTED":
            if current:
                templates.append(current)
            current, began = [], at
        fields = dict(event, workflow_id=_SENTINELS[0], correlation_id=_SENTINELS[1])
        fields["event_id"], fields["timestamp"] = _SENTINELS[2], _SENTINELS[3]
        current.append((at - began, TOPIC_OF[kind], json.dumps(fields, separators=(",", ":"))))
    templates.append(current)
    rng = random.Random(seed + 1)
    gap = EVENTS_PER_WORKFLOW / rate
    clock = START.timestamp()
    while True:
        for template in templates:
            clock += rng.expovariate(1 / gap)
            wid, cid = _uuid_text(rng), _uuid_text(rng)
            for offset, topic, text in template:
                stamp = datetime.fromtimestamp(clock + offset, UTC).isoformat()
                message = (
                    text.replace(_SENTINELS[0], wid)
                    .replace(_SENTINELS[1], cid)
                    .replace(_SENTINELS[2], _uuid_text(rng))
                    .replace(_SENTINELS[3], stamp)
                )
                yield clock, topic, message.encode()


# -- the window actor, without Ray ---------------------------------------------------------------


def encode_snapshot(body: dict[str, Any], dedup: DedupFilter) -> bytes:
    """``actors.window.encode_snapshot``, copied (that module imports ray)."""
    header = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    ids = dedup.to_bytes()
    return b"".join((b"CMW2", SECTION.pack(len(header)), header, SECTION.pack(len(ids)), ids))


def decode_snapshot(blob: bytes, horizon_seconds: float) -> tuple[dict[str, Any], DedupFilter]:
    """``actors.window.decode_snapshot`` (version 2 only), copied."""
    header, ids = split_sections(memoryview(blob)[4:], "window snapshot")
    return json.loads(zlib.decompress(header)), DedupFilter.from_bytes(ids, horizon_seconds)


class Window:
    """``WindowActor.apply`` / ``collect`` / ``release`` / ``checkpoint`` / ``_load``
    (actors/window.py) minus Ray: same calls, same order."""

    def __init__(
        self, pipeline: PipelineSettings, reducer: ReducerSettings, dynamic_mmap: bool = False
    ) -> None:
        if not dynamic_mmap:
            fix_mmap_threshold()
        settle_collector(pipeline.gc_young_threshold)
        self.max_future_skew_s = pipeline.max_future_skew_seconds
        self.store = PaneStore(reducer, pipeline.windows)
        self.tracker = WatermarkTracker(
            pipeline.allowed_lateness_seconds, pipeline.idle_partition_timeout_seconds
        )
        self.dedup = DedupFilter(pipeline.dedup_horizon_seconds)
        self.events_applied = 0
        self.late_by_window: Counter[str] = Counter()
        self.partitions = [(topic, 0) for topic in TOPICS]

    def apply(self, values: list[bytes], origins: list[int], now: float) -> None:
        decoded = decode_batch(values)
        horizon = datetime.fromtimestamp(now + self.max_future_skew_s, UTC)
        events = []
        positions: dict[int, int] = {}
        progress: dict[int, datetime] = {}
        for event, index in zip(decoded.events, decoded.indices, strict=True):
            stamp = event.timestamp
            if stamp > horizon:
                continue
            events.append(event)
            positions[id(event)] = index
            source = origins[index]
            if source not in progress or stamp > progress[source]:
                progress[source] = stamp
        fresh = self.dedup.admit(events)
        late = self.store.apply(fresh, self.tracker.watermark(now))
        self.tracker.report(self.partitions, self.partitions, now, self.partitions, 0)
        for index, key in enumerate(self.partitions):
            self.tracker.observe(key, progress.get(index), now)
        self.tracker.heartbeat(now)
        self.events_applied += len(fresh) - len(late)
        for event in late:
            self.late_by_window[window_id(HOUR, hour_start(event.timestamp))] += 1
        if len(self.late_by_window) > LATE_WINDOWS_KEPT:
            for key in sorted(self.late_by_window)[: len(self.late_by_window) - LATE_WINDOWS_KEPT]:
                del self.late_by_window[key]
        # What the actor hands back to Ray (built and dropped here).
        _ = [(positions[id(e)], hour_start(e.timestamp).isoformat()) for e in late]
        _ = dict(Counter(event.event_type for event in events))

    def tick(self, now: float) -> None:
        """The coordinator's tick: ``collect()`` then ``release(watermark)`` (one actor, so its
        own watermark is the pipeline's)."""
        watermark = self.tracker.watermark(now)
        if watermark is not None:
            self.dedup.forget_before(watermark)
        deltas = self.store.take_deltas()
        del deltas
        if watermark is not None:
            self.store.release(watermark)

    def checkpoint(self) -> bytes:
        body = {
            "store": self.store.to_obj(),
            "tracker": self.tracker.to_obj(),
            "events_applied": self.events_applied,
        }
        return encode_snapshot(body, self.dedup)

    def load(self, snapshot: bytes, now: float) -> None:
        body, restored = decode_snapshot(snapshot, self.dedup.horizon.total_seconds())
        self.store.load(body["store"])
        self.tracker.load(body["tracker"], now)
        self.dedup.merge(restored)
        self.events_applied += int(body["events_applied"])


# -- the run -------------------------------------------------------------------------------------


def measure(window: Window, elapsed: float, wall: float, args: argparse.Namespace) -> dict:
    store = window.store
    skip = (store.settings,)
    hours = [len(h) for h in window.dedup._hours.values()]
    row: dict[str, Any] = {
        "event_s": elapsed,
        "wall_s": wall,
        "events": window.events_applied,
        "dedup_ids": window.dedup.tracked,
        "dedup_hours": len(hours),
        "dedup_mib": window.dedup.nbytes / MIB,
        "set_mib": sum(map(set_bytes, hours)) / MIB,
        "panes": len(store.panes),
        "rollups": len(store.rollups),
        "state_mib": (deep_bytes(store.panes, skip) + deep_bytes(store.rollups, skip)) / MIB,
        "late": store.late_events,
        **pymalloc_mib(),
        **malloc_mib(),
        "rss_mib": rss_mib(),
        "gc": collector_stats(),
    }
    if args.tracemalloc:
        row["traced_mib"] = tracemalloc.get_traced_memory()[0] / MIB
    if args.trim and _LIBC is not None:
        _LIBC.malloc_trim(0)
        row["trimmed_mib"] = rss_mib()
    return row


COLUMNS: list[tuple[str, Any]] = [
    ("event time", lambda r: f"{r['event_s'] / 60:g} min" + (" *" if r.get("restored") else "")),
    ("events", lambda r: f"{r['events']:,}"),
    ("dedup ids (hours)", lambda r: f"{r['dedup_ids']:,} ({r['dedup_hours']})"),
    ("dedup MiB", lambda r: f"{r['dedup_mib']:.1f}"),
    ("as a set MiB", lambda r: f"{r['set_mib']:.1f}"),
    ("panes + roll-ups", lambda r: f"{r['panes']} + {r['rollups']}: {r['state_mib']:.2f} MiB"),
    (
        "pymalloc arenas / used MiB",
        lambda r: f"{r.get('arenas_mib', 0):.0f} / {r.get('blocks_mib', 0):.1f}",
    ),
    (
        "malloc used / free / mmap MiB",
        lambda r: (
            f"{r.get('heap_used', 0):.1f} / {r.get('heap_free', 0):.1f} / {r.get('mmapped', 0):.1f}"
        ),
    ),
    ("RSS MiB", lambda r: f"{r['rss_mib']:.1f}"),
    ("GC s (n)", lambda r: f"{r['gc']['seconds']:.1f} ({r['gc']['collections']:,})"),
]


def table(rows: list[dict[str, Any]]) -> str:
    columns = list(COLUMNS)
    if any("trimmed_mib" in r for r in rows):
        columns.append(("RSS after malloc_trim", lambda r: f"{r.get('trimmed_mib', 0):.1f}"))
    if any("traced_mib" in r for r in rows):
        columns.append(("traced MiB", lambda r: f"{r.get('traced_mib', 0):.1f}"))
    cells = [[name for name, _ in columns]] + [[fmt(r) for _, fmt in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} load {load:.1f}] {message}", file=sys.stderr, flush=True)


def growth_by_line(base: tracemalloc.Snapshot, final: tracemalloc.Snapshot, top: int) -> str:
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    final, base = final.filter_traces(filters), base.filter_traces(filters)
    lines = []
    for stat in final.compare_to(base, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}"
        lines.append(
            f"  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+9,} blocks "
            f"{stat.size / 1024:10.1f} KiB now  {where}"
        )
    return "\n".join(lines)


def by_file(snapshot: tracemalloc.Snapshot) -> str:
    stats = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]).statistics(
        "filename"
    )[:8]
    return ", ".join(
        f"{os.path.relpath(s.traceback[0].filename, REPO)} {s.size / 1024:.0f}" for s in stats
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="event time to cover")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s this actor sees")
    parser.add_argument("--every", type=float, default=None, help="event seconds between rows")
    parser.add_argument("--source", choices=("simulate", "pool"), default="simulate")
    parser.add_argument("--pool", type=int, default=2000, help="template workflows (pool)")
    parser.add_argument("--batch", type=int, default=50, help="messages per apply()")
    parser.add_argument("--tick", type=float, default=5.0, help="event seconds between ticks")
    parser.add_argument(
        "--checkpoint", type=float, default=30.0, help="event s between checkpoints (0: none)"
    )
    parser.add_argument(
        "--restore-at",
        type=float,
        default=None,
        help="event minute at which the process is replaced by a fresh one restored from a "
        "checkpoint taken then (os.execv), as the soak's kill does",
    )
    parser.add_argument("--horizon", type=float, default=3600.0, help="dedup_horizon_seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--dynamic-mmap",
        action="store_true",
        help="leave glibc's dynamic mmap threshold on (window actors before actors/allocator.py)",
    )
    add_gc_young_threshold(parser)
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after each row")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per trace")
    parser.add_argument("--warmup", type=float, default=60.0, help="event s before the diff")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--resume", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    every = args.every or (60.0 if args.minutes <= 30 else 900.0)
    pipeline = PipelineSettings(
        dedup_horizon_seconds=args.horizon, gc_young_threshold=args.gc_young_threshold
    )
    window = Window(pipeline, ReducerSettings(), args.dynamic_mmap)
    source = (
        simulated(args.rate, args.seed)
        if args.source == "simulate"
        else pooled(args.rate, args.seed, args.pool)
    )
    start = START.timestamp()
    end = start + args.minutes * 60
    rows: list[dict[str, Any]] = []
    consumed = 0
    began = time.monotonic()
    if args.resume is None:
        log(
            f"{args.minutes:g} min of event time at {args.rate:g} events/s, source {args.source}"
            f", batches of {args.batch}, tick {args.tick:g} s, checkpoint {args.checkpoint:g} s"
            f", horizon {args.horizon:g} s, dynamic mmap threshold {args.dynamic_mmap}"
            f", load {os.getloadavg()}"
        )
        next_tick, next_row, next_checkpoint = start + args.tick, start + every, start
        restore_at = None if args.restore_at is None else start + args.restore_at * 60
        rows.append(measure(window, 0.0, 0.0, args))
    else:  # the fresh process after --restore-at: load the checkpoint, skip what was consumed
        saved = json.loads(args.resume.with_suffix(".json").read_text())
        rows, consumed = saved["rows"], saved["consumed"]
        next_tick, next_row, next_checkpoint = saved["next"]
        restore_at = None
        began -= rows[-1]["wall_s"]
        source = itertools.islice(source, consumed, None)
        window.load(args.resume.read_bytes(), saved["clock"])
        args.resume.unlink()
        args.resume.with_suffix(".json").unlink()
        row = measure(window, saved["clock"] - start, time.monotonic() - began, args)
        rows.append(row | {"restored": True})
        log(f"restored in a fresh process: RSS {row['rss_mib']:.1f} MiB")
    if args.tracemalloc:
        tracemalloc.start(args.frames)
    snapshots: list[tuple[float, tracemalloc.Snapshot]] = []
    base_snapshot = None
    values: list[bytes] = []
    origins: list[int] = []
    for clock, topic, message in source:
        values.append(message)
        origins.append(topic)
        if len(values) < args.batch:
            continue
        window.apply(values, origins, clock)
        consumed += len(values)
        values, origins = [], []
        while clock >= next_tick:
            window.tick(next_tick)
            next_tick += args.tick
        if args.checkpoint and clock >= next_checkpoint:
            blob = window.checkpoint()
            del blob
            next_checkpoint += args.checkpoint
        if args.tracemalloc and base_snapshot is None and clock >= start + args.warmup:
            base_snapshot = tracemalloc.take_snapshot()
        if clock >= next_row:
            rows.append(measure(window, next_row - start, time.monotonic() - began, args))
            if args.tracemalloc:
                snapshots.append((next_row - start, tracemalloc.take_snapshot()))
            log(
                f"{(next_row - start) / 60:g} min: {rows[-1]['events']:,} events, "
                f"{rows[-1]['dedup_ids']:,} dedup ids, RSS {rows[-1]['rss_mib']:.1f} MiB"
            )
            next_row += every
        if restore_at is not None and clock >= restore_at:
            path = Path(tempfile.gettempdir()) / f"window-memory-{os.getpid()}.snapshot"
            path.write_bytes(window.checkpoint())
            state = {
                "rows": rows,
                "consumed": consumed,
                "clock": clock,
                "next": [next_tick, next_row, next_checkpoint],
            }
            path.with_suffix(".json").write_text(json.dumps(state))
            log(f"{(clock - start) / 60:.2f} min: replacing the process (restore from {path})")
            sys.stdout.flush()
            script = str(Path(__file__).resolve())
            os.execv(sys.executable, [sys.executable, script, *sys.argv[1:], "--resume", str(path)])
        if clock >= end:
            break
    print(table(rows))
    if args.tracemalloc and base_snapshot is not None and snapshots:
        print(f"\nLive memory growth by line, +{args.warmup:g} s -> end (tracemalloc):")
        print(growth_by_line(base_snapshot, snapshots[-1][1], args.top))
        print("\nLive memory by file (KiB):")
        for at, snapshot in snapshots:
            print(f"  {at / 60:g} min: {by_file(snapshot)}")
    if args.json:
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dedup memory and checkpoint cost, version 1 (sets + base64 JSON) against version 2 (numpy +
binary), side by side in one run.

    python benchmarks/checkpoint_cost.py                    # 0.6M and 3.6M ids, 5 repeats
    python benchmarks/checkpoint_cost.py --ids 600000 --repeats 3

The ids are what the soak's two window actors hold: 0.6M after 10 minutes at 1,000 events/s,
3.6M at the 1-hour horizon. They are split over two actors and two hours of event time. For each
total it reports, old and new:

  - dedup bytes per id: memory held by the filter (tracemalloc, which sees numpy's buffers too);
  - admit speed: real fleet events (fresh ids, timestamps in the filled hour) in batches of 50
    (a 100-message ingest batch split over two actors) into a filter already holding its share,
    first copies and then the same events again (all duplicates);
  - checkpoint encode: both actors' window blobs (``WindowActor.checkpoint``) plus the file
    (``Checkpoint.encode``; for version 2 ``encode_parts``, which the store writes without joining
    them), and the file's size; a realistic pane store (two hours of fleet events) rides along;
  - restore: decoding the file and every blob back into filters (what a restore pays).

The version-1 code is copied below from commit 0aaffcc (``reducer/dedup.py``,
``WindowActor.checkpoint``, ``Checkpoint.encode``). Timings are medians of ``--repeats`` rounds,
old and new interleaved (a, b, a, b, ...) so a shared machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import common as c
import numpy as np

from models.events import CodegenEvent
from models.metrics import EnumMetricsWindow
from models.settings import ReducerSettings
from reducer.dedup import DedupFilter
from reducer.nodes.checkpoint import Checkpoint
from reducer.nodes.window import decode_snapshot, encode_snapshot
from reducer.panes import PaneStore
from reducer.watermark import WatermarkTracker
from reducer.windows import hour_start

HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)
ACTORS = 2
HOURS = 2
ADMIT_EVENTS = 20_000
ADMIT_BATCH = 50
TOPIC = "bench.codegen.stage_completed.v1"

# -- version 1, as of commit 0aaffcc ---------------------------------------------------------------

_MASK = (1 << 64) - 1


def _id_key(event: CodegenEvent) -> int:
    value = event.event_id.int
    return ((value >> 64) ^ value) & _MASK


class OldDedup:
    def __init__(self, horizon_seconds: float) -> None:
        self.horizon = timedelta(seconds=horizon_seconds)
        self.hours: dict[datetime, set[int]] = {}
        self.dropped = 0

    def admit(self, events: Sequence[CodegenEvent]) -> list[CodegenEvent]:
        fresh: list[CodegenEvent] = []
        for event in events:
            hour = hour_start(event.timestamp)
            seen = self.hours.get(hour)
            if seen is None:
                seen = self.hours[hour] = set()
            key = _id_key(event)
            if key in seen:
                self.dropped += 1
                continue
            seen.add(key)
            fresh.append(event)
        return fresh

    def to_obj(self) -> dict:
        return {
            "dropped": self.dropped,
            "hours": {
                hour.isoformat(): base64.b64encode(
                    np.fromiter(ids, dtype=np.uint64, count=len(ids)).tobytes()
                ).decode()
                for hour, ids in self.hours.items()
            },
        }

    @classmethod
    def from_obj(cls, obj: dict, horizon_seconds: float) -> OldDedup:
        dedup = cls(horizon_seconds)
        dedup.dropped = int(obj["dropped"])
        for hour, data in obj["hours"].items():
            ids = np.frombuffer(base64.b64decode(data), dtype=np.uint64).tolist()
            dedup.hours[datetime.fromisoformat(hour)] = set(ids)
        return dedup


def old_window_blob(body: dict[str, Any], dedup: OldDedup) -> bytes:
    return zlib.compress(
        json.dumps({**body, "dedup": dedup.to_obj()}, separators=(",", ":")).encode(), 1
    )


def old_file(checkpoint: Checkpoint) -> bytes:
    body = {
        "sequence": checkpoint.sequence,
        "epoch": checkpoint.epoch,
        "offsets": [[t, p, o] for (t, p), o in sorted(checkpoint.offsets.items())],
        "windows": [base64.b64encode(w).decode() for w in checkpoint.windows],
        "revisions": checkpoint.revisions,
        "history": checkpoint.history,
        "created_at": checkpoint.created_at,
    }
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    return b"CMCK" + bytes([1]) + zlib.crc32(payload).to_bytes(4, "big") + payload


# -- filling -------------------------------------------------------------------------------------


def random_ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64)


def fill_old(ids: np.ndarray) -> OldDedup:
    dedup = OldDedup(3600)
    for h, part in enumerate(np.array_split(ids, HOURS)):
        dedup.hours[HOUR0 + timedelta(hours=h)] = set(part.tolist())
    return dedup


def fill_new(ids: np.ndarray) -> DedupFilter:
    dedup = DedupFilter(3600)
    base = (HOUR0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1)
    step = 1000
    for h, part in enumerate(np.array_split(ids, HOURS)):
        for start in range(0, len(part), step):
            dedup.admit_keys(
                part[start : start + step], [base + h] * len(part[start : start + step])
            )
    return dedup


def held_bytes(build: Callable[[], Any]) -> tuple[Any, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return built, held


# -- inputs ----------------------------------------------------------------------------------------


def event_pools(rounds: int) -> list[list[CodegenEvent]]:
    """``rounds`` lists of real fleet events with fresh ids, in the last filled hour."""
    pool = c.parse_lines(c.fleet_lines(ADMIT_EVENTS // 9 + 50, seed=3))[:ADMIT_EVENTS]
    hour = HOUR0 + timedelta(hours=HOURS - 1)
    return [
        [
            e.model_copy(
                update={
                    "event_id": uuid.uuid4(),
                    "timestamp": hour + timedelta(seconds=i * 3600 / len(pool)),
                }
            )
            for i, e in enumerate(pool)
        ]
        for _ in range(rounds)
    ]


def pane_body(events: Sequence[CodegenEvent]) -> dict[str, Any]:
    """Store and tracker of a window actor that applied ``events`` (the non-dedup part)."""
    store = PaneStore(ReducerSettings(), list(EnumMetricsWindow))
    store.apply(list(events), None)
    tracker = WatermarkTracker(60, 30)
    tracker.observe((TOPIC, 0), max(e.timestamp for e in events), time.time())
    return {"store": store.to_obj(), "tracker": tracker.to_obj(), "events_applied": len(events)}


# -- measuring -------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def measure(total: int, repeats: int, pools: list[list[CodegenEvent]], body: dict) -> dict:
    per_actor = total // ACTORS
    shares = [random_ids(per_actor, seed=10 + a) for a in range(ACTORS)]
    c.log(f"{total:,} ids: filling")
    old_filters, old_held = zip(*(held_bytes(lambda s=s: fill_old(s)) for s in shares), strict=True)
    new_filters, new_held = zip(*(held_bytes(lambda s=s: fill_new(s)) for s in shares), strict=True)
    result: dict[str, Any] = {
        "ids": total,
        "old_bytes_per_id": sum(old_held) / total,
        "new_bytes_per_id": sum(new_held) / total,
        "new_id_storage_bytes_per_id": sum(f.nbytes for f in new_filters) / total,
    }
    times: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    def batches(events: list[CodegenEvent]) -> list[list[CodegenEvent]]:
        return [events[i : i + ADMIT_BATCH] for i in range(0, len(events), ADMIT_BATCH)]

    sizes: dict[str, int] = {}
    for r in range(repeats):
        c.log(f"{total:,} ids: round {r + 1}/{repeats}")
        for side, filt in (("old", old_filters[0]), ("new", new_filters[0])):
            chunks = batches(pools[2 * r + (side == "new")])
            seconds, kept = timed(lambda f=filt, b=chunks: sum(len(f.admit(x)) for x in b))
            assert kept == ADMIT_EVENTS, (side, kept)
            add(f"{side}_admit_fresh", seconds)
            seconds, kept = timed(lambda f=filt, b=chunks: sum(len(f.admit(x)) for x in b))
            assert kept == 0, (side, kept)
            add(f"{side}_admit_dupes", seconds)
        for side in ("old", "new"):
            filters = old_filters if side == "old" else new_filters
            if side == "old":
                seconds, blobs = timed(lambda fs=filters: [old_window_blob(body, f) for f in fs])
            else:
                seconds, blobs = timed(lambda fs=filters: [encode_snapshot(body, f) for f in fs])
            add(f"{side}_blobs", seconds)
            checkpoint = Checkpoint(
                sequence=r,
                epoch=1,
                offsets={(TOPIC, p): 10**6 for p in range(4)},
                windows=blobs,
                revisions={},
                history=[],
                created_at=time.time(),
            )
            if side == "old":
                seconds, data = timed(lambda k=checkpoint: old_file(k))
                sizes[side] = len(data)
            else:
                seconds, parts = timed(checkpoint.encode_parts)
                data = b"".join(parts)
                sizes[side] = len(data)
            add(f"{side}_file", seconds)
            if side == "old":

                def restore(d: bytes = data) -> list[OldDedup]:
                    out = []
                    for blob in Checkpoint.decode(d).windows:
                        obj = json.loads(zlib.decompress(blob))
                        out.append(OldDedup.from_obj(obj["dedup"], 3600))
                    return out
            else:

                def restore(d: bytes = data) -> list[DedupFilter]:
                    return [decode_snapshot(b, 3600)[1] for b in Checkpoint.decode(d).windows]

            seconds, restored = timed(restore)
            held = sum(
                f.tracked if isinstance(f, DedupFilter) else sum(map(len, f.hours.values()))
                for f in restored
            )
            assert held == ACTORS * per_actor + ADMIT_EVENTS * (r + 1), (side, held)
            add(f"{side}_restore", seconds)
            del data, blobs, restored
    for name, values in times.items():
        result[name + "_s"] = statistics.median(values)
        result[name + "_all_s"] = values
    result["old_file_bytes"] = sizes["old"]
    result["new_file_bytes"] = sizes["new"]
    return result


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        n = r["ids"]

        def pair(key: str, scale: float = 1000.0, fmt: str = ",.0f", r: dict = r) -> str:
            return f"{r['old_' + key] * scale:{fmt}} / {r['new_' + key] * scale:{fmt}}"

        rows += [
            [f"{n:,}", "dedup bytes per id", pair("bytes_per_id", 1, ".1f")],
            [
                f"{n:,}",
                f"admit, first copies (k events/s, batches of {ADMIT_BATCH})",
                f"{ADMIT_EVENTS / r['old_admit_fresh_s'] / 1000:,.0f} / "
                f"{ADMIT_EVENTS / r['new_admit_fresh_s'] / 1000:,.0f}",
            ],
            [
                f"{n:,}",
                "admit, all duplicates (k events/s)",
                f"{ADMIT_EVENTS / r['old_admit_dupes_s'] / 1000:,.0f} / "
                f"{ADMIT_EVENTS / r['new_admit_dupes_s'] / 1000:,.0f}",
            ],
            [f"{n:,}", "encode: 2 window blobs (ms)", pair("blobs_s")],
            [f"{n:,}", "encode: checkpoint file (ms)", pair("file_s")],
            [
                f"{n:,}",
                "encode: total (ms)",
                f"{(r['old_blobs_s'] + r['old_file_s']) * 1000:,.0f} / "
                f"{(r['new_blobs_s'] + r['new_file_s']) * 1000:,.0f}",
            ],
            [
                f"{n:,}",
                "checkpoint file (MiB)",
                f"{r['old_file_bytes'] / c.MIB:.1f} / {r['new_file_bytes'] / c.MIB:.1f}",
            ],
            [f"{n:,}", "restore: decode file + filters (ms)", pair("restore_s")],
        ]
    return c.markdown_table(["ids held", "measure", "old (v1) / new (v2)"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, nargs="+", default=[600_000, 3_600_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    c.log("building events")
    pools = event_pools(2 * args.repeats)
    body = pane_body(pools[0][: ADMIT_EVENTS // 2])
    load_before = os.getloadavg()[0]
    results = [measure(n, args.repeats, pools, body) for n in args.ids]
    load_after = os.getloadavg()[0]
    print(table(results))
    print(
        f"\nMedians of {args.repeats} rounds; 1-minute load {load_before:.1f} before, "
        f"{load_after:.1f} after. Bytes per id: tracemalloc of the filled filters."
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = c.REPO / "benchmarks" / "results" / f"checkpoint-cost-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "checkpoint_cost",
                "args": vars(args),
                "machine": c.machine_info(),
                "load": [load_before, load_after],
                "results": results,
            },
            indent=1,
        )
    )
    c.log(f"raw: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

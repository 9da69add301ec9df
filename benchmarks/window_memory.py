"""Memory of one window actor's state, on the real ``WindowNode``, without Ray or Kafka.

    python benchmarks/window_memory.py                   # 100,000 events per fleet, seconds
    python benchmarks/window_memory.py --events 1000000

Raw messages of the simulated fleet go through ``WindowNode.apply`` in batches of 1000, each
followed by ``collect`` (a coordinator tick takes the deltas and lets the dedup filter forget
hours behind watermark - horizon); nothing is released, so every pane stays open, as when the
coordinator falls behind. Two fleets: dense (2 workflows/s, thousands of events a pane, past
every exact cap) and sparse (one workflow every 200 s: a pane an hour of a few events, weeks of
them). tracemalloc counts every live byte the node holds afterwards (numpy's buffers included).

  per dedup id     ``DedupFilter.nbytes`` / ids tracked, beside a Python set of the same 64-bit
                   keys (the obvious way to hold them), built and measured in the same run;
  per open pane    the rest of the node's bytes / open hourly panes (their roll-ups included).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from itertools import islice
from typing import Any

import common as c

from cli.simulator import fleet_json_lines
from models.decode import decode_batch
from models.settings import PipelineSettings, ReducerSettings
from reducer.dedup import id_key
from reducer.nodes.messages import SourceRange, WindowBatch
from reducer.nodes.window import WindowNode
from reducer.windows import hour_start

FLEETS = {"dense": 2.0, "sparse": 0.005}
"""Workflows per second of event time (about 9.7 events a workflow)."""


def traced(build: Any) -> tuple[Any, int]:
    """What ``build()`` returns, and the bytes still allocated since it began."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return made, held


def measure(lines: list[bytes]) -> dict[str, Any]:
    batches = [
        WindowBatch((0, seq), batch, [0] * len(batch), [SourceRange("t", 0, seq, seq)])
        for seq, batch in enumerate(c.batches(lines))
    ]
    now = time.time()

    def fill() -> WindowNode:
        node = WindowNode(0, ReducerSettings(), PipelineSettings())
        for batch in batches:
            node.apply(batch, now)
            node.collect(now)
        return node

    node, held = traced(fill)
    stats = node.stats(now)
    tracked, dedup = stats.dedup_ids_tracked, node.dedup.nbytes
    # The same ids as a set: decoded here, outside the measurement, for the kept hours only.
    kept = set(node.dedup.hours())
    keys = [
        id_key(e)
        for batch in c.batches(lines)
        for e in decode_batch(batch).events
        if hour_start(e.timestamp) in kept
    ]
    ids, set_bytes = traced(lambda: set(keys))
    assert len(ids) == tracked, (len(ids), tracked)
    return {
        "events": stats.events_applied,
        "panes": stats.open_panes,
        "rollups": stats.open_rollups,
        "tracked": tracked,
        "dedup_per_id": dedup / max(tracked, 1),
        "set_per_id": set_bytes / max(tracked, 1),
        "pane_kib": (held - dedup) / max(stats.open_panes, 1) / 1024,
        "held_mib": held / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="per fleet")
    args = parser.parse_args()
    rows = []
    for name, per_second in FLEETS.items():
        c.log(f"{name}: {args.events:,} events at {per_second:g} workflows/s")
        fleet = fleet_json_lines(10**9, seed=5, workflows_per_second=per_second)
        m = measure(list(islice(fleet, args.events)))
        rows.append(
            (
                name,
                f"{m['events']:,}",
                f"{m['held_mib']:.1f}",
                f"{m['tracked']:,}",
                f"{m['dedup_per_id']:.1f} B",
                f"{m['set_per_id']:.1f} B",
                c.ratio(m["dedup_per_id"] / m["set_per_id"]),
                f"{m['panes']:,} (+{m['rollups']:,} roll-ups)",
                f"{m['pane_kib']:,.1f} KiB",
            )
        )
    headers = ["fleet", "events", "node MiB", "dedup ids", "per id", "set of ids, per id"]
    print(c.table([*headers, "ours / set", "open panes", "per pane"], rows))
    print(f"\n{c.machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

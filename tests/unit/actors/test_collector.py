"""An actor's garbage collector stays off the per-batch path and still collects cycles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# In a child process: the collector's settings are for the whole process.
CHILD = """
import gc, json, sys, weakref
from actors.collector import collector_stats, settle_collector

settle_collector(int(sys.argv[1]))
settled = collector_stats()

def batch():
    # One decoded batch's transient objects: 1,000 events of ten containers each, alive together.
    return [[{"i": i, "j": [j]} for j in range(5)] for i in range(1_000)]

before = collector_stats()["collections"]
for _ in range(20):
    batch()
transient = collector_stats()["collections"] - before

class Node:
    pass

refs = []
for _ in range(120_000):
    node = Node()
    node.me = node  # a cycle: reference counting alone never frees it
    refs.append(weakref.ref(node))
del node
freed = sum(ref() is None for ref in refs)

gc.collect()
print(json.dumps({"settled": settled, "transient": transient, "freed": freed,
                  "after": collector_stats()}))
"""


def run(threshold: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threshold)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_settled_collector_skips_batches_and_freezes_the_start_up_heap() -> None:
    default = run(0)
    settled = run(50_000)
    assert default["settled"]["thresholds"][0] == 700
    assert default["settled"]["frozen"] == 0
    assert settled["settled"]["thresholds"] == [50_000, *default["settled"]["thresholds"][1:]]
    assert settled["settled"]["frozen"] > 1_000  # the imported modules' objects
    # Python's default collects many times per batch; the settled collector not once.
    assert default["transient"] >= 20
    assert settled["transient"] == 0


def test_settled_collector_still_frees_cyclic_garbage_on_its_own() -> None:
    settled = run(50_000)
    # 120,000 cyclic objects (plus their weak references) pass the threshold at least twice;
    # every collection frees the cycles made before it, without an explicit gc.collect().
    assert settled["freed"] >= 50_000
    assert settled["after"]["collections"] >= 3
    assert settled["after"]["seconds"] > 0

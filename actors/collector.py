"""Python's cyclic garbage collector in a long-lived actor process: off the per-batch path.

With CPython's defaults (a collection of the young generation every 700 net allocations of
container objects) a window actor decoding a batch of 1,000 events (about ten tracked objects
each) collects several times per batch. Each collection promotes the batch's still-referenced
events to older generations, where they count towards a full collection; and a full collection
walks every object in the process: Ray's, gRPC's and pydantic's module objects as well as the
panes. Measured in the pipeline (the commit that added this module has the run): full
collections took 70 ms each and 2.6 of the 3.3 s a window actor spent in the collector per
500,000 events, about a third of its CPU time, while finding some 30 cyclic objects.

``settle_collector`` does what long-running CPython services commonly do (gc.freeze's documented
use; Instagram's write-up): collect once, freeze what is alive after start-up (imported modules,
settings, a restored state) into the permanent generation that collections skip, and raise the
young threshold above one batch's transient objects, so those die by reference counting before
any collection sees them. Cycles are still collected: cyclic garbage is never freed by reference
counting, so it keeps adding to the young count until a collection runs. Frozen objects are
still freed by reference counting when released.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_paused: dict[str, Any] = {"seconds": 0.0, "collections": 0, "frozen": 0, "started": None}
"""``frozen`` is counted once, at the freeze: ``gc.get_freeze_count()`` walks the permanent
generation (milliseconds in a Ray worker: 2.6-3.7% of an actor's py-spy samples while its stats were
polled every 20 ms)."""


def _time_collections(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _paused["started"] = time.perf_counter()
    elif _paused["started"] is not None:
        _paused["seconds"] += time.perf_counter() - _paused["started"]
        _paused["collections"] += 1
        _paused["started"] = None


def settle_collector(young_threshold: int) -> None:
    """Freeze the start-up heap and set the young generation's threshold (the older
    generations' stay Python's). 0 leaves the collector as Python configured it. Either way the
    time spent collecting is counted from now on (``collector_stats``)."""
    if _time_collections not in gc.callbacks:
        gc.callbacks.append(_time_collections)
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _paused["frozen"] = gc.get_freeze_count()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def collector_stats() -> dict[str, Any]:
    """Seconds spent collecting and collections run since ``settle_collector``; the thresholds
    and the number of frozen objects."""
    return {
        "seconds": round(_paused["seconds"], 6),
        "collections": _paused["collections"],
        "thresholds": list(gc.get_threshold()),
        "frozen": _paused["frozen"],
    }

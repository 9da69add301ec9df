"""WindowActor: the Ray shell around a WindowNode (reducer/nodes/window.py).

It adds only what needs Ray: the actor itself, the wall clock, and metrics exported to Ray's
dashboard. Calls run one at a time, in the order each caller sent them, so a collect or a
checkpoint sees exactly the batches applied before it.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime

import ray

from actors.allocator import fix_mmap_threshold
from actors.collector import collector_stats, settle_collector
from actors.telemetry import WindowMetrics
from models.dead_letter import DeadLetterCategory
from models.settings import PipelineSettings, ReducerSettings
from reducer.nodes.messages import Applied, Collected, WindowBatch
from reducer.nodes.stats import WindowStats
from reducer.nodes.window import WindowNode, describe
from reducer.panes import WindowKey

log = logging.getLogger(__name__)
CRASH_MARKER_VARIABLE = "CODEGEN_METRICS_TEST_CRASH_MARKER"
"""Tests only (unset in production): a message holding this variable's bytes ends the actor's
process at once, as a native crash would, to exercise the quarantine
(reducer/nodes/quarantine.py). Read in the actor's process: Ray may ship the class with the
driver's module globals."""


@ray.remote
class WindowActor:
    def __init__(
        self,
        index: int,
        reducer: ReducerSettings,
        pipeline: PipelineSettings,
        restore: list[bytes] | None = None,
    ) -> None:
        fix_mmap_threshold()  # the dedup arrays would fragment the heap (actors/allocator.py)
        self.node = WindowNode(index, reducer, pipeline, restore or (), time.time())
        settle_collector(pipeline.gc_young_threshold)  # after the restore: frozen with the rest
        self.metrics = WindowMetrics.create(f"window-{index}")
        self.crash_marker = os.environ.get(CRASH_MARKER_VARIABLE, "").encode()

    def apply(self, batch: WindowBatch) -> Applied:
        if self.crash_marker and any(self.crash_marker in value for value in batch.values):
            os._exit(70)
        began = time.time()
        try:
            applied = self.node.apply(batch, began)
        except Exception as exc:  # a defect outside the isolated fold: set the batch aside
            log.exception("window-%d could not apply batch %s", self.node.index, batch.batch_id)
            self.node.error = describe(exc)
            reason = f"batch failed: {describe(exc)}"
            category = DeadLetterCategory.PROCESSING_ERROR
            return Applied(rejects=[(i, category, reason) for i in range(len(batch.values))])
        if applied.applied:
            self.metrics.events.inc(applied.applied)
        self.metrics.apply_ms.observe((time.time() - began) * 1000)
        return applied

    def collect(self, full: bool = False) -> Collected:
        now = time.time()
        collected = self.node.collect(now, full)
        if collected.watermark is not None:
            self.metrics.lag.set(now - collected.watermark.timestamp())
        return collected

    def release(self, horizon: datetime) -> None:
        self.node.release(horizon)

    def snapshot(self, key: WindowKey) -> bytes:
        return self.node.partial(key)

    def checkpoint(self) -> bytes:
        return self.node.snapshot()

    def stats(self) -> WindowStats:
        stats = self.node.stats(time.time())
        stats.node_id = ray.get_runtime_context().get_node_id()
        stats.gc = collector_stats()
        return stats

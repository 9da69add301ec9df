"""Batches an ingest actor has sent to the window actors and not yet settled.

Each batch is one Ray call per window actor; it is settled (its dead letters produced, its
counts taken) once every window actor has applied it, oldest first, so an ingest actor's
checkpoint position never runs ahead of what the window actors hold.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from reducer.nodes.ingest import Dispatch
from reducer.nodes.messages import Applied


@dataclass
class Sent:
    refs: list[Any]
    """One Ray object ref per window actor: its ``Applied``."""
    dispatch: Dispatch
    began: float
    """Monotonic time it was sent."""


class InFlight:
    """At most ``limit`` batches out; ``add`` blocks (settling the oldest) beyond that."""

    def __init__(self, limit: int, settle: Callable[[Sent, list[Applied]], None]) -> None:
        self.limit = limit
        self.settle = settle
        self.batches: deque[Sent] = deque()

    def __len__(self) -> int:
        return len(self.batches)

    def add(self, refs: list[Any], dispatch: Dispatch) -> None:
        self.batches.append(Sent(refs, dispatch, time.monotonic()))
        while len(self.batches) >= self.limit:
            self.reap(block=True)

    def reap(self, block: bool) -> None:
        """Settle the oldest batches every window actor has applied, in order; ``block``: wait
        for the oldest one at least."""
        while self.batches:
            batch = self.batches[0]
            if not block:
                ready, _ = ray.wait(batch.refs, num_returns=len(batch.refs), timeout=0)
                if len(ready) < len(batch.refs):
                    break
            self.settle(batch, ray.get(batch.refs))
            self.batches.popleft()
            block = False

    def drain(self) -> None:
        """Settle every batch, oldest first. A batch whose window actor died stays listed (it
        is what the driver asks for: reducer/nodes/quarantine.py)."""
        while self.batches:
            batch = self.batches[0]
            self.settle(batch, ray.get(batch.refs))
            self.batches.popleft()

"""Quarantine: a message that kills a window actor's process is dead-lettered, not replayed
into the same crash forever.

Python-level failures are isolated where they happen (a batch is bisected, see window.py), but a
message can also take the whole process down (a native crash, memory exhausted). The supervisor
then rebuilds from the checkpoint, the ingest actors read the same offsets again, and the actor
dies again. The driver keeps this book across rebuilds:

1. when a window actor died, every offset in flight to it counts one death (a batch of 1,000
   messages: all of them);
2. a suspect (one death or more) is sent alone, with nothing else in flight, so the next death
   names exactly one offset;
3. an offset in flight at ``threshold`` deaths (3) is dead-lettered as ``processing_error``.

A poison message thus costs three rebuilds (with the supervisor's backoff, 2 + 4 + 8 s), and
the suspects of its batch a few milliseconds each while they are sent one by one. The book
lives in the driver: a new driver starts it empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

Offset = tuple[str, int, int]
"""(topic, partition, offset) of one input message."""
DEATHS_TO_QUARANTINE = 3


class Quarantine:
    def __init__(self, threshold: int = DEATHS_TO_QUARANTINE) -> None:
        self.threshold = threshold
        self.deaths: Counter[Offset] = Counter()

    def record(self, in_flight: Iterable[Offset]) -> None:
        """A window actor died with these offsets in flight to it."""
        self.deaths.update(set(in_flight))

    def careful(self) -> frozenset[Offset]:
        """Offsets to send alone: in flight at a death, not yet quarantined."""
        return frozenset(o for o, n in self.deaths.items() if n < self.threshold)

    def quarantined(self) -> dict[Offset, int]:
        """Offsets to dead-letter unread, with their deaths."""
        return {o: n for o, n in self.deaths.items() if n >= self.threshold}

"""HistoryView: the closed windows /history serves, newest first, per window type.

A read model of the metrics topic: only finals are kept, one per window (the latest revision),
at most ``size`` per window type. It is checkpointed with the coordinator, and rebuilt from the
metrics topic when a coordinator starts without one (``absorb``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from typing import Any

from models.metrics import EnumMetricsWindow


class HistoryView:
    def __init__(self, windows: Iterable[EnumMetricsWindow], size: int) -> None:
        self._by_type: dict[str, deque[dict[str, Any]]] = {
            EnumMetricsWindow(w).value: deque(maxlen=size) for w in windows
        }
        self._finals: dict[str, dict[str, Any]] = {}
        """Finals read back from the topic by ``absorb``, not yet ``settle``d in."""

    def __bool__(self) -> bool:
        return any(self._by_type.values())

    def remember(self, payload: dict[str, Any]) -> None:
        """A published final (a ModelEventMetricsRecorded as JSON values)."""
        held = self._by_type.get(payload.get("aggregation_type", ""))
        if held is not None and all(p["window_id"] != payload["window_id"] for p in held):
            held.append(payload)

    def absorb(self, value: bytes | None) -> None:
        """One message of the metrics topic, read back from its start: finals only, the latest
        revision per window. Anything else (junk included) is skipped: not ours to judge here,
        the topic's consumers see it too."""
        try:
            payload = json.loads(value or b"null")
        except ValueError:
            return
        if not (isinstance(payload, dict) and payload.get("is_final") and "window_id" in payload):
            return
        seen = self._finals.get(payload["window_id"])
        if seen is None or payload.get("revision", 0) >= seen.get("revision", 0):
            self._finals[payload["window_id"]] = payload

    def settle(self) -> None:
        """Take in what ``absorb`` read, oldest window first."""
        for payload in sorted(self._finals.values(), key=lambda p: p.get("window_start", "")):
            self.remember(payload)
        self._finals.clear()

    def recent(self, window: str, limit: int) -> list[dict[str, Any]]:
        """The most recent closed windows of a type, newest first."""
        return list(self._by_type.get(window, ()))[::-1][:limit]

    def entries(self) -> list[dict[str, Any]]:
        """Every kept final (for a checkpoint)."""
        return [payload for held in self._by_type.values() for payload in held]

"""The supervisor's decisions: how healthy the pipeline is, and what to rebuild, and when.

Plain functions and one small stateful class over the actors' typed stats (None for an actor
that did not answer), with time passed in; the driver (actors/pipeline.py) asks every few
seconds and carries out the decision.

Rules, with ``stall_s`` = ``serve.stall_seconds``:
- unhealthy (HTTP 503): the coordinator or a window actor is down; an ingest actor is down, its
  loop has stopped, or it has not polled Kafka for ``stall_s``; the coordinator has not completed
  a tick for ``stall_s``. Each of these stops some metrics from flowing or closing;
- degraded (HTTP 200): metrics flow, but the intent executor is down or failing, the last tick or
  checkpoint failed, windows were set aside, or dead letters could not be written;
- rebuild from the latest checkpoint on anything unhealthy; restart a dead intent executor alone
  (it keeps no state); rebuild with the consumer group reset when input partitions have had no
  owner for ``assignment_stall_seconds`` while consumers run.
Repeated rebuilds back off exponentially (2 s doubling to 5 minutes), so a cause a rebuild
cannot fix (a broker outage) does not churn the cluster; the backoff resets after a healthy
check.

Reasons are short categories, never tracebacks or addresses: /health is open to load balancers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reducer.nodes.stats import IngestStats, PipelineStats

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 300.0


def unhealthy_reasons(stats: PipelineStats, stall_s: float) -> list[str]:
    """Why metrics have stopped flowing (or closing), one short reason per cause."""
    reasons: list[str] = []
    coordinator = stats.coordinator
    if coordinator is None:
        reasons.append("coordinator is down")
    elif (coordinator.seconds_since_tick or 0.0) > stall_s:
        reasons.append(f"coordinator has not ticked for {coordinator.seconds_since_tick:.0f} s")
    down = sum(w is None for w in stats.windows)
    if down:
        reasons.append(f"{down} window actor(s) down")
    for index, ingest in enumerate(stats.ingest):
        if ingest is None:
            reasons.append(f"ingest-{index} is down")
        elif not ingest.running:
            reasons.append(f"ingest-{index} has stopped consuming")
        elif (ingest.seconds_since_poll or 0.0) > stall_s:
            reasons.append(
                f"ingest-{index} has not polled Kafka for {ingest.seconds_since_poll:.0f} s"
            )
    return reasons


def degraded_reasons(stats: PipelineStats) -> list[str]:
    """What is wrong while metrics still flow."""
    reasons: list[str] = []
    executor, coordinator = stats.intent_executor, stats.coordinator
    if executor is None:
        reasons.append("intent executor is down")
    elif executor.error:
        reasons.append("intent executor has stopped")
    if coordinator is not None:
        if coordinator.error:
            reasons.append("last tick failed")
        if coordinator.checkpoint_error:
            reasons.append("last checkpoint failed")
        if coordinator.windows_set_aside:
            reasons.append(f"{coordinator.windows_set_aside} window update(s) set aside")
    unwritten = sum(i.set_aside_failures for i in stats.ingest if i is not None)
    if unwritten:
        reasons.append(f"{unwritten} dead letter(s) could not be written")
    return reasons


def evaluate_health(stats: PipelineStats, stall_s: float) -> tuple[str, list[str]]:
    """(status, reasons): unhealthy reasons first, then degraded ones."""
    unhealthy = unhealthy_reasons(stats, stall_s)
    degraded = degraded_reasons(stats)
    status = UNHEALTHY if unhealthy else DEGRADED if degraded else HEALTHY
    return status, unhealthy + degraded


def unowned_partitions(ingest: list[IngestStats | None]) -> list[str]:
    """Input partitions that no running ingest actor owns: each actor lists every partition of
    the input topics it knows of and those assigned to it."""
    known: set[str] = set()
    owned: set[str] = set()
    for stats in ingest:
        if stats is None:
            continue
        known.update(stats.partitions)
        if stats.running:
            owned.update(stats.assigned)
    return sorted(known - owned)


class Action(StrEnum):
    NONE = "none"
    REBUILD = "rebuild"
    """Kill the graph and rebuild it from the latest checkpoint."""
    RESET_GROUP = "reset_group"
    """Rebuild with the consumer group deleted and the checkpoint's offsets committed to it."""
    RESTART_EXECUTOR = "restart_executor"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""


class Supervisor:
    """Decides from one round of stats; remembers how long partitions have been unowned and
    how often it has rebuilt lately."""

    def __init__(self, stall_s: float, assignment_stall_s: float) -> None:
        self.stall_s = stall_s
        self.assignment_stall_s = assignment_stall_s
        self.unowned_since: float | None = None
        self.backoff_s = 0.0
        self.next_rebuild_at = 0.0

    def decide(self, stats: PipelineStats, now: float) -> Decision:
        """What to do now (``now``: a monotonic clock, seconds)."""
        unhealthy = unhealthy_reasons(stats, self.stall_s)
        if unhealthy:
            return self._rebuild(Action.REBUILD, "; ".join(unhealthy), now)
        if stats.intent_executor is None or stats.intent_executor.error:
            return Decision(Action.RESTART_EXECUTOR, "intent executor is down")
        unowned = unowned_partitions(stats.ingest)
        if not unowned:
            self.unowned_since = None
            self.backoff_s = 0.0
            return Decision(Action.NONE)
        if self.unowned_since is None:
            self.unowned_since = now
        stalled = now - self.unowned_since
        if stalled < self.assignment_stall_s:
            return Decision(Action.NONE)
        self.unowned_since = None
        reason = (
            f"{len(unowned)} input partition(s) owned by no ingest actor for {stalled:.0f} s "
            f"(e.g. {unowned[0]})"
        )
        return self._rebuild(Action.RESET_GROUP, reason, now)

    def _rebuild(self, action: Action, reason: str, now: float) -> Decision:
        if now < self.next_rebuild_at:
            return Decision(Action.NONE, f"waiting to rebuild: {reason}")
        self.backoff_s = min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, 2 * self.backoff_s))
        self.next_rebuild_at = now + self.backoff_s
        return Decision(action, reason)

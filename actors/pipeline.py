"""Start, watch, recover and stop the actor graph:
ingest-i -> window-j -> coordinator -> intent-executor.

Driver-side only. Start restores from the latest checkpoint when there is one. ``supervise()``
(called periodically by the driver) restarts the whole graph from the latest checkpoint when a
window, ingest or coordinator actor has died, and restarts a dead intent executor alone (it keeps
no state: its offsets are committed only after publishing). Stopping follows the data path so
nothing in flight is lost: the coordinator pauses ingestion, publishes once more and takes a final
checkpoint (the ingest actors commit and stop), the intent executor empties the intent topic,
then the actors are killed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import kafka
from actors.checkpoint import CheckpointStore
from actors.coordinator import CoordinatorActor
from actors.ingest import KafkaIngestActor
from actors.intents import IntentExecutorActor
from actors.names import COORDINATOR, INTENT_EXECUTOR, ingest_name, namespace, window_name
from actors.window import WindowActor
from models.settings import Settings
from reducer.nodes.checkpoint import Checkpoint, Source
from reducer.nodes.quarantine import Quarantine
from reducer.nodes.resume import ResumeRefused, group_needs_reset, refusal, resume_problems
from reducer.nodes.stats import IngestStats, PipelineStats
from reducer.nodes.supervisor import Action, Supervisor

log = logging.getLogger(__name__)

#: CPU shares: small fractions so the whole graph fits a 2-core machine.
CPU_INGEST = 0.25
CPU_WINDOW = 0.25
CPU_COORDINATOR = 0.1
CPU_INTENTS = 0.1
PING_TIMEOUT_S = 10.0
START_ATTEMPTS = 8
"""Attempts of a start or restore (backoff 1, 2, 4 ... 30 s: about 2.5 minutes in all)."""
LEAVE_TIMEOUT_S = 8.0


class Pipeline:
    def __init__(self, settings: Settings, intent_producer_overrides: dict | None = None) -> None:
        self.settings = settings
        self.namespace = namespace(settings.instance)
        self.intent_producer_overrides = intent_producer_overrides or {}
        self.store = CheckpointStore(
            settings.checkpoint_location, settings.pipeline.checkpoints_kept
        )
        self.source: Source | None = None
        self.windows: list[Any] = []
        self.ingests: list[Any] = []
        self.coordinator: Any = None
        self.executor: Any = None
        self.started_at: float | None = None
        self.restores = 0
        self.head_node = ""
        self.supervisor = Supervisor(
            settings.serve.stall_seconds, settings.pipeline.assignment_stall_seconds
        )
        self.quarantine = Quarantine()
        """Messages in flight when window actors died, kept across rebuilds."""

    def _placement(self) -> None:
        """Pin the coordinator (and so the checkpoint directory) to this driver's node, the head
        when run from it or via ``ray job submit``; size actor counts left at 0 from the cluster."""
        self.head_node = ray.get_runtime_context().get_node_id()
        p = self.settings.pipeline
        cpus = int(ray.cluster_resources().get("CPU", 1))
        ingest = p.ingest_actors or max(1, cpus // 4)
        windows = p.window_actors or max(1, cpus - ingest)
        if (ingest, windows) != (p.ingest_actors, p.window_actors):
            log.info(
                "sized from %d cluster CPUs: %d ingest, %d window actors", cpus, ingest, windows
            )
            pipeline = p.model_copy(update={"ingest_actors": ingest, "window_actors": windows})
            self.settings = self.settings.model_copy(update={"pipeline": pipeline})

    def _on_head(self, soft: bool = False) -> NodeAffinitySchedulingStrategy:
        return NodeAffinitySchedulingStrategy(node_id=self.head_node, soft=soft)

    def _spread(self, index: int) -> NodeAffinitySchedulingStrategy | str:
        """Round-robin over the alive nodes with CPUs. Ray's own "SPREAD" is best effort and
        often packs one node; a node that dies meanwhile makes the start fail and restore()
        retry once Ray has marked it dead."""
        nodes = sorted(
            n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0
        )
        if len(nodes) < 2:
            return "DEFAULT"
        return NodeAffinitySchedulingStrategy(node_id=nodes[index % len(nodes)], soft=False)

    def start(self) -> Pipeline:
        """Check that the latest checkpoint (if any) may be resumed (raises ResumeRefused
        otherwise, or starts over with ``reset_state``), create missing topics, start."""
        self._placement()
        k = self.settings.kafka
        latest = self._resumable()
        created = kafka.ensure_topics(k, kafka.topic_configs(k))
        self.source = Source(
            self.view.cluster_id,
            k.group_id,
            {
                **self.view.partitions,
                **{t: k.topic_partitions for t in created if t in k.input_topics},
            },
        )
        self._bring_up("start", preloaded=(latest,))
        self.started_at = time.time()
        return self

    def _resumable(self) -> Checkpoint | None:
        """The checkpoint to resume from, after checking it against the broker."""
        k, p = self.settings.kafka, self.settings.pipeline
        latest = self.store.latest()
        if p.reset_state:
            moved = self.store.set_aside()
            refused = kafka.reset_to_earliest(k)
            if refused:
                raise ResumeRefused(
                    f"--reset-state: the broker refused to delete consumer group "
                    f"{k.group_id!r} ({refused}); stop its other members first"
                )
            log.warning(
                "reset state: checkpoints %s, consumer group %r starts over from the earliest "
                "retained offsets",
                f"moved to {moved}" if moved else "(none found)",
                k.group_id,
            )
            self.view = kafka.broker_view(k)
            return None
        self.view = kafka.broker_view(k, latest.offsets if latest is not None else ())
        problems = resume_problems(latest, self.view)
        if problems:
            raise refusal(problems, self.store.location, k.group_id, k.bootstrap_servers)
        return latest

    def _start_executor(self) -> Any:
        """Create the intent executor; the reference its start answers on."""
        self.executor = IntentExecutorActor.options(
            name=INTENT_EXECUTOR,
            namespace=self.namespace,
            num_cpus=CPU_INTENTS,
            scheduling_strategy=self._on_head(soft=True),
        ).remote(self.settings.kafka, self.intent_producer_overrides)
        return self.executor.start.remote()

    def _start_graph(self, restored: Checkpoint | None, executor: bool = False) -> None:
        """Create and start the ingest, window and coordinator actors (and the intent executor
        when ``executor``). The ingest actors first, on their own: their consumer-group join
        is the longest step (about 3 s on Tansu or a new Kafka group), and it runs while the
        others start; starting every process at once made each take about 2 s on 2 cores."""
        k, p, r = self.settings.kafka, self.settings.pipeline, self.settings.reducer
        shares: list[list[bytes]] = [[] for _ in range(p.window_actors)]
        if restored is not None:
            # States are mergeable partials: any actor can hold any of them, so a checkpoint
            # taken with a different number of window actors restores just as well.
            for index, state in enumerate(restored.windows):
                shares[index % p.window_actors].append(state)
            log.info(
                "restoring checkpoint %d (epoch %d, %d offsets)",
                restored.sequence,
                restored.epoch,
                len(restored.offsets),
            )
        offsets = restored.offsets if restored is not None else None
        self.ingests = [
            KafkaIngestActor.options(
                name=ingest_name(i), namespace=self.namespace, num_cpus=CPU_INGEST
            ).remote(
                i,
                k,
                p,
                p.window_actors,
                offsets,
                self.quarantine.careful(),
                self.quarantine.quarantined(),
            )
            for i in range(p.ingest_actors)
        ]
        ray.get([a.__ray_ready__.remote() for a in self.ingests])
        starting = [self._start_executor()] if executor else []
        self.windows = [
            WindowActor.options(
                name=window_name(j), namespace=self.namespace, num_cpus=CPU_WINDOW
            ).remote(j, r, p, shares[j])
            for j in range(p.window_actors)
        ]
        self.coordinator = CoordinatorActor.options(
            name=COORDINATOR,
            namespace=self.namespace,
            num_cpus=CPU_COORDINATOR,
            scheduling_strategy=self._on_head(),
        ).remote(k, p, r, self.windows, self.ingests, self.store.location, restored, self.source)
        ray.get(
            [
                *starting,
                self.coordinator.start.remote(),
                *(a.start.remote(self.windows, self.coordinator) for a in self.ingests),
            ]
        )
        if restored is None:
            # An empty checkpoint at once: a crash before the first periodic one then still
            # restores into a new epoch, so republished revisions outrank the lost run's.
            ray.get(self.coordinator.checkpoint.remote())

    def _kill_graph(self) -> None:
        # Consumers leave the group first: killed ones would stay members until their session
        # times out, and the next rebalance could wait on (or elect) a dead member.
        leaving = [actor.leave.remote() for actor in self.ingests]
        if leaving:
            ray.wait(leaving, num_returns=len(leaving), timeout=LEAVE_TIMEOUT_S)
        for actor in (*self.ingests, self.coordinator, *self.windows):
            if actor is not None:
                with contextlib.suppress(Exception):  # already dead
                    ray.kill(actor)
        self.ingests, self.windows, self.coordinator = [], [], None

    # -- watching ------------------------------------------------------------------------------

    @staticmethod
    def _ping(actor: Any) -> Any | None:
        """The actor's stats, or None when it does not answer (dead, or hung)."""
        if actor is None:
            return None
        try:
            return ray.get(actor.stats.remote(), timeout=PING_TIMEOUT_S)
        except Exception:
            return None

    def supervise(self, stats: PipelineStats | None = None) -> str | None:
        """Recover from dead or stalled actors and stuck group rebalances (the rules are
        reducer/nodes/supervisor.py), judging from ``stats`` (asked for when not given);
        returns what was done, or None when all is well."""
        if self.started_at is None:
            return None
        stats = stats or self.stats()
        decision = self.supervisor.decide(stats, time.monotonic())
        if decision.action is Action.REBUILD:
            self._note_deaths(stats)
            try:
                self.restore()
            except Exception as exc:  # every attempt failed: the next round tries again
                log.exception("restore failed")
                return f"{decision.reason}: restore failed ({type(exc).__name__}); will retry"
            return f"{decision.reason}: restored the pipeline from the latest checkpoint"
        if decision.action is Action.RESTART_EXECUTOR:
            ray.get(self._replace_executor())
            return "restarted the intent executor"
        if decision.action is Action.RESET_GROUP:
            try:
                refused = self.restore(reset_group=True)
            except Exception as exc:
                log.exception("restore failed")
                return f"{decision.reason}: restore failed ({type(exc).__name__}); will retry"
            return (
                f"{decision.reason}: restored the pipeline from the latest checkpoint with the "
                "consumer group "
                + (f"kept (the broker refused to delete it: {refused})" if refused else "deleted")
            )
        return None

    def _note_deaths(self, stats: PipelineStats) -> None:
        """Before a rebuild: what was in flight to the window actors that died counts against
        those messages (reducer/nodes/quarantine.py)."""
        dead = [j for j, window in enumerate(stats.windows) if window is None]
        if not dead:
            return
        asked = [actor.in_flight.remote(dead) for actor in self.ingests]
        ready, _ = ray.wait(asked, num_returns=len(asked), timeout=PING_TIMEOUT_S)
        for ref in ready:
            with contextlib.suppress(Exception):  # that ingest actor is gone too
                self.quarantine.record(ray.get(ref))
        quarantined = self.quarantine.quarantined()
        log.warning(
            "window actor(s) %s died: %d message(s) suspect, %d quarantined",
            dead,
            len(self.quarantine.careful()),
            len(quarantined),
        )

    def restore(self, reset_group: bool = False) -> str | None:
        """Kill the graph and rebuild it from the latest checkpoint (see ``_bring_up``).
        ``reset_group``: delete the consumer group in between (the ingest actors have left it)
        and commit the checkpoint's offsets to the new one; returns the broker's reason when it
        refused."""
        refused = self._bring_up("restore", reset_group)
        self.restores += 1
        return refused

    def _bring_up(
        self,
        what: str,
        reset_group: bool = False,
        preloaded: tuple[Checkpoint | None] | None = None,
    ) -> str | None:
        """Start the graph (and a missing or dead intent executor) from the latest checkpoint,
        retrying with backoff (1 s doubling to 30 s, ``START_ATTEMPTS`` attempts) when an actor
        dies meanwhile: a node lost during start-up or a restore, or an actor killed, costs
        another attempt, not the job. Each attempt restores from whatever checkpoint is newest
        then, so an attempt that wrote the first checkpoint before failing is not repeated
        (``preloaded``: the checkpoint a start has just read, for its first attempt)."""
        refused = None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._kill_graph()
                self._await_names_released()
                latest = preloaded[0] if preloaded and attempt == 1 else self.store.latest()
                if group_needs_reset(what, attempt, latest, reset_group):
                    offsets = latest.offsets if latest is not None else {}
                    refused = kafka.reset_group(self.settings.kafka, offsets)
                    if refused:
                        log.warning("could not delete consumer group: %s", refused)
                executor_down = self._ping(self.executor) is None
                if executor_down:
                    self._kill_executor()
                log.info(
                    "%s attempt %d: %s",
                    what,
                    attempt,
                    "empty state" if latest is None else f"checkpoint {latest.sequence}",
                )
                self._start_graph(latest, executor=executor_down)
                return refused
            except Exception as exc:
                if attempt == START_ATTEMPTS:
                    raise
                delay = min(30.0, 2.0 ** (attempt - 1))
                log.warning(
                    "%s attempt %d failed (%s: %s); retrying in %.0f s",
                    what,
                    attempt,
                    type(exc).__name__,
                    str(exc)[:300],
                    delay,
                )
                time.sleep(delay)
        return refused

    def _await_names_released(self) -> None:
        """A killed actor's name is released asynchronously; wait so new ones can take it."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            _exists(name, self.namespace) for name in (COORDINATOR, window_name(0), ingest_name(0))
        ):
            time.sleep(0.1)

    def _replace_executor(self) -> Any:
        """Kill the intent executor (if any) and create a new one; the reference its start
        answers on."""
        self._kill_executor()
        return self._start_executor()

    def _kill_executor(self) -> None:
        if self.executor is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.executor)
            self.executor = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _exists(INTENT_EXECUTOR, self.namespace):
                time.sleep(0.1)

    def stats(self) -> PipelineStats:
        """Every actor's stats, None for one that does not answer."""
        return PipelineStats(
            ingest=[self._ping(a) for a in self.ingests],
            windows=[self._ping(a) for a in self.windows],
            coordinator=self._ping(self.coordinator),
            intent_executor=self._ping(self.executor),
        )

    def stop_ingest(self, index: int) -> IngestStats:
        """Stop one ingest actor cleanly (drain, leave the group)."""
        return ray.get(self.ingests[index].stop.remote())

    def stop(self) -> PipelineStats:
        """Stop along the data path; the final stats (window actors' are not asked for)."""
        self.started_at = None  # no more recoveries
        final = PipelineStats(ingest=[], windows=[], coordinator=None, intent_executor=None)
        try:
            if self.coordinator is not None:
                final.coordinator = ray.get(self.coordinator.stop.remote())
            if self.ingests:
                final.ingest = ray.get([a.stop.remote() for a in self.ingests])
        except ray.exceptions.RayError as exc:  # an actor died: the last checkpoint stands
            log.warning(
                "stopping with a dead actor (%s): state since the last checkpoint "
                "will be replayed on the next start",
                exc,
            )
        if self.executor is not None:
            sent = final.coordinator.intents_published if final.coordinator else 0
            with contextlib.suppress(ray.exceptions.RayError):
                final.intent_executor = ray.get(self.executor.stop.remote(sent))
            with contextlib.suppress(Exception):
                ray.kill(self.executor)
            self.executor = None
        self._kill_graph()
        return final


def _exists(name: str, in_namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=in_namespace)
        return True
    except ValueError:
        return False

"""Start, observe and stop the actor graph: ingest-i -> window-j -> coordinator -> intent-executor.

Driver-side only. Stopping follows the data path so nothing in flight is lost: ingest actors
drain and commit, the coordinator publishes once more, the intent executor empties the intent
topic, then the actors are killed.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from actors import kafka
from actors.coordinator import CoordinatorActor
from actors.ingest import KafkaIngestActor
from actors.intents import IntentExecutorActor
from actors.names import COORDINATOR, INTENT_EXECUTOR, NAMESPACE, ingest_name, window_name
from actors.window import WindowActor
from models.settings import Settings

#: CPU shares: small fractions so the whole graph fits a 2-core machine.
CPU_INGEST = 0.25
CPU_WINDOW = 0.25
CPU_COORDINATOR = 0.1
CPU_INTENTS = 0.1


class Pipeline:
    def __init__(self, settings: Settings, intent_producer_overrides: dict | None = None) -> None:
        self.settings = settings
        self.intent_producer_overrides = intent_producer_overrides or {}
        self.windows: list[Any] = []
        self.ingests: list[Any] = []
        self.coordinator: Any = None
        self.executor: Any = None
        self.started_at: float | None = None

    def start(self) -> Pipeline:
        k, p, r = self.settings.kafka, self.settings.pipeline, self.settings.reducer
        kafka.ensure_topics(
            k, [*k.input_topics, k.intent_topic, k.target_topic, k.dead_letter_topic]
        )
        self.windows = [
            WindowActor.options(
                name=window_name(j), namespace=NAMESPACE, num_cpus=CPU_WINDOW
            ).remote(j, r, p)
            for j in range(p.window_actors)
        ]
        self.coordinator = CoordinatorActor.options(
            name=COORDINATOR, namespace=NAMESPACE, num_cpus=CPU_COORDINATOR
        ).remote(k, p, r, self.windows)
        self.executor = IntentExecutorActor.options(
            name=INTENT_EXECUTOR, namespace=NAMESPACE, num_cpus=CPU_INTENTS
        ).remote(k, self.intent_producer_overrides)
        self.ingests = [
            KafkaIngestActor.options(
                name=ingest_name(i), namespace=NAMESPACE, num_cpus=CPU_INGEST
            ).remote(i, k, p, self.windows)
            for i in range(p.ingest_actors)
        ]
        ray.get([a.start.remote() for a in (self.executor, self.coordinator, *self.ingests)])
        self.started_at = time.time()
        return self

    def stats(self) -> dict[str, Any]:
        return {
            "ingest": ray.get([a.stats.remote() for a in self.ingests]),
            "windows": ray.get([a.stats.remote() for a in self.windows]),
            "coordinator": ray.get(self.coordinator.stats.remote()),
            "intent_executor": ray.get(self.executor.stats.remote()),
        }

    def stop_ingest(self, index: int) -> dict[str, Any]:
        """Stop one ingest actor cleanly (drain, commit, leave the group)."""
        return ray.get(self.ingests[index].stop.remote())

    def stop(self) -> dict[str, Any]:
        final: dict[str, Any] = {}
        if self.ingests:
            final["ingest"] = ray.get([a.stop.remote() for a in self.ingests])
        if self.coordinator is not None:
            final["coordinator"] = ray.get(self.coordinator.stop.remote())
        if self.executor is not None:
            sent = final.get("coordinator", {}).get("intents_published", 0)
            final["intent_executor"] = ray.get(self.executor.stop.remote(sent))
        for actor in (*self.ingests, self.coordinator, self.executor, *self.windows):
            if actor is not None:
                ray.kill(actor)
        self.ingests, self.windows, self.coordinator, self.executor = [], [], None, None
        return final

"""The pipeline's Ray environment (actors/ray_env.py) reaches the workers and does its job: a
batch of raw messages travels inside the actor call, not through the object store."""

from __future__ import annotations

import os
import re
import time

import ray
from ray._private.internal_api import memory_summary

from actors.ray_env import INLINE_ARGUMENT_BYTES, RAY_ENVIRONMENT
from cli.simulator import fleet_json_lines

RAYS_DEFAULT_INLINE_BYTES = 100 * 1024


@ray.remote(num_cpus=0)
class _Holder:
    def environment(self) -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in RAY_ENVIRONMENT}

    def hold(self, messages: list[bytes], seconds: float) -> int:
        time.sleep(seconds)
        return len(messages)


def _objects_in_store() -> int:
    summary = memory_summary(stats_only=True)
    found = re.search(r"Plasma memory usage \S+ MiB, (\d+) objects", summary)
    assert found, summary
    return int(found.group(1))


def test_workers_start_with_the_pipelines_ray_environment(ray_session: None) -> None:
    holder = _Holder.remote()
    try:
        assert ray.get(holder.environment.remote()) == RAY_ENVIRONMENT
    finally:
        ray.kill(holder)


def test_a_batch_of_raw_messages_travels_inside_the_actor_call(ray_session: None) -> None:
    messages = list(fleet_json_lines(60, seed=3))[:500]  # one window actor's share of 1000
    size = sum(map(len, messages))
    assert RAYS_DEFAULT_INLINE_BYTES < size < INLINE_ARGUMENT_BYTES
    holder = _Holder.remote()
    try:
        ray.get(holder.environment.remote())  # started
        before = _objects_in_store()
        call = holder.hold.remote(messages, 2.0)
        during = _objects_in_store()
        assert ray.get(call) == len(messages)
        assert during == before, "the batch went through the object store"
    finally:
        ray.kill(holder)

"""Unit tests run without Ray and without Kafka.

An autouse fixture makes ``ray.init`` and confluent_kafka client construction raise (Ray's own
unit conftest does the same for ``ray.init``). It patches lazily: a module already imported is
patched at once; one imported later, during the test, is patched by an import hook, so the guard
never itself imports Ray (which takes over a second) or Kafka.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

GUARDED: dict[str, tuple[str, ...]] = {
    "ray": ("init",),
    "confluent_kafka": ("Consumer", "Producer"),
}


class TransportUsedInUnitTest(RuntimeError):
    """A unit test reached for Ray or Kafka."""


def _forbidden(module: str, name: str) -> Callable[..., Any]:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise TransportUsedInUnitTest(
            f"unit tests must not use {module}.{name}; put the test under tests/integration"
        )

    return refuse


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a guarded module right after it is first imported during a test."""

    def __init__(self, patch: Callable[[ModuleType], None]) -> None:
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in GUARDED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module
        patch = self.patch

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            patch(module)

        # Wrap this module's own loader instance; its type (and resource access) is unchanged.
        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@pytest.fixture(autouse=True)
def no_ray_no_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def patch(module: ModuleType) -> None:
        for name in GUARDED[module.__name__]:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _forbidden(module.__name__, name))

    for module_name in GUARDED:
        module = sys.modules.get(module_name)
        if module is not None:
            patch(module)
    finder = _PatchOnImport(patch)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)

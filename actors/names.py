"""Ray namespace, actor and Serve application names of one pipeline instance.

Every pipeline lives in its own Ray namespace, ``codegen_metrics.<instance>``, so several
pipelines (other teams, other topic prefixes) share a Ray cluster without their actor names
colliding; ``ray list actors`` and the Ray dashboard show the namespace beside each actor.
"""

NAMESPACE_PREFIX = "codegen_metrics"
COORDINATOR = "coordinator"
INTENT_EXECUTOR = "intent-executor"


def namespace(instance: str) -> str:
    return f"{NAMESPACE_PREFIX}.{instance}"


def app_name(instance: str) -> str:
    """The Serve application of an instance."""
    return f"codegen-metrics-{instance}"


def ingest_name(index: int) -> str:
    return f"ingest-{index}"


def window_name(index: int) -> str:
    return f"window-{index}"

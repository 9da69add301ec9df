"""Ray namespace and actor names, so operators find them in the dashboard and `ray list actors`."""

NAMESPACE = "codegen_metrics"
COORDINATOR = "coordinator"
INTENT_EXECUTOR = "intent-executor"


def ingest_name(index: int) -> str:
    return f"ingest-{index}"


def window_name(index: int) -> str:
    return f"window-{index}"

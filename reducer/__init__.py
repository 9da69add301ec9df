"""Pure, mergeable aggregation: no I/O, no ray, no Kafka."""

from reducer.aggregator import MetricsAggregator
from reducer.codec import StateCodecError
from reducer.percentile import nearest_rank, percentile
from reducer.state import AggregationState
from reducer.windows import window_bounds, window_id

__all__ = [
    "AggregationState",
    "MetricsAggregator",
    "StateCodecError",
    "nearest_rank",
    "percentile",
    "window_bounds",
    "window_id",
]

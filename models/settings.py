"""The one configuration model: every knob, its default and its environment variable.

Loaded once at the edge (the CLI) from flags and environment; actors receive the section they
need at construction and never read the environment themselves. Environment variables use the
prefix ``CODEGEN_METRICS_`` and ``__`` between section and field, e.g.
``CODEGEN_METRICS_KAFKA__BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.metrics import EnumMetricsWindow

DEFAULT_COST_EDGES: tuple[float, ...] = (0.01, 0.05, 0.10, 0.50, 1.00)
DEFAULT_QUALITY_EDGES: tuple[float, float] = (0.6, 0.8)


class ReducerSettings(BaseModel):
    """Bounds and bucket edges of the pure aggregation core (reducer/)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exact_percentile_cap: Annotated[int, Field(ge=1)] = 10_000
    """Duration samples a state keeps exactly; beyond it a 1%-accurate sketch takes over."""
    sketch_relative_accuracy: Annotated[float, Field(gt=0, le=0.01)] = 0.01
    """Relative error bound of the duration sketch (alpha in the DDSketch paper)."""
    max_keys_per_breakdown: Annotated[int, Field(ge=1)] = 1000
    """Keys kept per breakdown (model, stage, ...); the rest fold into ``__other__``."""
    max_key_length: Annotated[int, Field(ge=8)] = 256
    """Longer breakdown keys are truncated to this many characters."""
    max_workflows: Annotated[int, Field(ge=0)] = 1000
    """Per-workflow summaries kept per state; evictions are counted."""
    exact_distinct_cap: Annotated[int, Field(ge=1)] = 10_000
    """Distinct workflow ids counted exactly; beyond it a HyperLogLog (<1% error) takes over."""
    quality_bucket_edges: tuple[float, float] = DEFAULT_QUALITY_EDGES
    """low < edges[0] <= medium < edges[1] <= high."""
    cost_bucket_edges: tuple[float, ...] = DEFAULT_COST_EDGES
    """Upper-exclusive USD edges of the cost buckets, ascending."""

    @field_validator("quality_bucket_edges", "cost_bucket_edges")
    @classmethod
    def _ascending(cls, edges: tuple[float, ...]) -> tuple[float, ...]:
        if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("bucket edges must be non-empty and strictly ascending")
        return edges


class KafkaSettings(BaseModel):
    """Where events come from and go to. Empty bootstrap_servers starts the embedded broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = ""
    topic_prefix: str = "dev"
    group_id: str = "codegen-metrics-reducer"
    auto_offset_reset: str = "earliest"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    extra_config: dict[str, str] = Field(default_factory=dict)
    """Any other librdkafka property, passed through verbatim (e.g. {"client.rack": "a"})."""

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}.{suffix}" if self.topic_prefix else suffix

    @property
    def input_topics(self) -> list[str]:
        return [
            self.topic(f"codegen.{name}.v1")
            for name in ("started", "stage_completed", "completed", "failed")
        ]

    def input_topic_for(self, event_type: str) -> str:
        """Where producers put an event type (the reducer accepts any type on any input topic)."""
        name = event_type.upper().removeprefix("CODEGEN_").lower()
        return self.topic(f"codegen.{name}.v1")

    @property
    def intent_topic(self) -> str:
        return self.topic("coordination.event_publish_intent.v1")

    @property
    def target_topic(self) -> str:
        return self.topic("codegen.metrics_recorded.v1")

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("codegen.metrics_reducer.dead_letter.v1")

    def client_config(self) -> dict[str, str]:
        """librdkafka properties shared by every client; secrets revealed only here."""
        conf: dict[str, str] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.extra_config)
        return conf


class PipelineSettings(BaseModel):
    """Shape and pacing of the Ray pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ray_address: str = "local"
    ingest_actors: Annotated[int, Field(ge=1)] = 1
    window_actors: Annotated[int, Field(ge=1)] = 2
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 100
    max_batches_in_flight: Annotated[int, Field(ge=1)] = 4
    tick_seconds: Annotated[float, Field(gt=0)] = 5.0
    allowed_lateness_seconds: Annotated[float, Field(ge=0)] = 60.0
    idle_partition_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    windows: tuple[EnumMetricsWindow, ...] = (
        EnumMetricsWindow.HOURLY,
        EnumMetricsWindow.DAILY,
        EnumMetricsWindow.WEEKLY,
        EnumMetricsWindow.MONTHLY,
    )
    publish_max_attempts: Annotated[int, Field(ge=1)] = 3
    publish_backoff_seconds: Annotated[float, Field(ge=0)] = 0.5
    publish_backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0


class ServeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8063


class Settings(BaseSettings):
    """Everything configurable, from flags and ``CODEGEN_METRICS_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="CODEGEN_METRICS_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    reducer: ReducerSettings = ReducerSettings()
    kafka: KafkaSettings = KafkaSettings()
    pipeline: PipelineSettings = PipelineSettings()
    serve: ServeSettings = ServeSettings()

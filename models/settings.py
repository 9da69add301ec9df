"""The one configuration model: every knob, its default and its environment variable.

Loaded once at the edge (the CLI) from flags and environment; actors receive the section they
need at construction and never read the environment themselves. Environment variables use the
prefix ``CODEGEN_METRICS_`` and ``__`` between section and field, e.g.
``CODEGEN_METRICS_KAFKA__BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import itertools
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from models.bounds import DEFAULT_MAX_COST_USD, DEFAULT_MAX_DURATION_SECONDS
from models.metrics import EnumMetricsWindow

_SECRET_KEY = re.compile(r"password|secret|token|credential|key\.pem|oauthbearer\.config", re.I)
"""librdkafka properties whose values are secrets (``sasl.password``, ``ssl.key.pem``, ...)."""
DEFAULT_COST_EDGES: tuple[float, ...] = (0.01, 0.05, 0.10, 0.50, 1.00)
DEFAULT_QUALITY_EDGES: tuple[float, float] = (0.6, 0.8)


class ReducerSettings(BaseModel):
    """Bounds and bucket edges of the pure aggregation core (reducer/)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

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

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    bootstrap_servers: str = ""
    """Kafka bootstrap servers (host:port,...); empty starts the embedded Tansu broker."""
    topic_prefix: str = "dev"
    """Environment prefix of every topic name (``<prefix>.codegen.started.v1``, ...)."""
    group_id: str = "codegen-metrics-reducer"
    """Consumer group of the ingest actors; also names the instance unless ``instance`` is set."""
    auto_offset_reset: str = "earliest"
    """Where a new consumer group starts: ``earliest`` backfills the retained log."""
    security_protocol: str | None = None
    """librdkafka ``security.protocol``, e.g. ``SASL_SSL``."""
    sasl_mechanism: str | None = None
    """librdkafka ``sasl.mechanism``, e.g. ``SCRAM-SHA-512``."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (environment only)."""
    ssl_ca_location: str | None = None
    """CA bundle that verifies the brokers."""
    ssl_certificate_location: str | None = None
    """Client certificate (mutual TLS)."""
    ssl_key_location: str | None = None
    """Client private key (mutual TLS)."""
    ssl_key_password: SecretStr | None = None
    """Password of the client private key (environment only)."""
    session_timeout_ms: Annotated[int | None, Field(ge=1000, le=3_600_000)] = None
    """Consumer-group session timeout of the ingest actors. Unset: 6000 (the least a Kafka
    broker accepts by default), 3000 on the embedded broker. Tansu answers a new member's join
    after about half of it (6000: 3.0 s, 3000: 2.1 s), so it sets how long a start waits for
    partitions; a member silent this long loses them."""
    topic_partitions: Annotated[int, Field(ge=1)] = 4
    """Partitions of each topic the pipeline creates (existing topics stay as they are); the
    input topics' count bounds how many ingest actors share the work."""
    extra_config: dict[str, str] = Field(default_factory=dict)
    """Any other librdkafka property, passed through verbatim (e.g. {"client.rack": "a"})."""

    def __repr_args__(self) -> Any:
        """Secret-looking ``extra_config`` values (passwords, secrets, tokens, keys) appear
        as ``'**********'``, as SecretStr fields do, in repr, logs and errors."""
        for name, value in super().__repr_args__():
            if name == "extra_config":
                value = {k: "**********" if _SECRET_KEY.search(k) else v for k, v in value.items()}
            yield name, value

    @property
    def producer_max_bytes(self) -> int:
        """The producers' ``message.max.bytes`` (``extra_config``, else librdkafka's
        1,000,000): the largest record this pipeline can publish."""
        return int(self.extra_config.get("message.max.bytes", 1_000_000))

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
    def late_topic(self) -> str:
        return self.topic("codegen.metrics_reducer.late_events.v1")

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

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    ray_address: str = "local"
    """``local`` starts a Ray of its own; ``auto`` or ``host:port`` joins a running cluster."""
    instance: Annotated[str, Field(pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$")] = ""
    """Names this pipeline on a shared Ray cluster: its Ray namespace, Serve application,
    Consul service id, checkpoint folder and metric labels all derive from it, so pipelines
    with different instances never collide. Empty: derived from ``kafka.group_id``."""
    ingest_actors: Annotated[int, Field(ge=0)] = 2
    """Kafka consumers in one group; 0 sizes from the cluster (a quarter of its CPUs, at least
    one). Two by default: one actor's consuming thread (fetch, route, send, one after the other)
    held a backlog to 0.83x the rate two reach (README, Performance)."""
    window_actors: Annotated[int, Field(ge=0)] = 2
    """Stateful window actors; 0 sizes from the cluster (the CPUs the ingest actors leave)."""
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 4000
    """Most messages an ingest actor reads and dispatches at once (fewer when messages are
    large: a batch holds about 4 MiB). A poll returns what is there after at most 0.25 s, so
    below capacity batches stay small and a large cap adds no delay; on a backlog 4000 moved
    7% more events a second than 1000 with 13% less CPU an event (README, Performance)."""
    max_batches_in_flight: Annotated[int, Field(ge=1)] = 4
    """Batches an ingest actor has sent but not seen applied before it stops reading
    (backpressure)."""
    tick_seconds: Annotated[float, Field(gt=0)] = 5.0
    """How often the coordinator merges and publishes changed windows."""
    allowed_lateness_seconds: Annotated[float, Field(ge=0)] = 60.0
    """How far behind the watermark an event may arrive and still count; later ones go to the late-
    events topic."""
    idle_partition_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    """A partition silent this long stops holding the watermark back."""
    assignment_stall_seconds: Annotated[float, Field(gt=0)] = 60.0
    """Input partitions owned by no ingest actor this long (a consumer group stuck in a
    rebalance) make the supervisor rebuild the pipeline from its checkpoint with the group
    deleted on the broker (the checkpoint holds the offsets); repeated every period."""
    windows: tuple[EnumMetricsWindow, ...] = (
        EnumMetricsWindow.HOURLY,
        EnumMetricsWindow.DAILY,
        EnumMetricsWindow.WEEKLY,
        EnumMetricsWindow.MONTHLY,
    )
    """Window types to compute and publish."""
    history_size: Annotated[int, Field(ge=1, le=10_000)] = 200
    """Closed windows kept per window type for /history (rebuilt from the metrics topic)."""
    dedup_horizon_seconds: Annotated[float, Field(ge=0)] = 3600.0
    """Event-time span within which a repeated event_id is dropped as a duplicate."""
    max_future_skew_seconds: Annotated[float, Field(ge=0)] = 300.0
    """Events stamped further than this in the future are bad input (``future_timestamp``),
    not new windows."""
    max_duration_seconds: Annotated[float, Field(gt=0)] = DEFAULT_MAX_DURATION_SECONDS
    """Longer stage, generation or partial durations are ``out_of_range`` (models/bounds.py)."""
    max_cost_usd: Annotated[float, Field(gt=0)] = DEFAULT_MAX_COST_USD
    """A generation costing more is ``out_of_range``."""
    schema_registry_framing: bool = False
    """Input messages may carry the Confluent Schema Registry wire format: a zero magic byte
    and a 4-byte schema id before the JSON. Off: such messages are ``invalid_json``. On: the
    five bytes are skipped (plain JSON messages are still read)."""
    max_message_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    """Larger messages are dead-lettered unread."""
    checkpoint_interval_seconds: Annotated[float, Field(gt=0)] = 30.0
    """How often a consistent checkpoint (offsets and every window) is written."""
    storage_path: str = ""
    """Where checkpoints go, as Ray Train and Tune's ``storage_path``: a local path (on the
    head node, or an NFS mount), or a URI pyarrow.fs understands (``s3://bucket/prefix``,
    ``gs://...``, ``hdfs://...``) so that losing the head node loses no checkpoint. Each
    pipeline instance writes below ``<storage_path>/<instance>``. Empty: a stable directory of
    the user running the driver, ``$XDG_STATE_HOME/codegen-metrics`` (default
    ``~/.local/state/codegen-metrics``), never the working directory, which ``ray job submit``
    replaces with every deploy."""
    checkpoints_kept: Annotated[int, Field(ge=1)] = 3
    """Checkpoints kept; a restore falls back to an older one if the newest is unreadable."""
    reset_state: bool = False
    """Start over from the earliest retained offsets with empty state, setting aside any
    checkpoint found (moved to a ``reset-<time>`` folder) and replacing the consumer group's
    committed offsets. Without it, a start that would resume without a matching checkpoint
    is refused (see README, "Checkpoints and redeploys")."""
    publish_max_attempts: Annotated[int, Field(ge=1)] = 3
    """Attempts of the intent executor per metrics event before it is dead-lettered."""
    publish_backoff_seconds: Annotated[float, Field(ge=0)] = 0.5
    """Wait before the second publish attempt."""
    publish_backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Growth of the wait between publish attempts."""
    gc_young_threshold: Annotated[int, Field(ge=0)] = 50_000
    """Net new container objects between collections of the young generation in the ingest,
    window and coordinator actors, which also freeze their start-up heap (actors/collector.py),
    and in ``codegen-metrics aggregate`` while it folds; 0 keeps Python's collector as it is
    (700)."""


class ServeSettings(BaseModel):
    """The HTTP API (Ray Serve). Bound to loopback unless told otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Serve the HTTP API (health, snapshot, metrics, dashboard) on Ray Serve."""
    node_id: str = ""
    """Identity in /health and Consul; empty means this host's name."""
    host: str = "127.0.0.1"
    """HTTP bind address; loopback unless told otherwise."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8063
    """A fixed port: Consul and load balancers are told this one (no 0 for "any free").
    Serve has one HTTP proxy per Ray cluster: the first pipeline to start Serve decides the
    host and port, and later ones on the same cluster are served there."""
    route_prefix: Annotated[str, Field(pattern=r"^/([a-z0-9][a-z0-9-]*)?$")] = "/"
    """Where this pipeline's API is mounted on Serve's proxy; a second pipeline on the same
    Ray cluster needs its own (e.g. ``/team-b``): a prefix another application serves is
    refused."""
    token: SecretStr | None = None
    """Optional bearer token required on every data route (open: /health, /, /docs; README)."""
    stall_seconds: Annotated[float, Field(gt=0)] = 30.0
    """An ingest actor that has not polled Kafka for this long makes /health degraded."""


class ConsulSettings(BaseModel):
    """Consul service registration of the Serve endpoint; off unless an agent address is set.

    Besides ``CODEGEN_METRICS_CONSUL__<FIELD>``, the standard Consul variables are read (see
    ``from_env``), so a shell already set up for the ``consul`` CLI needs nothing more. The
    prefixed variables win field by field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    host: str = ""
    """Agent host or IP; empty turns registration off. Env: CONSUL_HTTP_ADDR or CONSUL_HOST."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8500
    """Agent HTTP port. Env: CONSUL_HTTP_ADDR or CONSUL_PORT."""
    scheme: Literal["http", "https"] = "http"
    """Agent HTTP scheme. Env: the scheme of CONSUL_HTTP_ADDR, or CONSUL_HTTP_SSL=true."""
    token: SecretStr | None = None
    """ACL token (needs service:write on the service). Env: CONSUL_TOKEN or CONSUL_HTTP_TOKEN."""
    ca_file: str | None = None
    """CA bundle to verify an https agent; default: the system store. Env: CONSUL_CACERT."""
    service_address: str = ""
    """Address advertised to Consul and probed by the check; empty: the Serve host (this
    machine's IP when Serve binds 0.0.0.0). Set it when the agent is on another machine."""
    deregister_critical_after: str = "5m"
    """Consul drops the service after its check has been critical this long (Go duration)."""
    check_interval: str = "30s"
    """How often the agent probes /health (Go duration)."""
    check_timeout: str = "5s"
    """How long one /health probe may take (Go duration)."""
    retry_initial_seconds: Annotated[float, Field(gt=0)] = 1.0
    """First wait after a failed registration; doubled after each failure..."""
    retry_max_seconds: Annotated[float, Field(gt=0)] = 60.0
    """...up to this cap, so an absent agent costs one request a minute."""
    resync_seconds: Annotated[float, Field(gt=0)] = 10.0
    """How often the agent is asked whether it still has the service (it forgets on restart)."""
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    """Bound of every agent request, so shutdown never hangs on deregistration."""

    @property
    def enabled(self) -> bool:
        """Registration runs only when an agent address is configured."""
        return bool(self.host)

    @property
    def address(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @field_validator("deregister_critical_after", "check_interval", "check_timeout")
    @classmethod
    def _go_duration(cls, value: str) -> str:
        if not _GO_DURATION.fullmatch(value):
            raise ValueError(f"{value!r} is not a Go duration such as '30s', '5m' or '1h30m'")
        return value

    @model_validator(mode="after")
    def _backoff_cap(self) -> ConsulSettings:
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds must be >= retry_initial_seconds")
        return self

    @classmethod
    def env_values(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """Fields found in the standard Consul variables (empty values count as unset).

        CONSUL_HTTP_ADDR (``[http[s]://]host[:port]``, as the consul CLI reads it) wins over
        CONSUL_HOST / CONSUL_PORT; CONSUL_HTTP_SSL=true selects https when no scheme is given.
        """
        env = {k: v.strip() for k, v in environ.items() if k.startswith("CONSUL_") and v.strip()}
        values: dict[str, Any] = {}
        if env.get("CONSUL_HTTP_SSL", "").lower() in ("1", "true"):
            values["scheme"] = "https"
        if "CONSUL_HTTP_ADDR" in env:
            values.update(_parse_http_addr(env["CONSUL_HTTP_ADDR"], values.get("scheme")))
        else:
            if "CONSUL_HOST" in env:
                values["host"] = env["CONSUL_HOST"]
            if "CONSUL_PORT" in env:
                values["port"] = env["CONSUL_PORT"]
        token = env.get("CONSUL_TOKEN") or env.get("CONSUL_HTTP_TOKEN")
        if token:
            values["token"] = token
        if "CONSUL_CACERT" in env:
            values["ca_file"] = env["CONSUL_CACERT"]
        return values

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConsulSettings:
        """This section from the standard Consul variables alone."""
        return cls(**cls.env_values(environ))


_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")


def _parse_http_addr(addr: str, scheme: str | None) -> dict[str, Any]:
    parsed = urllib.parse.urlsplit(addr if "://" in addr else f"//{addr}")
    if parsed.scheme not in ("", "http", "https") or not parsed.hostname:
        raise ValueError(f"CONSUL_HTTP_ADDR={addr!r}: expected [http[s]://]host[:port]")
    values: dict[str, Any] = {"host": parsed.hostname, "scheme": parsed.scheme or scheme or "http"}
    try:
        port = parsed.port
    except ValueError as exc:
        raise ValueError(f"CONSUL_HTTP_ADDR={addr!r}: {exc}") from None
    if port is not None:
        values["port"] = port
    elif values["scheme"] == "https" and parsed.scheme:
        values["port"] = 443
    return values


class _ConsulEnvSource(PydanticBaseSettingsSource):
    """The standard CONSUL_* variables, below the prefixed ones and above the defaults."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = ConsulSettings.env_values(os.environ)
        return {"consul": values} if values else {}


def instance_name(group_id: str) -> str:
    """A Ray-, Consul- and path-safe name for a consumer group: lowercase letters, digits and
    dashes, at most 63 characters."""
    name = re.sub(r"[^a-z0-9]+", "-", group_id.lower()).strip("-")[:63].strip("-")
    return name or "default"


class LogSettings(BaseModel):
    """Logging of the driver and every actor (through Ray's ``LoggingConfig``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level logged, in the driver and the actors."""
    format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, in the driver and the actors alike."""


class Settings(BaseSettings):
    """Everything configurable, from flags and ``CODEGEN_METRICS_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="CODEGEN_METRICS_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    reducer: ReducerSettings = ReducerSettings()
    kafka: KafkaSettings = KafkaSettings()
    pipeline: PipelineSettings = PipelineSettings()
    serve: ServeSettings = ServeSettings()
    consul: ConsulSettings = ConsulSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then CODEGEN_METRICS_* (env and .env), then standard CONSUL_*, then secrets."""
        consul_env = _ConsulEnvSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, consul_env, file_secret_settings

    @property
    def instance(self) -> str:
        """This pipeline's name on a shared cluster (``pipeline.instance``, or derived from the
        consumer group)."""
        return self.pipeline.instance or instance_name(self.kafka.group_id)

    @property
    def checkpoint_location(self) -> str:
        """Where this instance's checkpoints go: ``<storage_path>/<instance>``."""
        root = self.pipeline.storage_path or default_storage_path()
        return f"{root.rstrip('/')}/{self.instance}"


def default_storage_path() -> str:
    """``$XDG_STATE_HOME/codegen-metrics``, else ``~/.local/state/codegen-metrics``: stable
    across deploys, unlike the working directory ``ray job submit`` unpacks."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "codegen-metrics")

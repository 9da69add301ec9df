"""The intent envelope: a request, written to the coordination topic, to publish a domain event."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from models.events import UtcDatetime, utc_now


class ModelRetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_attempts: Annotated[int, Field(ge=1)] = 3
    initial_backoff_ms: Annotated[int, Field(ge=0)] = 500
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0

    def backoff_seconds(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        return self.initial_backoff_ms / 1000 * self.backoff_multiplier ** (attempt - 1)


class ModelEventPublishIntent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    intent_id: UUID = Field(default_factory=uuid4)
    correlation_id: UUID
    created_at: UtcDatetime = Field(default_factory=utc_now)
    created_by: str
    target_topic: str
    target_key: str
    target_event_type: str
    target_event_payload: dict[str, Any]
    priority: Annotated[int, Field(ge=1, le=10)] = 5
    retry_policy: ModelRetryPolicy = ModelRetryPolicy()

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class EndpointOut(BaseModel):
    """A webhook endpoint as the API shows it: never its secret."""

    id: int
    url: str
    events: list[str]
    enabled: bool
    development: bool
    disabled_reason: str | None
    created_at: datetime


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_type: str
    event_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

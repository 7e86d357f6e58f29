"""Endpoints and deliveries as the tests set them up and read them back."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.support import StoreKey
from tests.webhooks.receiver import Receiver
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.webhooks.models import WebhookDelivery
from ulak.webhooks.service import EndpointShown, add_endpoint


async def add_receiver(
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    receiver: Receiver,
    *,
    events: list[str] | None = None,
    path: str = "/hook",
) -> EndpointShown:
    """The receiver as an endpoint of the store, in development mode (it is loopback)."""
    async with db.transaction() as session:
        shown, secret = await add_endpoint(
            session,
            store_id=store.id,
            url=receiver.url + path,
            events=events or ["*"],
            development=True,
            clock=clock,
        )
    receiver.secret = secret
    return shown


async def deliveries(db: Database) -> list[tuple[int, int, str, str, str, int]]:
    """(store, endpoint, type, event id, status, attempts) of every delivery, by id."""
    async with db.read() as session:
        rows = await session.execute(
            select(
                WebhookDelivery.store_id,
                WebhookDelivery.endpoint_id,
                WebhookDelivery.event_type,
                WebhookDelivery.event_id,
                WebhookDelivery.status,
                WebhookDelivery.attempts,
            ).order_by(WebhookDelivery.id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def post_events(client: httpx.AsyncClient, store: StoreKey, *events: Any) -> None:
    answer = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert answer.status_code == 202, answer.text
    assert answer.json()["rejected"] == []

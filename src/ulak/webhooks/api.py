"""Read-only: a store's webhook endpoints and latest deliveries, with its API key.
Endpoints are added and removed with `ulak webhooks` (the secret is shown there once)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ulak.web.deps import AppDatabase, CurrentStore
from ulak.webhooks.schemas import DeliveryOut, EndpointOut
from ulak.webhooks.service import deliveries_of, endpoints_of

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.get("/webhooks", response_model=list[EndpointOut], summary="The store's webhook endpoints")
async def list_endpoints(store: CurrentStore, database: AppDatabase) -> list[EndpointOut]:
    async with database.read() as session:
        shown = await endpoints_of(session, store_id=store.id)
    return [
        EndpointOut(
            id=e.id,
            url=e.url,
            events=list(e.event_types),
            enabled=e.enabled,
            development=e.development,
            disabled_reason=e.disabled_reason,
            created_at=e.created_at,
        )
        for e in shown
    ]


@router.get(
    "/webhooks/deliveries",
    response_model=list[DeliveryOut],
    summary="The store's latest webhook deliveries, newest first",
)
async def list_deliveries(
    store: CurrentStore,
    database: AppDatabase,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[DeliveryOut]:
    async with database.read() as session:
        shown = await deliveries_of(session, store_id=store.id, status=status, limit=limit)
    return [DeliveryOut.model_validate(d, from_attributes=True) for d in shown]

"""KVKK/GDPR requests through the API: export everything ulak holds on a customer, and
erase them. The erasure is the worker's (the API process writes no other feature's
tables): the route sends `customer.erasure_requested` through the inbox and answers 202."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ulak.customers.service import find_customer
from ulak.errors import Conflict, NotFound
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted, EventIn
from ulak.privacy.service import ERASURE_REQUESTED, export_customer
from ulak.web.deps import AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["customers"])


class ErasureAccepted(BaseModel):
    # The event that carries the request to the worker (its status in the customer's
    # store says when the erasure is done).
    event: str


@router.get(
    "/customers/{ref:path}/export",
    summary="Everything ulak holds on a customer (KVKK/GDPR access request)",
    response_model=dict[str, Any],
)
async def export(ref: str, store: CurrentStore, database: AppDatabase) -> JSONResponse:
    """`ref` is the shop's customer id or an email address: the profile, consent history
    with its proof, orders with items and shipments, carts, events, enrollments with their
    steps, messages with what they said, coupons, back-in-stock subscriptions, timers."""
    async with database.read() as session:
        customer = await find_customer(session, store_id=store.id, ref=ref)
        data = await export_customer(session, store_id=store.id, customer_id=customer.id)
    if data is None:  # pragma: no cover - found just now in the same snapshot
        raise NotFound(f"no customer {ref!r} in this store")
    return JSONResponse(data.as_json())


@router.delete(
    "/customers/{ref:path}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ErasureAccepted,
    summary="Erase a customer (KVKK/GDPR erasure request)",
)
async def erase(
    ref: str, request: Request, store: CurrentStore, database: AppDatabase
) -> ErasureAccepted:
    """Answered once the request is committed; the worker then erases in one
    transaction: personal data removed or emptied everywhere, consent proof kept as
    digests, orders kept anonymous (revenue holds), pending messages skipped "erased"."""
    async with database.read() as session:
        customer_id = (await find_customer(session, store_id=store.id, ref=ref)).id
    inbox: Inbox = request.app.state.inbox
    event = EventIn(type=ERASURE_REQUESTED)
    (answer,) = await inbox.accept(store.id, [(0, event)], customer_id=customer_id)
    if not isinstance(answer, Accepted):  # pragma: no cover - ulak's own keys are new
        raise Conflict("the erasure request could not be stored")
    inbox.scrub_after(store.id, answer.key)
    return ErasureAccepted(event=answer.key)

"""`GET /v1/privacy/requests`: the KVKK/GDPR requests customers made on the preference
page, for the shop (with its key) to answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ulak.preferences.service import privacy_requests
from ulak.web.deps import AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["customers"])


class PrivacyRequestOut(BaseModel):
    id: int
    # The shop's customer id, else the email; None once the customer is erased.
    customer: str | None
    kind: str  # export, erase
    source: str
    requested_at: datetime


@router.get(
    "/privacy/requests",
    response_model=list[PrivacyRequestOut],
    summary="Customers' KVKK/GDPR requests from the preference page, newest first",
)
async def list_requests(
    store: CurrentStore,
    database: AppDatabase,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PrivacyRequestOut]:
    """Answer one with `GET /v1/customers/{ref}/export` or `DELETE /v1/customers/{ref}`."""
    async with database.read() as session:
        rows = await privacy_requests(session, store_id=store.id, limit=limit)
    return [
        PrivacyRequestOut(
            id=r.id,
            customer=r.customer,
            kind=r.kind,
            source=r.source,
            requested_at=r.requested_at,
        )
        for r in rows
    ]

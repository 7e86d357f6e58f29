"""POST /v1/inbound/email: a DSN or abuse report, as the raw message a mail server
received (for a bounce domain whose mail is piped or forwarded to ulak rather than
delivered to `ulak inbound`)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ulak.config import Settings
from ulak.errors import Unauthorized
from ulak.events.inbox import Inbox
from ulak.suppressions.inbound import take_report
from ulak.web.deps import AppDatabase, current_store

router = APIRouter(prefix="/v1", tags=["inbound"])


class InboundResult(BaseModel):
    # message.bounced or message.complained; None when the report led to nothing.
    event_type: str | None
    # The event's key (a report sent twice is one event).
    key: str | None
    # Why nothing was done, when nothing was.
    ignored: str | None


@router.post(
    "/inbound/email",
    response_model=InboundResult,
    status_code=202,
    summary="A bounce (DSN) or complaint (ARF) report, as raw email",
    openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string"}}}}},
)
async def inbound_email(request: Request, database: AppDatabase) -> InboundResult:
    """The body is the report as received, `Content-Type: message/rfc822`. Authenticated
    by the operator's token (`ULAK_INBOUND_TOKEN`: reports about any store's messages) or a
    store's API key (reports about that store's messages only). The report is tied to its
    message by ulak's signed tag, which a forged report cannot carry; the worker applies
    it. The envelope recipient, if the forwarding server knows it, goes in
    `X-Original-To` (a VERP address)."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    store_id: int | None
    if (
        settings.inbound_token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), settings.inbound_token.encode())
    ):
        store_id = None
    else:
        try:
            store_id = (await current_store(request)).id
        except Unauthorized as error:
            raise Unauthorized(
                "send the operator's inbound token or a store's API key as "
                "'Authorization: Bearer <token>'"
            ) from error
    raw = await request.body()
    inbox: Inbox = request.app.state.inbox
    recipient = request.headers.get("x-original-to", "")
    taken = await take_report(
        database,
        inbox,
        raw,
        recipients=[recipient] if recipient else [],
        bounce_domain=settings.bounce_domain,
        store_id=store_id,
    )
    return InboundResult(event_type=taken.event_type, key=taken.key, ignored=taken.ignored)

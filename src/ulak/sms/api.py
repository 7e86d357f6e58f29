"""Delivery reports a gateway posts: `POST /v1/sms/reports/{provider}/{token}`.

The token (`sms_settings.report_token`, 256 random bits) names the store; the gateway's
`parse_callback` checks the provider's signature where it has one (Twilio's). The route
writes no other feature's table: each final report becomes a `message.delivered` or
`message.failed` event through the events inbox, which the worker applies to the message.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request

from ulak.channels.gateways import gateway_for
from ulak.channels.gateways.base import CallbackRefused
from ulak.errors import NotFound, Unauthorized
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.reports import customer_of_report
from ulak.sms.service import store_of_report_token
from ulak.web.deps import AppDatabase

router = APIRouter(tags=["sms"])

# parse_callback reads what was posted and calls nobody: this client is never used.
_IDLE_CLIENT = httpx.AsyncClient()


@router.post("/v1/sms/reports/{provider}/{token}", include_in_schema=False)
async def sms_report(
    request: Request, provider: str, token: str, database: AppDatabase
) -> dict[str, int]:
    async with database.read() as session:
        setup = await store_of_report_token(session, token=token)
    if setup is None or setup.provider != provider:
        raise NotFound("no such report address")
    url = f"{request.app.state.settings.base_url}/v1/sms/reports/{provider}/{token}"
    gateway = gateway_for(provider, setup.credentials, client=_IDLE_CLIENT, callback_url=url)
    try:
        reports = gateway.parse_callback(
            url=url, headers=request.headers, body=await request.body()
        )
    except CallbackRefused as error:
        raise Unauthorized(f"not a report of {provider}: {error}") from error
    inbox: Inbox = request.app.state.inbox
    accepted = 0
    for report in reports:
        if report.status == "pending":
            continue
        async with database.read() as session:
            customer_id = await customer_of_report(
                session, store_id=setup.store_id, provider_id=report.provider_id
            )
        if customer_id is None:
            continue  # not an SMS of this store's (or one that left before this version)
        event = EventIn(
            id=f"ulak:sms-report:{provider}:{report.provider_id}:{report.status}",
            type=f"message.{report.status}",
            occurred_at=report.at,
            data={"provider_id": report.provider_id, "reason": report.reason},
        )
        await inbox.accept(setup.store_id, [(0, event)], source="gateway", customer_id=customer_id)
        accepted += 1
    return {"accepted": accepted}

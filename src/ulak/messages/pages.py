"""Customer-facing one-click unsubscribe (RFC 8058), and the dev inbox."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.models import Customer
from ulak.db import Database
from ulak.errors import NotFound
from ulak.messages.models import DevInboxMessage
from ulak.messages.service import customer_of_unsubscribe_token
from ulak.stores.models import Store
from ulak.web.deps import AppClock, AppDatabase
from ulak.web.pages import browser_language, error_page, render_page, texts_for

FRAME_POLICY = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'"

unsubscribe_router = APIRouter(include_in_schema=False)
dev_inbox_router = APIRouter(include_in_schema=False)


async def _linked_customer(session: AsyncSession, store: Store, token: str) -> Customer:
    """The person an unsubscribe link names, following merges to the surviving profile."""
    customer = await session.get(Customer, customer_of_unsubscribe_token(store, token))
    while customer is not None and customer.merged_into_id is not None:
        customer = await session.get(Customer, customer.merged_into_id)
    if customer is None or customer.store_id != store.id:
        raise NotFound("this unsubscribe link is not valid")
    return customer


async def _unsubscribe_page(
    request: Request, store_id: int, token: str, database: Database, *, now: datetime | None
) -> HTMLResponse:
    """GET shows the button (now is None); POST unsubscribes (mail clients and the button)."""
    async with database.transaction() as session:
        store = await session.get(Store, store_id)
        try:
            if store is None:
                raise NotFound("no such store")
            customer = await _linked_customer(session, store, token)
        except NotFound:
            locale = store.locale if store else browser_language(request)
            return error_page(
                request,
                locale=locale,
                message=texts_for(locale)["invalid_link"],
                status_code=404,
                brand=store.name if store else None,
            )
        if now is not None and customer.email_unsubscribed_at is None:
            customer.email_unsubscribed_at = now
    return render_page(
        request,
        "unsubscribe.html",
        {
            "t": texts_for(store.locale),
            "lang": store.locale,
            "store_name": store.name,
            "brand_color": store.brand_color,
            "done": now is not None,
        },
    )


@unsubscribe_router.get("/u/{store_id}/{token}", response_class=HTMLResponse)
async def unsubscribe_page(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> HTMLResponse:
    return await _unsubscribe_page(request, store_id, token, database, now=None)


@unsubscribe_router.post("/u/{store_id}/{token}", response_class=HTMLResponse)
async def unsubscribe(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    """RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here; the button posts too."""
    return await _unsubscribe_page(request, store_id, token, database, now=clock.now())


@dev_inbox_router.get("/dev/inbox", response_class=HTMLResponse)
async def dev_inbox(request: Request, database: AppDatabase) -> HTMLResponse:
    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(DevInboxMessage).order_by(DevInboxMessage.id.desc()).limit(500)
            )
        ).scalars()
        messages = list(rows)
    return render_page(request, "dev_inbox.html", {"messages": messages})


async def _captured(database: AppDatabase, message_id: int) -> tuple[DevInboxMessage, EmailMessage]:
    async with database.transaction() as session:
        row = await session.get(DevInboxMessage, message_id)
    if row is None:
        raise NotFound(f"no captured email {message_id}")
    parsed = message_from_bytes(row.raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return row, parsed


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return str(part.get_content()) if part is not None else ""


@dev_inbox_router.get("/dev/inbox/{message_id}", response_class=HTMLResponse)
async def dev_inbox_message(
    request: Request, message_id: int, database: AppDatabase
) -> HTMLResponse:
    row, parsed = await _captured(database, message_id)
    shown = (
        "From",
        "To",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "DKIM-Signature",
    )
    headers = [(name, str(parsed[name])) for name in shown if parsed[name] is not None]
    return render_page(
        request,
        "dev_message.html",
        {"id": row.id, "subject": row.subject, "headers": headers, "text": _part(parsed, "plain")},
    )


@dev_inbox_router.get("/dev/inbox/{message_id}/html")
async def dev_inbox_html(message_id: int, database: AppDatabase) -> Response:
    _, parsed = await _captured(database, message_id)
    # Shown in a sandboxed frame; no script may run even if a template carried one.
    return HTMLResponse(
        _part(parsed, "html"),
        headers={"Content-Security-Policy": FRAME_POLICY},
    )


@dev_inbox_router.get("/dev/inbox/{message_id}/raw")
async def dev_inbox_raw(message_id: int, database: AppDatabase) -> Response:
    row, _ = await _captured(database, message_id)
    return Response(
        row.raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{row.id}.eml"'},
    )

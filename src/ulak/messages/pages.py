"""Customer-facing one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ulak.customers.service import surviving_customer
from ulak.db import Database
from ulak.errors import NotFound
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.service import customer_of_unsubscribe_token
from ulak.stores.models import Store
from ulak.web.deps import AppDatabase
from ulak.web.pages import browser_language, error_page, render_page, texts_for

unsubscribe_router = APIRouter(include_in_schema=False)


async def _unsubscribe_page(
    request: Request, store_id: int, token: str, database: Database, *, post: bool
) -> HTMLResponse:
    """GET shows the button; POST unsubscribes (mail clients and the button).

    The page writes no table of another feature: it sends a `message.unsubscribed` event
    through the inbox, and the worker applies it like any other (to the person the link
    names, following merges to the surviving profile).
    """
    async with database.read() as session:
        # An id no database column can hold names no store (asking would overflow).
        store = await session.get(Store, store_id) if 0 < store_id < 2**63 else None
        customer = None
        if store is not None:
            try:
                customer_id = customer_of_unsubscribe_token(store, token)
            except NotFound:
                pass
            else:
                customer = await surviving_customer(
                    session, store_id=store.id, customer_id=customer_id
                )
    if store is None or customer is None:
        locale = store.locale if store else browser_language(request)
        return error_page(
            request,
            locale=locale,
            message=texts_for(locale)["invalid_link"],
            status_code=404,
            brand=store.name if store else None,
        )
    # The link in a commercial SMS says `?c=sms`: the same signed token, another channel
    # (only the person the token names can be unsubscribed, from either).
    channel = "sms" if request.query_params.get("c") == "sms" else "email"
    texts = dict(texts_for(store.locale))
    if channel == "sms":
        for key in ("unsubscribe_title", "unsubscribe_question", "unsubscribe_note"):
            texts[key] = texts[key.replace("unsubscribe_", "unsubscribe_sms_")]
        texts["unsubscribed_body"] = texts["unsubscribed_sms_body"]
    if post:
        inbox: Inbox = request.app.state.inbox
        event = EventIn(type="message.unsubscribed", data={"channel": channel})
        await inbox.accept(store.id, [(0, event)], source="page", customer_id=customer.id)
    return render_page(
        request,
        "unsubscribe.html",
        {
            "t": texts,
            "lang": store.locale,
            "store_name": store.name,
            "brand_color": store.brand_color,
            "done": post,
        },
    )


@unsubscribe_router.get("/u/{store_id}/{token}", response_class=HTMLResponse)
async def unsubscribe_page(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> HTMLResponse:
    return await _unsubscribe_page(request, store_id, token, database, post=False)


@unsubscribe_router.post("/u/{store_id}/{token}", response_class=HTMLResponse)
async def unsubscribe(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> HTMLResponse:
    """RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here; the button posts too."""
    return await _unsubscribe_page(request, store_id, token, database, post=True)

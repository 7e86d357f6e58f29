"""The dev inbox: the mail the dev channel kept instead of sending, to read in a browser."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from ulak.channels.models import DevInboxMessage
from ulak.errors import NotFound
from ulak.web.deps import AppDatabase
from ulak.web.pages import render_page

FRAME_POLICY = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'"

dev_inbox_router = APIRouter(include_in_schema=False)


@dev_inbox_router.get("/dev/inbox", response_class=HTMLResponse)
async def dev_inbox(request: Request, database: AppDatabase) -> HTMLResponse:
    async with database.read() as session:
        rows = (
            await session.execute(
                select(DevInboxMessage).order_by(DevInboxMessage.id.desc()).limit(500)
            )
        ).scalars()
        messages = list(rows)
    return render_page(request, "dev_inbox.html", {"messages": messages})


async def _captured(database: AppDatabase, message_id: int) -> tuple[DevInboxMessage, EmailMessage]:
    async with database.read() as session:
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

"""Short links (`/s/<token>`) and the dev SMS inbox."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ulak.sms.service import captured_sms, link_target
from ulak.web.deps import AppDatabase
from ulak.web.pages import browser_language, error_page, render_page

INVALID_LINK = {
    "tr": "Bu bağlantı geçerli değil. Lütfen SMS'teki bağlantıyı eksiksiz açın.",
    "en": "This link is not valid. Please open the whole link from the text message.",
}

short_link_router = APIRouter(include_in_schema=False)
dev_sms_router = APIRouter(include_in_schema=False)


@short_link_router.get("/s/{token}")
async def short_link(request: Request, token: str, database: AppDatabase) -> Response:
    async with database.read() as session:
        target = await link_target(session, token=token)
    if target is None:
        locale = browser_language(request)
        return error_page(
            request,
            locale=locale,
            message=INVALID_LINK.get(locale, INVALID_LINK["en"]),
            status_code=404,
        )
    return RedirectResponse(target, status_code=302)


@dev_sms_router.get("/dev/sms", response_class=HTMLResponse)
async def dev_sms(request: Request, database: AppDatabase) -> HTMLResponse:
    async with database.read() as session:
        messages = list(reversed(await captured_sms(session)))
    return render_page(request, "dev_sms.html", {"messages": messages})

"""The back-in-stock form in Debian's Chromium, embedded as a shop embeds it: the shop's
product page is served from another origin (a local HTTP server on its own port) with the
README's snippets; ulak is the app of this process, answering http://ulak.test. The
shopper asks, opens the confirm email in the dev inbox, follows its link and confirms."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Route, expect
from sqlalchemy import select

from tests.browser import DESKTOP, PHONE, assert_fits, check_page
from tests.support import StoreKey, dev_inbox, make_store
from ulak.channels.models import DevInboxMessage
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.worker import Workers

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ULAK = "http://ulak.test"


def shop_page(store_id: int) -> str:
    """A product page with both snippets of the README."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ceramic mug</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Ceramic mug</h1><p>Sold out.</p>
<div data-ulak-back-in-stock data-product="p-kupa"></div>
<script src="{ULAK}/w/{store_id}/back-in-stock.js" async></script>
<h2>Plain form</h2>
<form method="post" action="{ULAK}/w/{store_id}/back-in-stock">
  <input type="hidden" name="product_id" value="p-kupa">
  <input type="hidden" name="lang" value="en">
  <label for="bis-email">Email</label>
  <input type="email" id="bis-email" name="email" required>
  <button type="submit">Notify me</button>
</form></main></body></html>"""


@pytest.fixture
def shop(store: StoreKey) -> Iterator[str]:
    """The shop's own site: another origin than ulak's, on a port of its own."""
    body = shop_page(store.id).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/kupa"
    httpd.shutdown()
    httpd.server_close()


async def through_the_app(context: BrowserContext, client: httpx.AsyncClient) -> None:
    """Answer the requests to ulak (of every page and frame) from the app in this process,
    method, headers and body as the browser sent them."""

    async def handle(route: Route) -> None:
        request = route.request
        headers = await request.all_headers()
        answer = await client.request(
            request.method, request.url, headers=headers, content=request.post_data_buffer
        )
        await route.fulfill(
            status=answer.status_code, headers=dict(answer.headers), body=answer.content
        )

    await context.route(f"{ULAK}/**", handle)


async def mail_html_url(db: Database, to: str) -> str:
    async with db.read() as session:
        rows = await session.execute(
            select(DevInboxMessage.id).where(DevInboxMessage.rcpt_to == to)
        )
        (message_id,) = rows.scalars().all()
    return f"{ULAK}/dev/inbox/{message_id}/html"


async def catalogue(client: httpx.AsyncClient, store: StoreKey, workers: Workers) -> None:
    events = [
        {
            "id": f"evt-{variant}",
            "type": "product.updated",
            "data": {
                "product_id": "p-kupa",
                "variant_id": variant,
                "title": f"Ceramic mug – {colour}",
                "url": "https://shop.example/kupa",
                "inventory": 0,
            },
        }
        for variant, colour in (("v-blue", "Blue"), ("v-green", "Green"))
    ]
    response = await client.post("/v1/events", json={"events": events}, headers=store.auth)
    assert response.status_code == 202, response.text
    await workers.drain()


async def test_the_snippet_embeds_the_form_on_another_site_and_the_email_confirms_it(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    browser: Browser,
    shop: str,
    request: pytest.FixtureRequest,
) -> None:
    await catalogue(client, store, workers)
    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    await through_the_app(context, client)
    page = await context.new_page()

    await page.goto(shop)
    frame_element = page.locator("div[data-ulak-back-in-stock] iframe")
    await expect(frame_element).to_have_count(1)
    assert await frame_element.get_attribute("src") == (
        f"{ULAK}/w/{store.id}/back-in-stock?product_id=p-kupa&lang=en"
    )
    assert await frame_element.get_attribute("title") == "Stoğa girince haber ver"
    form = page.frame_locator("div[data-ulak-back-in-stock] iframe")
    await expect(form.get_by_role("heading", level=1)).to_have_text("Tell me when it's back")
    await expect(form.get_by_label("Option")).to_have_value("")
    await assert_fits(page)

    await form.get_by_label("Option").select_option(label="Ceramic mug – Blue")
    await form.get_by_label("Your email address").fill("shopper@example.com")
    await form.get_by_role("button", name="Notify me").click()
    await expect(form.get_by_role("heading", level=1)).to_have_text("Check your email")
    await expect(form.locator("main")).to_contain_text("shopper@example.com")
    # The shop's page is still the shop's.
    assert page.url == shop

    await workers.drain()
    (mail,) = await dev_inbox(db)
    assert mail["Subject"] == "Stok bildirimini onaylayın: Ceramic mug – Blue"
    # The shopper opens the email and follows its button.
    await page.goto(await mail_html_url(db, "shopper@example.com"))
    # The button opens a new tab, as links in emails do.
    async with page.expect_popup() as opened:
        await page.get_by_role("link", name="Bildirimi onayla").click()
    page = await opened.value
    await expect(page).to_have_url(re.compile(rf"^{ULAK}/p/{store.id}/back_in_stock/"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Confirm your back-in-stock alert"
    )
    await expect(page.locator("main")).to_contain_text(
        "Shall we email shopper@example.com when Ceramic mug – Blue is back in stock?"
    )
    await check_page(page, request, "confirm")
    await page.get_by_role("button", name="Yes, notify me").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("You're on the list")
    await check_page(page, request, "confirmed")

    await workers.drain()
    answer = await client.get("/v1/back-in-stock", headers=store.auth)
    assert [(s["product_id"], s["variant_id"], s["status"]) for s in answer.json()] == [
        ("p-kupa", "v-blue", "waiting")
    ]
    await context.close()


async def test_a_plain_form_on_the_shops_page_posts_to_ulak(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    browser: Browser,
    shop: str,
) -> None:
    await catalogue(client, store, workers)
    context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    await through_the_app(context, client)
    page = await context.new_page()
    await page.goto(shop)
    await page.get_by_label("Email", exact=True).fill("plain@example.com")
    await page.get_by_role("button", name="Notify me").last.click()
    await expect(page).to_have_url(f"{ULAK}/w/{store.id}/back-in-stock")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    await workers.drain()
    assert [m["To"] for m in await dev_inbox(db)] == ["plain@example.com"]
    await context.close()


async def test_the_form_and_its_answers_fit_a_phone_and_pass_axe(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    store = await make_store(
        db, clock, brand_color="#7a1f5c", contact_email="yardim@dukkan.example"
    )
    await catalogue(client, store, workers)
    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    await through_the_app(context, client)
    page = await context.new_page()

    await page.goto(f"{ULAK}/w/{store.id}/back-in-stock?product_id=p-kupa")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Stoğa girince haber ver")
    await check_page(page, request, "form")
    await page.get_by_label("E-posta adresiniz").fill("yanlis")
    await page.get_by_role("button", name="Bana haber ver").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "Geçerli bir e-posta adresi yazın (ör. ad@ornek.com)."
    )
    await check_page(page, request, "form-error")
    await page.get_by_label("E-posta adresiniz").fill("ayse@example.com")
    await page.get_by_role("button", name="Bana haber ver").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("E-postanızı kontrol edin")
    await check_page(page, request, "sent")
    await page.goto(f"{ULAK}/w/{store.id}/back-in-stock?product_id=p-yok")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Ürün bulunamadı")
    await check_page(page, request, "unknown")
    await context.close()

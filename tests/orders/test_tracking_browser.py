"""A shopper opens the tracking page from the link in the shipped email, as `ulak serve`
delivered it to the dev inbox, in Debian's Chromium: the timeline, the parcel and its
carrier's link, at 375 and 1280 px, with axe-core's check."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from tests.browser import DESKTOP, check_page
from tests.support import Server, order_placed
from tests.web.test_pages import all_applied, post_event, serve_with_store
from ulak.db import Database


@pytest.fixture
def server_env(database_url: str) -> dict[str, str]:
    return {
        "ULAK_DATABASE_URL": database_url,
        # No SMTP server: mail goes to the dev inbox, and the inbox pages are served.
        "ULAK_SMTP_URL": "",
        "ULAK_PUBLIC_URL": "",
        "ULAK_LOG_LEVEL": "warning",
        "ULAK_POLL_SECONDS": "0.2",
    }


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = Database(database_url)
    yield opened
    await opened.dispose()


SHIPPED_SUBJECT = "Siparişiniz kargoya verildi – #1001"


async def test_a_shopper_follows_the_shipped_email_to_the_tracking_page(
    server: Server,
    server_env: dict[str, str],
    database: Database,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    store = await serve_with_store(server, server_env)
    key = store["api_key"]
    await post_event(server.url, key, order_placed("1001", occurred_at="2026-11-20T07:30:00Z"))
    await post_event(
        server.url,
        key,
        {
            "id": "evt-shipped",
            "type": "order.shipped",
            "customer": {"id": "c-1042"},
            "data": {
                "order_id": "1001",
                "shipment_id": "shp-1",
                "carrier": "Aras Kargo",
                "tracking_number": "3513773163316",
            },
        },
    )
    await post_event(
        server.url,
        key,
        {
            "id": "evt-transit",
            "type": "shipment.updated",
            "customer": {"id": "c-1042"},
            "data": {
                "shipment_id": "shp-1",
                "status": "in_transit",
                "location": "İstanbul Anadolu Aktarma",
            },
        },
    )

    context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    page = await context.new_page()
    await page.goto(f"{server.url}/dev/inbox")
    shipped_row = page.locator("tbody tr", has_text=SHIPPED_SUBJECT)
    for _ in range(80):
        if await shipped_row.count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await shipped_row.get_by_role("link").click()
    email = page.frame_locator("iframe[title='HTML part']").locator("body")
    button = email.get_by_role("link", name="Sipariş durumunu görün")
    href = await button.get_attribute("href")
    assert href is not None
    assert re.fullmatch(rf"{re.escape(server.url)}/p/{store['id']}/tracking/[\w.-]+", href)
    await all_applied(database)

    # The email's link opens in a new window; the shopper lands on the page.
    response = await page.goto(href)
    assert response is not None
    assert response.status == 200
    await expect(page).to_have_title("Sipariş #1001 · Ayşe'nin Dükkanı")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Siparişiniz yolda")
    await expect(page.locator('[aria-current="step"]')).to_have_text("Kargoda (şu anki adım)")
    timeline = page.locator(".timeline li")
    await expect(timeline).to_have_count(3)
    await expect(timeline.nth(0)).to_contain_text("Yolda")
    await expect(timeline.nth(0)).to_contain_text("İstanbul Anadolu Aktarma")
    await expect(timeline.nth(1)).to_contain_text("Kargoya verildi")
    await expect(timeline.nth(2)).to_contain_text("Sipariş alındı 20 Kasım 2026 10:30")
    carrier_link = page.get_by_role("link", name=re.compile("Kargo firmasının sitesinde takip"))
    await expect(carrier_link).to_have_attribute(
        "href", "https://kargotakip.araskargo.com.tr/mainpage.aspx?code=3513773163316"
    )
    await expect(page.get_by_text("Seramik kupa")).to_be_visible()
    await expect(page.get_by_text("1.249,90 ₺")).to_be_visible()
    # The store's help contacts, in the shell's footer.
    await expect(page.locator("footer")).to_contain_text(
        "Yardım · Sorunuz mu var? Bize ulaşın: destek@aysenin-dukkani.example"
    )
    await check_page(page, request, "tracking")
    await context.close()

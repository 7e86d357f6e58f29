"""A shopper returns an item in a browser: `ulak serve` as a process, the delivered email
read in the dev inbox, its "return an item" link opened in Debian's Chromium, the form
filled in, and the shop's API showing the request."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import PHONE, check_page
from tests.support import Server, create_store_with_cli


@pytest.fixture
def server_env(database_url: str) -> dict[str, str]:
    return {
        "ULAK_DATABASE_URL": database_url,
        # No SMTP server: mail goes to the dev inbox, whose pages are served.
        "ULAK_SMTP_URL": "",
        "ULAK_PUBLIC_URL": "",
        "ULAK_LOG_LEVEL": "warning",
        "ULAK_POLL_SECONDS": "0.2",
    }


async def post_events(base_url: str, api_key: str, *events: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{base_url}/v1/events",
            json={"events": list(events)},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def open_mail(page: Page, base_url: str, subject: str, within: float = 30) -> None:
    """Open the dev inbox, reloading until the message with this subject is there, and open it."""
    deadline = time.monotonic() + within
    await page.goto(f"{base_url}/dev/inbox")
    link = page.get_by_role("link", name=subject, exact=True)
    while await link.count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {subject!r} in the dev inbox within {within}s")
        await asyncio.sleep(0.25)
        await page.reload()
    await link.first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(subject)


async def api_returns(base_url: str, api_key: str, within: float = 30) -> list[Any]:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            response = await client.get(
                f"{base_url}/v1/returns", headers={"Authorization": f"Bearer {api_key}"}
            )
            assert response.status_code == 200, response.text
            found: list[Any] = response.json()
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.25)


async def test_a_shopper_asks_for_an_exchange_from_the_delivered_email(
    server: Server,
    server_env: dict[str, str],
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    store, _ = await asyncio.gather(
        asyncio.to_thread(create_store_with_cli, server_env, "Ayşe'nin Dükkanı"),
        asyncio.to_thread(server.start),
    )
    key = store["api_key"]
    now = datetime.now(UTC).isoformat()
    shirt = {"product_id": "p-tisort", "price": "300.00", "currency": "TRY"}
    await post_events(
        server.url,
        key,
        *(
            {
                "id": f"evt-{variant}",
                "type": "product.updated",
                "data": {**shirt, "variant_id": variant, "title": title, "inventory": stock},
            }
            for variant, title, stock in (
                ("v-s", "Basic tişört S", 4),
                ("v-m", "Basic tişört M", 4),
                ("v-l", "Basic tişört L", 0),
            )
        ),
        {
            "id": "evt-order",
            "type": "order.placed",
            "customer": {
                "id": "c-1042",
                "email": "ayse@example.com",
                "first_name": "Ayşe",
                "locale": "tr",
            },
            "data": {
                "order_id": "1001",
                "number": "#1001",
                "items": [
                    {**shirt, "variant_id": "v-m", "title": "Basic tişört M", "quantity": 2},
                    {"product_id": "p-kupa", "title": "Seramik kupa", "price": "150.00"},
                ],
                "total": "750.00",
                "currency": "TRY",
            },
        },
    )
    await post_events(
        server.url,
        key,
        {
            "id": "evt-delivered",
            "type": "order.delivered",
            "occurred_at": now,
            "customer": {"id": "c-1042"},
            "data": {"order_id": "1001"},
        },
    )

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    await open_mail(page, server.url, "Siparişiniz teslim edildi – #1001")
    mail = page.frame_locator("iframe[title='HTML part']")
    link = mail.get_by_role("link", name="ürün iade edebilirsiniz")
    href = await link.get_attribute("href")
    assert href is not None
    assert re.fullmatch(rf"{re.escape(server.url)}/p/{store['id']}/return/[\w.-]+", href)

    await page.goto(href)
    await expect(page).to_have_title("İade ve değişim · Ayşe'nin Dükkanı")
    await expect(page.get_by_role("heading", level=1)).to_have_text("İade ve değişim")
    await check_page(page, request, "return-form")

    await page.get_by_label("Adet · Basic tişört M").select_option("1")
    await page.get_by_label("Yerine istediğiniz seçenek · Basic tişört M").select_option(
        "Basic tişört S"
    )
    await page.get_by_label("İade nedeni").select_option("Beden / ölçü uymadı")
    await page.get_by_label("Açıklama (isteğe bağlı)").fill("Bir beden küçüğü olmalı.")
    await page.get_by_label("Değişim").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="İade talebini gönder").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("İade talebiniz alındı")
    await expect(page.get_by_text("1 × Basic tişört M → Basic tişört S")).to_be_visible()
    shown = await page.locator("main").inner_text()
    found = re.search(r"Talep numaranız (R-[0-9A-Z]{4}-[0-9A-Z]{4})\.", shown)
    assert found is not None
    await check_page(page, request, "return-done")

    (asked,) = await api_returns(server.url, key)
    assert asked["reference"] == found[1]
    assert (asked["order_id"], asked["status"], asked["resolution"], asked["reason"]) == (
        "1001",
        "requested",
        "exchange",
        "wrong_size",
    )
    assert [
        (i["title"], i["quantity"], i["exchange_variant_id"], i["exchange_title"])
        for i in asked["items"]
    ] == [("Basic tişört M", 1, "v-s", "Basic tişört S")]
    assert asked["comment"] == "Bir beden küçüğü olmalı."

    # The confirmation reaches her too.
    await open_mail(page, server.url, f"Sipariş #1001: iade talebiniz alındı – {found[1]}")
    await context.close()

"""A shopper opens the review link from the request email in the dev inbox (`ulak serve`
as a process, Debian's Chromium), gives stars, a text and a photo, sends it, and the
review appears in the store's public reviews and widget."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.browser import PHONE, check_page
from tests.reviews import images
from tests.support import Server, consent_updated, create_store_with_cli, order_placed, ulak_cli


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


async def post(base_url: str, key: str, *events: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{base_url}/v1/events",
            json={"events": list(events)},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["rejected"] == []


async def public_reviews(base_url: str, store_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{base_url}/v1/stores/{store_id}/reviews")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    body: dict[str, Any] = answer.json()
    return body


async def test_a_shopper_reviews_with_a_photo_from_the_request_email(
    server: Server,
    server_env: dict[str, str],
    browser: Browser,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    store, _ = await asyncio.gather(
        asyncio.to_thread(create_store_with_cli, server_env), asyncio.to_thread(server.start)
    )
    # Asked at delivery rather than a week later, so the email is there at once.
    settings = await asyncio.to_thread(
        ulak_cli, "reviews", "settings", "--store", str(store["id"]), "--delay-days", "0",
        env=server_env,
    )  # fmt: skip
    assert settings.returncode == 0, settings.stderr
    key = store["api_key"]
    await post(server.url, key, consent_updated())
    await post(server.url, key, order_placed("1001"))
    delivered = {
        "type": "order.delivered",
        "customer": {"id": "c-1042"},
        "data": {"order_id": "1001"},
    }
    await post(server.url, key, delivered)

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    deadline = time.monotonic() + 30
    await page.goto(f"{server.url}/dev/inbox")
    subject = page.get_by_role("link", name="Siparişinizi nasıl buldunuz? – #1001")
    while await subject.count() == 0:
        assert time.monotonic() < deadline, "no review request reached the dev inbox"
        await asyncio.sleep(0.3)
        await page.reload()
    await subject.click()
    text = await page.locator("pre").inner_text()
    found = re.search(r"Değerlendirmemi yaz: (\S+)", text)
    assert found, text
    link = found.group(1)
    assert link.startswith(f"{server.url}/p/{store['id']}/review/")

    photo = tmp_path / "IMG_2041.jpg"
    photo.write_bytes(images.jpeg_with_gps())
    response = await page.goto(link)
    assert response is not None
    assert response.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text("Siparişinizi değerlendirin")
    assert await page.locator("html").get_attribute("lang") == "tr"
    await check_page(page, request, "review-form")

    cup = page.get_by_role("region", name="Seramik kupa")
    await cup.locator("label", has_text="5 yıldız").click()  # the fifth star
    await expect(cup.get_by_role("radio", name="5 yıldız")).to_be_checked()
    await cup.get_by_label("Başlık").fill("Tam istediğim gibi")
    await cup.get_by_label("Yorumunuz").fill("Çayım uzun süre sıcak kalıyor.")
    await cup.get_by_label(re.compile("^Fotoğraflar")).set_input_files(str(photo))
    await expect(page.get_by_label("Görünecek adınız")).to_have_value("Ayşe Y.")
    await page.get_by_label(re.compile("bu yorumu e-postalarında alıntılayabilir")).check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Değerlendirmemi gönder").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Teşekkür ederiz!")
    await expect(page.get_by_text("Değerlendirmeniz yayımlandı.")).to_be_visible()
    await check_page(page, request, "review-thanks")

    deadline = time.monotonic() + 20
    body = await public_reviews(server.url, store["id"])
    while body["count"] == 0:
        assert time.monotonic() < deadline, "the review was not published"
        await asyncio.sleep(0.3)
        body = await public_reviews(server.url, store["id"])
    assert (body["count"], body["average"]) == (1, 5.0)
    (review,) = body["reviews"]
    assert (review["product_id"], review["title"], review["name"]) == (
        "p-1",
        "Tam istediğim gibi",
        "Ayşe Y.",
    )
    assert len(review["photos"]) == 1

    widget = await page.goto(f"{server.url}/w/{store['id']}/reviews?product_id=p-1")
    assert widget is not None
    assert widget.status == 200
    await expect(page.get_by_text("Çayım uzun süre sıcak kalıyor.")).to_be_visible()
    await expect(page.get_by_role("img", name="Müşteri fotoğrafı")).to_be_visible()
    await check_page(page, request, "review-widget")
    await context.close()

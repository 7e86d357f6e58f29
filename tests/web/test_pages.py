"""The server-rendered pages as a person meets them: `ulak serve` as a process, Debian's
Chromium driven through Playwright, and the database checked afterwards.

The dev inbox (served only when no SMTP URL is configured) and the customer's one-click
unsubscribe page (RFC 8058)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect
from sqlalchemy import func, select

from tests.browser import DESKTOP, PHONE, assert_fits
from tests.support import (
    Server,
    StoreKey,
    create_store_with_cli,
    make_store,
    order_placed,
    stored_keys,
)
from ulak.app import create_app
from ulak.channels.models import DevInboxMessage
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.consent.service import consent_state
from ulak.customers.models import Customer
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.errors import NotFound
from ulak.events.models import Event
from ulak.messages.service import unsubscribe_url
from ulak.stores.service import get_store
from ulak.worker import Workers

SUBJECT = "Siparişiniz alındı – #1001"

T = TypeVar("T")


# Fixtures: a server per test, the database beside it, and a browser.


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
    """The database the server uses, opened in this process to check what it did."""
    opened = Database(database_url)
    yield opened
    await opened.dispose()


# Helpers.


async def serve_with_store(
    server: Server, env: dict[str, str], name: str = "Ayşe'nin Dükkanı"
) -> dict[str, Any]:
    """`ulak stores create` while `ulak serve` starts: both are a few seconds of imports."""
    store: dict[str, Any]
    store, _ = await asyncio.gather(
        asyncio.to_thread(create_store_with_cli, env, name), asyncio.to_thread(server.start)
    )
    return store


async def post_event(base_url: str, api_key: str, event: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{base_url}/v1/events", json=event, headers={"Authorization": f"Bearer {api_key}"}
        )
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float, what: str) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


async def customer_id_of(database: Database, store_id: int, ref: str) -> int:
    """The customer's row id, once the server has applied the event that creates them."""

    async def probe() -> int | None:
        async with database.transaction() as session:
            try:
                return (await find_customer(session, store_id=store_id, ref=ref)).id
            except NotFound:
                return None

    return await eventually(probe, 15, f"customer {ref} in store {store_id}")


async def unsubscribed_at(database: Database, customer_id: int) -> datetime | None:
    """Since when the customer's email consent is revoked by the unsubscribe link."""
    async with database.transaction() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        state = consent_state(customer, "email")
    if state is None:
        return None
    assert (state.status, state.source) == ("revoked", "unsubscribe_link")
    return state.since


async def eventually_unsubscribed(database: Database, customer_id: int) -> datetime:
    """When the customer was unsubscribed, once the worker applied the page's event."""
    return await eventually(
        lambda: unsubscribed_at(database, customer_id), 15, f"customer {customer_id} unsubscribed"
    )


async def all_applied(database: Database) -> None:
    """Wait until the worker has applied every event the server accepted."""

    async def probe() -> bool | None:
        stored = len(await stored_keys(database))
        async with database.read() as session:
            applied = await session.execute(
                select(func.count()).select_from(Event).where(Event.status == "applied")
            )
            return True if applied.scalar_one() == stored else None

    await eventually(probe, 15, "every accepted event applied")


async def link_for(database: Database, base_url: str, store_id: int, customer_id: int) -> str:
    """The link a commercial email would carry, signed with the store's secret."""
    async with database.transaction() as session:
        store = await get_store(session, store_id)
        return unsubscribe_url(base_url, store, customer_id)


async def serve_in_process(page: Page, client: httpx.AsyncClient) -> list[str]:
    """Answer the page's requests to http://ulak.test from the app in this process (a layout
    check needs no server); any other address is refused and listed in the result."""
    outside: list[str] = []

    async def through_the_app(route: Route) -> None:
        if not route.request.url.startswith("http://ulak.test/"):
            outside.append(route.request.url)
            await route.abort()
            return
        answer = await client.get(route.request.url)
        await route.fulfill(
            status=answer.status_code, headers=dict(answer.headers), body=answer.content
        )

    await page.route("**/*", through_the_app)
    return outside


async def open_inbox_with_a_message(page: Page, base_url: str, within: float = 20) -> None:
    """Open the dev inbox and reload until the workers have delivered a message."""
    deadline = time.monotonic() + within
    await page.goto(f"{base_url}/dev/inbox")
    while await page.locator("tbody tr").count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no message reached the dev inbox within {within}s")
        await expect(page.get_by_text("The inbox is empty.")).to_be_visible()
        await asyncio.sleep(0.25)
        await page.reload()


# 1. The dev inbox.


async def test_dev_inbox_shows_the_order_confirmation_in_a_browser(
    server: Server, server_env: dict[str, str], browser: Browser, tmp_path: Path
) -> None:
    store = await serve_with_store(server, server_env)
    event = order_placed("1001", customer_id="c-1042", email="Ayse@Example.com")
    await post_event(server.url, store["api_key"], event)

    context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    page = await context.new_page()
    await open_inbox_with_a_message(page, server.url)

    await expect(page).to_have_title("Dev inbox · ulak")
    await expect(page.locator("header")).to_have_text("ulak · dev inbox")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    await expect(cells.nth(0)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    await expect(cells.nth(1)).to_have_text("ayse@example.com")
    link = cells.nth(2).get_by_role("link")
    await expect(link).to_have_text(SUBJECT)
    await assert_fits(page)
    await page.screenshot(path=str(tmp_path / "dev-inbox-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    await assert_fits(page)
    await page.screenshot(path=str(tmp_path / "dev-inbox-phone.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]

    async with page.expect_response(re.compile(r"/dev/inbox/\d+/html$")) as frame_info:
        await link.click()
    await expect(page).to_have_url(re.compile(rf"^{re.escape(server.url)}/dev/inbox/\d+$"))
    await expect(page).to_have_title(f"{SUBJECT} · dev inbox")
    await expect(page.get_by_role("heading", level=1)).to_have_text(SUBJECT)
    headers = {
        await row.locator("th").inner_text(): await row.locator("td").inner_text()
        for row in await page.locator(".card").first.locator("tr").all()
    }
    assert headers["From"] == "Ayşe'nin Dükkanı <merhaba@aysenin-dukkani.example>"
    assert headers["To"] == "ayse@example.com"
    assert headers["Subject"] == SUBJECT
    assert re.fullmatch(r"<[0-9a-f]{24}\.\d+@aysenin-dukkani\.example>", headers["Message-ID"])
    # An order confirmation is informational: no unsubscribe headers.
    assert "List-Unsubscribe" not in headers

    plain = page.locator("pre")
    await expect(plain).to_contain_text("1.249,90 ₺")
    await expect(plain).to_contain_text("- Seramik kupa × 2: 499,90 ₺")
    assert "<" not in await plain.inner_text()

    frame = page.get_by_title("HTML part")
    # A bare `sandbox` attribute: no scripts, no same origin, no forms inside the email.
    assert await frame.get_attribute("sandbox") == ""
    frame_response = await frame_info.value
    assert frame_response.status == 200
    policy = await frame_response.header_value("content-security-policy")
    assert policy is not None
    assert "default-src 'none'" in policy
    email_body = page.frame_locator("iframe[title='HTML part']").locator("body")
    await expect(email_body.get_by_role("heading", level=1)).to_have_text(
        "Siparişiniz için teşekkürler!"
    )
    await expect(email_body).to_contain_text("Seramik kupa")
    await expect(email_body).to_contain_text("Bakır çaydanlık")
    await expect(email_body).to_contain_text("1.249,90 ₺")
    await assert_fits(page)
    await page.screenshot(path=str(tmp_path / "dev-message-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    assert await frame.evaluate("f => f.getBoundingClientRect().right") <= PHONE["width"]
    await page.screenshot(path=str(tmp_path / "dev-message-phone.png"), full_page=True)

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Raw message (.eml)").click()
    download = await download_info.value
    assert re.fullmatch(r"message-\d+\.eml", download.suggested_filename)
    await context.close()


async def test_dev_inbox_message_page_fits_a_phone(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, browser: Browser
) -> None:
    """The same page, served by the app in this process (a layout check needs no server)."""
    response = await client.post("/v1/events", json=order_placed("1001"), headers=store.auth)
    assert response.status_code == 202
    await workers.drain()

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()

    await serve_in_process(page, client)
    await open_inbox_with_a_message(page, "http://ulak.test")
    await page.locator("tbody tr").first.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(SUBJECT)
    await expect(page.frame_locator("iframe[title='HTML part']").locator("body")).to_contain_text(
        "Seramik kupa"
    )
    await assert_fits(page)
    await context.close()


# 2. The unsubscribe page.


async def test_unsubscribe_in_a_browser(
    server: Server,
    server_env: dict[str, str],
    database: Database,
    browser: Browser,
    tmp_path: Path,
) -> None:
    store = await serve_with_store(server, server_env)
    await post_event(server.url, store["api_key"], order_placed("1001", customer_id="c-1042"))
    mehmet_orders = order_placed("1002", customer_id="c-2000", email="mehmet@example.com")
    await post_event(server.url, store["api_key"], mehmet_orders)
    ayse = await customer_id_of(database, store["id"], "c-1042")
    mehmet = await customer_id_of(database, store["id"], "c-2000")
    url = await link_for(database, server.url, store["id"], ayse)
    assert url.startswith(f"{server.url}/u/{store['id']}/")

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    await expect(page).to_have_title("E-posta aboneliğinden çık · Ayşe'nin Dükkanı")
    assert await page.locator("html").get_attribute("lang") == "tr"
    await expect(page.locator("header")).to_have_text("Ayşe'nin Dükkanı")
    await expect(page.get_by_role("heading", level=1)).to_have_text("E-posta aboneliğinden çık")
    await expect(
        page.get_by_text(
            "Ayşe'nin Dükkanı tarafından gönderilen kampanya e-postalarını "
            "artık almak istemiyor musunuz?",
            exact=True,
        )
    ).to_be_visible()
    await expect(
        page.get_by_text(
            "Sipariş ve kargo bilgilendirmeleri gibi hizmet e-postaları gelmeye devam eder.",
            exact=True,
        )
    ).to_be_visible()
    button = page.get_by_role("button", name="Aboneliğimi iptal et")
    await expect(button).to_be_visible()
    await assert_fits(page)
    await page.screenshot(path=str(tmp_path / "unsubscribe-phone.png"), full_page=True)
    # Opening the link (as link-scanning mail filters do) unsubscribes nobody.
    assert await unsubscribed_at(database, ayse) is None

    async with page.expect_navigation():
        await button.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Aboneliğiniz iptal edildi")
    await expect(page).to_have_title("Aboneliğiniz iptal edildi · Ayşe'nin Dükkanı")
    await expect(
        page.get_by_text(
            "Ayşe'nin Dükkanı size artık kampanya e-postası göndermeyecek.", exact=True
        )
    ).to_be_visible()
    await expect(page.get_by_role("button")).to_have_count(0)
    await assert_fits(page)
    await page.screenshot(path=str(tmp_path / "unsubscribed-phone.png"), full_page=True)

    first = await eventually_unsubscribed(database, ayse)
    await all_applied(database)
    assert await unsubscribed_at(database, mehmet) is None

    # Posting again (a reload that re-sends the form) keeps the first time.
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.post(url)
    assert again.status_code == 200
    assert "Aboneliğiniz iptal edildi" in again.text
    await all_applied(database)
    assert await unsubscribed_at(database, ayse) == first
    await context.close()


async def test_a_tampered_or_foreign_unsubscribe_link_is_a_404_page_and_changes_nothing(
    server: Server,
    server_env: dict[str, str],
    database: Database,
    browser: Browser,
    tmp_path: Path,
) -> None:
    store_a, store_b, _ = await asyncio.gather(
        asyncio.to_thread(create_store_with_cli, server_env),
        make_store(database, FrozenClock(), name="Mehmet'in Dükkanı"),
        asyncio.to_thread(server.start),
    )
    await post_event(server.url, store_a["api_key"], order_placed("1001", customer_id="c-1042"))
    await post_event(server.url, store_b.key, order_placed("2001", customer_id="c-1042"))
    a_id, b_id = store_a["id"], store_b.id
    ayse_at_a = await customer_id_of(database, a_id, "c-1042")
    ayse_at_b = await customer_id_of(database, b_id, "c-1042")
    url = await link_for(database, server.url, a_id, ayse_at_a)
    token = url.rpartition("/")[2]
    payload, _, signature = token.partition(".")
    # Store A's secret over someone who is not A's customer: a genuine signature.
    outsider = (await link_for(database, server.url, a_id, ayse_at_b)).rpartition("/")[2]

    # One character changed in the middle of the signature (the last one may carry only
    # padding bits), another customer's payload under the original signature, no signature.
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    bad_links = {
        "signature": f"{server.url}/u/{a_id}/{payload}.{flipped}",
        "payload": f"{server.url}/u/{a_id}/{outsider.partition('.')[0]}.{signature}",
        "unsigned": f"{server.url}/u/{a_id}/{payload}",
        # Signed for store A, opened under store B's id.
        "other store": f"{server.url}/u/{b_id}/{token}",
    }

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    async with httpx.AsyncClient(timeout=10) as client:
        for what, bad in bad_links.items():
            response = await page.goto(bad)
            assert response is not None
            assert response.status == 404, what
            assert response.headers["content-type"].startswith("text/html"), what
            # The store's language (Turkish here), or the browser's when there is no store.
            await expect(page.get_by_role("heading", level=1)).to_have_text("Bir sorun oluştu")
            await expect(page.get_by_text("Bu bağlantı geçerli değil.")).to_be_visible()
            await expect(page.get_by_role("button")).to_have_count(0)
            if what == "signature":
                await assert_fits(page)
                await page.screenshot(path=str(tmp_path / "unsubscribe-404.png"), full_page=True)

            # Posting it, as the page's form or as a mail client's one-click, changes nothing.
            form = await client.post(bad, headers={"Accept": "text/html"})
            assert form.status_code == 404, what
            assert form.headers["content-type"].startswith("text/html"), what
            one_click = await client.post(bad, data={"List-Unsubscribe": "One-Click"})
            assert one_click.status_code == 404, what

        # Genuinely signed by store B, but naming store A's customer.
        crossed = await link_for(database, server.url, b_id, ayse_at_a)
        assert (await client.post(crossed)).status_code == 404
        # A store that does not exist.
        missing = await client.get(
            f"{server.url}/u/999999/{token}", headers={"Accept": "text/html"}
        )
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        # A store id no database column can hold.
        for method in ("GET", "POST"):
            huge = await client.request(
                method, f"{server.url}/u/{'9' * 23}/{token}", headers={"Accept": "text/html"}
            )
            assert huge.status_code == 404, method
            assert "This link is not valid." in huge.text  # no store: the browser's language
    await context.close()

    await all_applied(database)
    async with database.transaction() as session:
        customers = (await session.execute(select(Customer))).scalars().all()
    assert len(customers) == 2
    assert [c.consent for c in customers] == [{}, {}]
    # The genuine link still works afterwards.
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(url)).status_code == 200
    await eventually_unsubscribed(database, ayse_at_a)
    await all_applied(database)
    assert await unsubscribed_at(database, ayse_at_b) is None


# 3. RFC 8058: the mail client posts for the customer.


async def test_one_click_post_from_a_mail_client_unsubscribes(
    server: Server, database: Database
) -> None:
    store, _ = await asyncio.gather(
        make_store(database, FrozenClock()), asyncio.to_thread(server.start)
    )
    await post_event(server.url, store.key, order_placed("1001", customer_id="c-1042"))
    customer = await customer_id_of(database, store.id, "c-1042")
    url = await link_for(database, server.url, store.id, customer)

    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Aboneliğiniz iptal edildi" in response.text
    await eventually_unsubscribed(database, customer)


# 4. The email's HTML, for the sandboxed frame, under a policy that allows no scripts.


async def test_dev_inbox_html_part_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    response = await client.post("/v1/events", json=order_placed("1001"), headers=store.auth)
    assert response.status_code == 202
    await workers.drain()
    async with db.transaction() as session:
        message_id = (await session.execute(select(DevInboxMessage.id))).scalar_one()

    html = await client.get(f"/dev/inbox/{message_id}/html")
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    policy = [p.strip() for p in html.headers["content-security-policy"].split(";")]
    assert policy[0] == "default-src 'none'"
    assert not any(p.startswith(("script-src", "default-src *")) for p in policy)
    assert "Seramik kupa" in html.text

    raw = await client.get(f"/dev/inbox/{message_id}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "message/rfc822"
    assert b"Subject: " in raw.content
    assert (await client.get(f"/dev/inbox/{message_id + 1}/html")).status_code == 404


async def test_dev_inbox_is_not_served_when_smtp_is_configured(database_url: str) -> None:
    settings = Settings(database_url=database_url, smtp_url="smtp://127.0.0.1:1")
    app = create_app(settings, run_workers=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ulak.test") as client:
        for path in ("/dev/inbox", "/dev/inbox/1", "/dev/inbox/1/html", "/dev/inbox/1/raw"):
            assert (await client.get(path)).status_code == 404, path
    await app.state.database.dispose()


async def test_the_api_docs_work_without_a_network(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    """Swagger UI is served from the package: the page lists the event endpoint."""
    context = await browser.new_context()
    page = await context.new_page()
    outside = await serve_in_process(page, client)
    await page.goto("http://ulak.test/docs")
    await expect(page.get_by_text("/v1/events", exact=True)).to_be_visible(timeout=15_000)
    # GET (the profile) and DELETE (erasure) share the path.
    await expect(page.get_by_text("/v1/customers/{ref}", exact=True)).to_have_count(2)
    await expect(page.get_by_text("/v1/customers/{ref}/export", exact=True)).to_be_visible()
    assert outside == []
    await context.close()

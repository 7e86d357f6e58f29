"""The shopper's path through the preference centre in Debian's Chromium: the preferences
link of a real commercial email in the dev inbox, offers and SMS turned off, saved, and
what the worker applied shown when the page is opened again."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.browser import PHONE, check_page
from tests.support import Server, dev_inbox
from tests.web.test_pages import all_applied, customer_id_of, eventually, post_event
from tests.web.test_pages import serve_with_store as serve_with_store
from ulak.clock import SystemClock
from ulak.consent.service import consent_state
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.preferences.models import TopicPreference
from ulak.sms.service import set_sms

PHONE_NUMBER = "+905321234567"


@pytest.fixture
def server_env(database_url: str) -> dict[str, str]:
    return {
        "ULAK_DATABASE_URL": database_url,
        "ULAK_SMTP_URL": "",  # the dev inbox
        "ULAK_PUBLIC_URL": "",
        "ULAK_LOG_LEVEL": "warning",
        "ULAK_POLL_SECONDS": "0.2",
    }


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = Database(database_url)
    yield opened
    await opened.dispose()


def signup(kind: str, **data: Any) -> dict[str, Any]:
    customer = {
        "id": "c-1042",
        "email": "ayse@example.com",
        "phone": PHONE_NUMBER,
        "first_name": "Ayşe",
        "locale": "tr",
    }
    return {"id": f"evt-{kind}-{data.get('channel', '')}", "type": kind, "customer": customer} | (
        {"data": data} if data else {}
    )


async def preferences_link(database: Database) -> str:
    """The preferences link in the footer of the welcome email, once it is in the inbox."""

    async def probe() -> str | None:
        for mail in await dev_inbox(database):
            html = mail.get_body(preferencelist=("html",))
            assert html is not None
            found = re.search(r'href="([^"]+/preferences/[^"]+)"', str(html.get_content()))
            if found is not None:
                return found.group(1)
        return None

    return await eventually(probe, 30, "the welcome email with its preferences link")


async def test_a_shopper_turns_offers_and_sms_off_from_a_commercial_email(
    server: Server,
    server_env: dict[str, str],
    database: Database,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    store = await serve_with_store(server, server_env)
    async with database.transaction() as session:
        await set_sms(
            session,
            store_id=store["id"],
            clock=SystemClock(),
            provider="netgsm",
            credentials={"usercode": "u", "password": "p"},
            sender="DUKKAN",
        )
    for event in (
        signup("customer.created"),
        signup("consent.updated", channel="email", status="granted", source="signup_form"),
        signup("consent.updated", channel="sms", status="granted", source="signup_form"),
    ):
        await post_event(server.url, store["api_key"], event)
    customer_id = await customer_id_of(database, store["id"], "c-1042")
    url = await preferences_link(database)
    assert url.startswith(f"{server.url}/p/{store['id']}/preferences/")

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text("İletişim tercihleriniz")
    email_offers = page.locator("#topic-email-offers")
    sms = page.get_by_label("SMS ile kampanya ve haber almak istiyorum")
    await expect(email_offers).to_be_checked()
    await expect(sms).to_be_checked()
    await expect(page.locator("#topic-email-order_updates")).to_be_disabled()
    await check_page(page, request, "preferences")

    await email_offers.uncheck()
    await sms.uncheck()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Tercihlerimi kaydet").click()
    await expect(page.get_by_role("status")).to_contain_text("Tercihleriniz kaydedildi")
    await check_page(page, request, "preferences-saved")
    await all_applied(database)

    # Opened again, the page reads what the worker applied.
    await page.goto(url)
    await expect(page.locator("#topic-email-offers")).not_to_be_checked()
    await expect(page.locator("#channel-sms")).not_to_be_checked()
    await expect(page.locator("#channel-email")).to_be_checked()
    await expect(page.locator("#topic-sms-offers")).to_be_checked()
    async with database.read() as session:
        person = await session.get(Customer, customer_id)
        assert person is not None
        assert [
            (c, s.status, s.source) for c in ("email", "sms") if (s := consent_state(person, c))
        ] == [
            ("email", "granted", "signup_form"),
            ("sms", "revoked", "preferences_page"),
        ]
        chosen = await session.get(TopicPreference, (customer_id, "email", "offers"))
        assert chosen is not None
        assert chosen.subscribed is False
    await context.close()

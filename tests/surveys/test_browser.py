"""A shopper answers the survey in a browser: `ulak serve` as a process, the survey email
in the dev inbox, a click on a score, a comment, the answer stored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from tests.browser import PHONE, check_page
from tests.support import Server, order_placed
from tests.web.test_pages import eventually, post_event, serve_with_store
from ulak.db import Database
from ulak.surveys.models import SurveyAnswer

SUBJECT = "#1001 numaralı siparişiniz nasıldı?"


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


async def stored_answers(database: Database) -> list[tuple[Any, ...]] | None:
    async with database.read() as session:
        rows = await session.execute(
            select(
                SurveyAnswer.order_id, SurveyAnswer.kind, SurveyAnswer.score, SurveyAnswer.comment
            )
        )
        found = [tuple(row) for row in rows]
    return found or None


async def test_a_shopper_answers_the_survey_from_the_email(
    server: Server,
    server_env: dict[str, str],
    database: Database,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    store = await serve_with_store(server, server_env)
    await post_event(server.url, store["api_key"], order_placed("1001", customer_id="c-1042"))
    # The shop asks at once (a delivery would ask two days later).
    due = {
        "type": "survey.due",
        "customer": {"id": "c-1042"},
        "data": {"order_id": "1001", "kind": "csat"},
    }
    await post_event(server.url, store["api_key"], due)

    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()

    async def survey_in_inbox() -> bool | None:
        await page.goto(f"{server.url}/dev/inbox")
        return True if await page.get_by_role("link", name=SUBJECT).count() else None

    try:
        # The first email waits for the worker's helper process to start (seconds on a
        # busy machine).
        await eventually(survey_in_inbox, 60, "the survey email in the dev inbox")
    except AssertionError:
        print(await page.content(), server.output())
        raise
    await page.get_by_role("link", name=SUBJECT).click()
    email = page.frame_locator("iframe[title='HTML part']").locator("body")
    await expect(email.get_by_role("heading", level=1)).to_have_text("Nasıldı?")
    # The email's scale: five links, 1 to 5. The dev inbox frame is sandboxed, so the
    # shopper's click is a visit to the link's address.
    scale = email.get_by_role("link", name=re.compile(r"^\d$"))
    await expect(scale).to_have_count(5)
    href = await email.get_by_role("link", name="4", exact=True).get_attribute("href")
    assert href is not None
    assert href.startswith(f"{server.url}/p/{store['id']}/survey/")
    assert href.endswith("?score=4")

    response = await page.goto(href)
    assert response is not None
    assert response.status == 200
    await expect(page).to_have_title("Siparişiniz nasıldı? · Ayşe'nin Dükkanı")
    assert await page.locator("html").get_attribute("lang") == "tr"
    chosen = page.get_by_role("radio", name="4")
    await expect(chosen).to_be_checked()
    await check_page(page, request, "survey-form")
    # Nothing is recorded by opening the link.
    assert await stored_answers(database) is None

    await page.get_by_label("Eklemek istedikleriniz (isteğe bağlı)").fill(
        "Çaydanlık çok güzel, kargo biraz gecikti."
    )
    await page.get_by_role("radio", name="5").check(force=True)
    await page.get_by_role("button", name="Yanıtımı gönder").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Teşekkür ederiz!")
    await expect(page.get_by_role("status")).to_have_text("Yanıtınızı aldık: 5 / 5.")
    await check_page(page, request, "survey-thanks")

    stored = await eventually(lambda: stored_answers(database), 15, "the answer stored")
    assert stored == [("1001", "csat", 5, "Çaydanlık çok güzel, kargo biraz gecikti.")]
    await context.close()

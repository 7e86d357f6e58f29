"""The shipped emails in a real browser (Debian's Chromium through Playwright), as a phone
shows them: 375 px wide, also when the mail client strips the <style> element (some
webmail and Android clients do): only the inlined styles remain then, so the layout must
be fluid by them alone. And in dark mode, which the <style> element's rules colour."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from ulak.messages.rendering import (
    SHOP_ALERT,
    Brand,
    render_email,
    sample_context,
    shipped_templates,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
BRAND = Brand(
    store_name="Ayşe'nin Dükkanı",
    locale="tr",
    timezone="Europe/Istanbul",
    currency="TRY",
    logo_url=None,
    brand_color="#c2410c",
    postal_address="Moda Cad. 12\nKadıköy/İstanbul",
    contact_email="merhaba@aysenin.example",
    contact_phone="+90 216 555 01 02",
    website_url="https://aysenin.example",
)
STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        if os.environ.get("CI"):
            pytest.fail(f"Debian's chromium is missing at {CHROMIUM}: CI must run this check")
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM})")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def html_of(template: str, locale: str) -> str:
    context = sample_context(template)
    context["order"]["order_url"] = "https://aysenin.example/hesabim/siparis/1001"
    context["order"]["payment_method"] = "credit_card"
    context["coupon"] = {"code": "HOSGELDIN-7KQ2", "kind": "percent", "value": 10}
    if template == SHOP_ALERT:
        context = {"alert": {"template": "order_shipped", "reason": "line 3", "store_id": 1}}
    return render_email(
        template,
        locale=locale,
        brand=BRAND,
        context=context,
        unsubscribe_url="https://ulak.aysenin.example/u/1/token",
    ).html


async def scroll_width(browser: Browser, html: str, width: int, screenshot: str | None) -> int:
    page = await browser.new_page(viewport={"width": width, "height": 800})
    try:
        # No network: pictures of the sample order are not fetched (their boxes still count).
        await page.route("**/*", lambda route: route.abort())
        await page.set_content(html, wait_until="domcontentloaded")
        if screenshot:
            await page.screenshot(path=screenshot, full_page=True)
        found = await page.evaluate("document.documentElement.scrollWidth")
        assert isinstance(found, int)
        return found
    finally:
        await page.close()


@pytest.mark.parametrize("locale", ["tr", "en"])
async def test_every_email_fits_a_phone_without_its_style_element(
    browser: Browser, locale: str
) -> None:
    for template in (*shipped_templates(), SHOP_ALERT):
        html = html_of(template, locale)
        stripped, removed = STYLE.subn("", html)
        assert removed == 1
        # Screenshots to look at (not kept in the repository).
        shot = f"/tmp/ulak-{template}-{locale}-375-nostyle.png" if locale == "tr" else None
        assert await scroll_width(browser, stripped, 375, shot) <= 375, template
        assert await scroll_width(browser, html, 375, None) <= 375, template


async def test_the_order_emails_at_a_phones_and_a_desktops_width(browser: Browser) -> None:
    for template in ("order_confirmation", "order_shipped"):
        html = html_of(template, "tr")
        for width in (375, 600):
            shot = f"/tmp/ulak-{template}-tr-{width}.png"
            assert await scroll_width(browser, html, width, shot) <= width
    # The content column keeps to 600 px on a wide screen.
    page = await browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        await page.set_content(html_of("order_confirmation", "tr"))
        box = await page.locator("table.container").bounding_box()
        assert box is not None
        assert box["width"] == 600
    finally:
        await page.close()


async def test_dark_mode_colours_the_email_dark(browser: Browser) -> None:
    html = html_of("order_confirmation", "tr")
    colours = {}
    for scheme in ("light", "dark"):
        page = await browser.new_page(color_scheme=scheme, viewport={"width": 600, "height": 800})
        try:
            await page.set_content(html)
            await page.screenshot(path=f"/tmp/ulak-order_confirmation-tr-{scheme}.png")
            colours[scheme] = await page.evaluate(
                """(selectors) => selectors.map((s) => {
                    const style = getComputedStyle(document.querySelector(s));
                    return [style.backgroundColor, style.color]; })""",
                ["body", "table.container", "td.content h1", "td.button-cell", "a.button"],
            )
        finally:
            await page.close()
    assert colours["light"] == [
        ["rgb(243, 244, 246)", "rgb(0, 0, 0)"],
        ["rgb(255, 255, 255)", "rgb(0, 0, 0)"],
        ["rgba(0, 0, 0, 0)", "rgb(17, 24, 39)"],
        ["rgb(194, 65, 12)", "rgb(31, 41, 55)"],
        ["rgb(194, 65, 12)", "rgb(255, 255, 255)"],
    ]
    # Dark grounds, light text; the button keeps the brand's colour.
    assert colours["dark"] == [
        ["rgb(17, 24, 39)", "rgb(255, 255, 255)"],
        ["rgb(31, 41, 55)", "rgb(255, 255, 255)"],
        ["rgba(0, 0, 0, 0)", "rgb(249, 250, 251)"],
        ["rgb(194, 65, 12)", "rgb(229, 231, 235)"],
        ["rgb(194, 65, 12)", "rgb(255, 255, 255)"],
    ]

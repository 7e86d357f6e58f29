"""What every browser test of a customer page shares: Debian's Chromium through
Playwright, the two screen sizes every page must fit, screenshots kept as artefacts, and
an accessibility check with axe-core.

Screenshots go to `test-artifacts/screenshots/` (or `$ULAK_TEST_ARTIFACTS`), named by the
test, so a person can look at what the shopper saw at 375 and 1280 px.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
ARTIFACTS = Path(os.environ.get("ULAK_TEST_ARTIFACTS", "test-artifacts")) / "screenshots"

# axe-core, as the axe-playwright-python package ships it (no network at test time).
AXE_SCRIPT = files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")


async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, launched for one test (see the `browser` fixture)."""
    if not CHROMIUM_INSTALLED:
        pytest.skip(
            f"Debian's chromium is not installed: {CHROMIUM} is missing "
            "(make browser, or apt-get install -y chromium)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def sideways_overflow(page: Page) -> list[int]:
    """[page width, viewport width]; a page wider than the viewport scrolls sideways."""
    widths: list[int] = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    return widths


async def assert_fits(page: Page) -> None:
    page_width, viewport_width = await sideways_overflow(page)
    assert page_width <= viewport_width, f"{page.url} is {page_width}px wide at {viewport_width}px"


async def accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line
    each (rule, impact, the first offending element)."""
    await page.evaluate(AXE_SCRIPT)
    results: dict[str, Any] = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'] if v['nodes'] else ''}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _artefact(request: pytest.FixtureRequest, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    return ARTIFACTS / f"{test}--{name}.png"


async def check_page(page: Page, request: pytest.FixtureRequest, name: str) -> None:
    """The checks every customer page passes as it is shown now: it fits a 375 px phone
    and a 1280 px screen without sideways scrolling, axe-core finds no serious or critical
    violation at either size, and both screenshots are kept as artefacts."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)  # type: ignore[arg-type]
        await assert_fits(page)
        violations = await accessibility_violations(page)
        assert violations == [], f"{name} at {label}: {violations}"
        await page.screenshot(path=str(_artefact(request, f"{name}-{label}")), full_page=True)

"""The dev inbox shows every store's mail without a login: only to this machine."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.support import opened_app
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),  # noqa: S104 (the case under test)
        ("10.0.0.5", False),
    ],
)
async def test_the_dev_inbox_is_served_only_on_a_loopback_address(
    database_url: str, db: Database, caplog: pytest.LogCaptureFixture, host: str, served: bool
) -> None:
    settings = Settings(database_url=database_url, smtp_url="", host=host)
    with caplog.at_level(logging.WARNING, logger="ulak.app"):
        async with (
            opened_app(settings, db, FrozenClock()) as app,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
            ) as client,
        ):
            response = await client.get("/dev/inbox")
    assert response.status_code == (200 if served else 404)
    warnings = [r.getMessage() for r in caplog.records if r.name == "ulak.app"]
    if served:
        assert warnings == []
    else:
        assert warnings == [
            f"the dev inbox is not served: ulak listens on {host}, beyond this machine, and "
            "the dev inbox shows every store's mail without a login; listen on 127.0.0.1, "
            "or set ULAK_SMTP_URL to send real mail"
        ]

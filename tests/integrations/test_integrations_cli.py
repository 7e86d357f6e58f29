"""`ulak integrations`: a store's webhook secret is kept, never shown, and checked in
constant time the way Shopify and WooCommerce sign."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.support import create_store_with_cli, ulak_cli
from ulak import cli
from ulak.config import get_settings
from ulak.db import Database
from ulak.integrations.models import Integration
from ulak.integrations.service import signature_ok


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url, "ULAK_PUBLIC_URL": "https://ulak.example"}


def stored(url: str) -> list[tuple[int, str, str]]:
    async def read() -> list[tuple[int, str, str]]:
        database = Database(url)
        try:
            async with database.read() as session:
                rows = await session.scalars(select(Integration).order_by(Integration.platform))
                return [(r.store_id, r.platform, r.secret) for r in rows]
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_set_show_and_remove(env: dict[str, str], database_url: str) -> None:
    store_id = create_store_with_cli(env)["id"]
    sid = str(store_id)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        cli.app,
        ["integrations", "set", "shopify", "--store", sid, "--secret-stdin", "--json"],
        input="shpss_9f8e7d\n",
        env=env,
        catch_exceptions=False,
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.stderr
    assert "shpss_9f8e7d" not in result.stdout + result.stderr
    (shown,) = json.loads(result.stdout)
    assert shown["webhook_url"] == f"https://ulak.example/v1/integrations/shopify/{store_id}"
    assert shown["secret"] == "set"

    again = ulak_cli(
        "integrations", "set", "woocommerce", "--store", sid, "--secret", "wc-secret", env=env
    )
    assert again.returncode == 0, again.stderr
    assert stored(database_url) == [
        (store_id, "shopify", "shpss_9f8e7d"),
        (store_id, "woocommerce", "wc-secret"),
    ]

    listed = ulak_cli("integrations", "show", "--store", sid, "--json", env=env)
    assert [row["platform"] for row in json.loads(listed.stdout)] == ["shopify", "woocommerce"]
    assert "wc-secret" not in listed.stdout
    assert "shpss_9f8e7d" not in listed.stdout

    removed = ulak_cli("integrations", "remove", "shopify", "--store", sid, env=env)
    assert removed.returncode == 0, removed.stderr
    assert stored(database_url) == [(store_id, "woocommerce", "wc-secret")]
    missing = ulak_cli("integrations", "remove", "shopify", "--store", sid, env=env)
    assert missing.returncode == 2
    assert "has no shopify integration" in missing.stderr


def test_unknown_platform_and_empty_secret_are_refused(env: dict[str, str]) -> None:
    sid = str(create_store_with_cli(env)["id"])
    unknown = ulak_cli("integrations", "set", "magento", "--store", sid, "--secret", "x", env=env)
    assert unknown.returncode == 2
    assert "unknown platform 'magento'" in unknown.stderr
    empty = ulak_cli("integrations", "set", "shopify", "--store", sid, "--secret", " ", env=env)
    assert empty.returncode == 2
    assert "the webhook secret is empty" in empty.stderr
    nostore = ulak_cli("integrations", "set", "shopify", "--store", "999", "--secret", "x", env=env)
    assert nostore.returncode == 2


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id": 820982911946154508, "email": "jon@example.com"}'
    good = base64.b64encode(hmac.new(b"hush", body, hashlib.sha256).digest()).decode()
    assert signature_ok("hush", body, good)
    assert not signature_ok("hush", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("hush", body, None)
    assert not signature_ok("hush", body, "")
    assert not signature_ok("hush", body, "şüphe")

"""`ulak stores sms`: credentials are stored, never shown; the sender header is checked."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from tests.support import create_store_with_cli, ulak_cli
from ulak import cli
from ulak.config import get_settings
from ulak.db import Database
from ulak.sms.service import gateway_setup


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url, "ULAK_PUBLIC_URL": "https://ulak.example"}


def stored_credentials(url: str, store_id: int) -> tuple[dict[str, str], str | None]:
    async def read() -> tuple[dict[str, str], str | None]:
        database = Database(url)
        try:
            async with database.read() as session:
                setup = await gateway_setup(session, store_id=store_id)
            return dict(setup.credentials), setup.report_token
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_credentials_are_stored_and_never_shown(env: dict[str, str], database_url: str) -> None:
    store_id = create_store_with_cli(env)["id"]
    sid = str(store_id)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        cli.app,
        ["stores", "sms", "set", "--store", sid, "--provider", "netgsm", "--sender", "AYSEDKKN",
         "--credentials-stdin", "--price-per-segment", "0.35", "--json"],
        input="usercode=8503001122\npassword=s3cret-pw\n",
        env=env,
        catch_exceptions=False,
    )  # fmt: skip
    get_settings.cache_clear()
    assert result.exit_code == 0, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    credentials, token = stored_credentials(database_url, store_id)
    assert credentials == {"usercode": "8503001122", "password": "s3cret-pw"}
    expected = {
        "store_id": store_id,
        "provider": "netgsm",
        "sender": "AYSEDKKN",
        "credentials_set": ["password", "usercode"],
        "segment_limit": 2,
        "price_per_segment": "0.35",
        "currency": "TRY",
        "report_url": f"https://ulak.example/v1/sms/reports/netgsm/{token}",
    }
    assert json.loads(result.stdout) == expected
    shown = ulak_cli("stores", "sms", "show", "--store", sid, "--json", env=env)
    assert json.loads(shown.stdout) == expected
    text = ulak_cli("stores", "sms", "show", "--store", sid, env=env)
    assert "credentials_set: password: set, usercode: set" in text.stdout
    assert "s3cret-pw" not in text.stdout + text.stderr
    # A sender with Turkish letters, a provider without its credentials: refused, unchanged.
    bad = ulak_cli("stores", "sms", "set", "--store", sid, "--sender", "AYŞEDÜKKAN", env=env)
    assert bad.returncode == 2
    assert "invalid SMS sender 'AYŞEDÜKKAN'" in bad.stderr
    switched = ulak_cli("stores", "sms", "set", "--store", sid, "--provider", "twilio", env=env)
    assert switched.returncode == 2
    assert "twilio needs the credential(s) account_sid, auth_token" in switched.stderr
    assert (
        json.loads(ulak_cli("stores", "sms", "show", "--store", sid, "--json", env=env).stdout)
        == expected
    )
    # Back to the dev SMS inbox: the credentials go.
    off = ulak_cli("stores", "sms", "set", "--store", sid, "--provider", "none", "--json", env=env)
    assert json.loads(off.stdout)["provider"] is None
    assert stored_credentials(database_url, store_id)[0] == {}

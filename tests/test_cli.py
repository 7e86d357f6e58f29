"""The `ulak` command as a shop developer uses it."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tests.support import StoreKey, opened_app, order_placed, ulak_cli
from ulak.clock import SystemClock
from ulak.config import Settings
from ulak.db import Database
from ulak.messages.models import Message
from ulak.worker import Workers


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url}


JOURNEY = """\
key: thank-you
name: Teşekkürler
legal_class: informational
trigger:
  event: order.delivered
reentry: once_per_order
steps:
  - wait: 2d
  - send: email
    template: order_delivered
"""


def test_stores_create_prints_its_key_once_and_list_shows_it(env: dict[str, str]) -> None:
    created = ulak_cli(
        "stores", "create", "--name", "Ayşe'nin Dükkanı", "--locale", "tr",
        "--timezone", "Europe/Istanbul", "--currency", "TRY", "--json", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    store = json.loads(created.stdout)
    assert store["name"] == "Ayşe'nin Dükkanı"
    assert store["api_key"].startswith("ulak_sk_")
    listed = ulak_cli("stores", "list", "--json", env=env)
    assert [(s["id"], s["name"], s["timezone"]) for s in json.loads(listed.stdout)] == [
        (store["id"], "Ayşe'nin Dükkanı", "Europe/Istanbul")
    ]
    assert "api_key" not in listed.stdout
    journeys = ulak_cli("journeys", "list", "--store", str(store["id"]), "--json", env=env)
    assert sorted(j["key"] for j in json.loads(journeys.stdout)) == [
        "order-confirmation",
        "order-delivered",
        "order-preparing",
        "order-shipped",
    ]


def test_stores_create_refuses_an_unknown_time_zone(env: dict[str, str]) -> None:
    result = ulak_cli("stores", "create", "--name", "X", "--timezone", "Mars/Olympus", env=env)
    assert result.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in result.stderr


def test_a_store_setting_that_could_forge_a_header_or_a_link_is_refused(
    env: dict[str, str],
) -> None:
    for option in ("--name", "--sender-name"):
        args = ["--name", "Dükkan", option, "Evil\r\nBcc: x@example.com"]
        result = ulak_cli("stores", "create", *args, env=env)
        assert result.returncode == 2, option
        assert f"{option}: Value error, must not contain control characters" in result.stderr
    for option in ("--logo-url", "--website-url"):
        args = ["--name", "Dükkan", option, "javascript:alert(1)"]
        result = ulak_cli("stores", "create", *args, env=env)
        assert result.returncode == 2, option
        assert f"{option}: Value error, must be an http:// or https:// address" in result.stderr
    assert json.loads(ulak_cli("stores", "list", "--json", env=env).stdout) == []


def test_stores_update_changes_only_the_settings_given(env: dict[str, str]) -> None:
    created = ulak_cli(
        "stores", "create", "--name", "Dükkan", "--sender-email", "a@dukkan.example", "--json",
        env=env,
    )  # fmt: skip
    store = json.loads(created.stdout)
    result = ulak_cli(
        "stores", "update", str(store["id"]), "--name", "Ayşe'nin Dükkanı",
        "--sender-email", "merhaba@dukkan.example", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (listed,) = json.loads(ulak_cli("stores", "list", "--json", env=env).stdout)
    assert listed == {
        **{k: v for k, v in store.items() if k != "api_key"},
        "name": "Ayşe'nin Dükkanı",
        "sender_email": "merhaba@dukkan.example",
    }
    assert json.loads(result.stdout) == listed

    bad = ulak_cli("stores", "update", str(store["id"]), "--name", "a\nb", env=env)
    assert bad.returncode == 2
    assert "--name: Value error, must not contain control characters" in bad.stderr
    nothing = ulak_cli("stores", "update", str(store["id"]), env=env)
    assert nothing.returncode == 2
    assert "nothing to change" in nothing.stderr
    missing = ulak_cli("stores", "update", "999", "--name", "X", env=env)
    assert missing.returncode == 2
    assert "store 999 does not exist" in missing.stderr
    assert json.loads(ulak_cli("stores", "list", "--json", env=env).stdout) == [listed]


def test_an_invalid_journey_file_names_the_line_and_field(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "thank-you.yaml"
    path.write_text(JOURNEY.replace("wait: 2d", "wait: 2x"), encoding="utf-8")
    result = ulak_cli("journeys", "validate", str(path), env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:8: steps[0].wait: invalid duration")


def test_journeys_apply_versions_a_changed_definition(tmp_path: Path, env: dict[str, str]) -> None:
    store = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    path = tmp_path / "thank-you.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    assert ulak_cli("journeys", "validate", str(path), env=env).returncode == 0
    first = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    again = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    path.write_text(JOURNEY.replace("2d", "3d"), encoding="utf-8")
    changed = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    assert first.stdout.strip() == "thank-you: version 1 (new version)"
    assert again.stdout.strip() == "thank-you: version 1 (unchanged)"
    assert changed.stdout.strip() == "thank-you: version 2 (new version)"
    missing = ulak_cli("journeys", "apply", str(path), "--store", "999", env=env)
    assert missing.returncode == 2
    assert "store 999 does not exist" in missing.stderr


def test_a_template_override_with_a_syntax_error_is_refused(
    tmp_path: Path, env: dict[str, str]
) -> None:
    store = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    shipped = ulak_cli("templates", "show", "order_shipped", "--locale", "tr", env=env).stdout
    assert "{% block subject %}" in shipped
    path = tmp_path / "order_shipped.html"
    path.write_text(shipped.replace("{% endblock %}", "{% endblok %}", 1), encoding="utf-8")
    bad = ulak_cli(
        "templates", "set", "order_shipped", str(path), "--store", str(store["id"]), env=env
    )
    assert bad.returncode == 2
    assert "line" in bad.stderr
    path.write_text(shipped.replace("Kargoya", "Yola"), encoding="utf-8")
    good = ulak_cli(
        "templates", "set", "order_shipped", str(path), "--store", str(store["id"]), env=env
    )
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_write_that_cannot_get_the_lock_fails_saying_so(
    env: dict[str, str], database_url: str
) -> None:
    holder = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as another writer holding the lock would
    try:
        result = ulak_cli(
            "stores", "create", "--name", "Dükkan", env={**env, "ULAK_LOCK_TIMEOUT_SECONDS": "0.3"}
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 3
    assert "the database is busy" in result.stderr
    assert "held the database's write lock for 0.3 s" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert json.loads(ulak_cli("stores", "list", "--json", env=env).stdout) == []


async def test_status_counts_accepted_events_until_the_worker_takes_them(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, env: dict[str, str]
) -> None:
    batch = {"events": [order_placed("1"), order_placed("2")]}
    assert (await client.post("/v1/events", json=batch, headers=store.auth)).status_code == 202
    before = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert before.returncode == 0, before.stderr
    waiting = "accepted" if env["ULAK_DATABASE_URL"].startswith("sqlite") else "pending"
    assert re.search(rf"events\s*│\s*{waiting}\s*│\s*2\b", before.stdout), before.stdout
    await workers.drain()
    after = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert re.search(r"events\s*│\s*applied\s*│\s*2\b", after.stdout), after.stdout
    assert "accepted" not in after.stdout
    assert "pending" not in after.stdout


async def test_status_names_the_messages_that_may_have_arrived_twice(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, env: dict[str, str], db: Database
) -> None:
    batch = {
        "events": [
            order_placed("1", email="ayse@example.com"),
            order_placed("2", customer_id="c-2", email="can@example.com"),
        ]
    }
    assert (await client.post("/v1/events", json=batch, headers=store.auth)).status_code == 202
    await workers.drain()
    before = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert "resent after a crash" not in before.stdout
    assert "may have arrived twice" not in before.stdout
    # As a claim taken back from a sender that died mid-delivery leaves it
    # (tests/messages/test_sending.py makes one for real).
    async with db.transaction() as session:
        await session.execute(
            update(Message)
            .where(Message.to_address == "ayse@example.com")
            .values(interrupted_attempts=1)
        )
    after = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert after.returncode == 0, after.stderr
    assert re.search(r"messages\s*│\s*resent after a crash\s*│\s*1\b", after.stdout), after.stdout
    assert "may have arrived twice" in after.stdout
    assert re.search(r"│\s*ayse@example\.com\s*│\s*sent\s*│", after.stdout), after.stdout


async def test_the_database_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """They hold customers' data and each store's link secret (created 0644 before)."""
    path = tmp_path / "shop.db"
    env = {"ULAK_DATABASE_URL": f"sqlite:///{path}"}
    assert (await asyncio.to_thread(ulak_cli, "migrate", env=env)).returncode == 0
    created = await asyncio.to_thread(
        ulak_cli, "stores", "create", "--name", "Dükkan", "--json", env=env
    )
    key = json.loads(created.stdout)["api_key"]
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", public_url="http://ulak.test")
    database = Database(settings.database_url)
    try:
        async with (
            opened_app(settings, database, SystemClock()) as app,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
            ) as client,
        ):
            response = await client.post(
                "/v1/events", json=order_placed("1"), headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 202
            await app.state.workers.drain()
    finally:
        await database.dispose()
    modes = await asyncio.to_thread(modes_in, tmp_path)
    assert {"shop.db", "shop-inbox.db", "shop-outcomes.db"} <= set(modes)
    assert modes == dict.fromkeys(modes, "0o600")


def modes_in(folder: Path) -> dict[str, str]:
    return {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()}


def test_a_command_run_where_there_is_no_database_says_so_and_creates_none(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "ulak.db"
    env = {"ULAK_DATABASE_URL": f"sqlite:///{missing}"}
    for command in (["status"], ["stores", "list"], ["journeys", "list", "--store", "1"]):
        result = ulak_cli(*command, env=env)
        assert result.returncode == 2, command
        assert result.stderr.startswith(
            f"error: there is no ulak database at {missing}. Run `ulak migrate`"
        ), result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert not missing.exists()

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = ulak_cli("status", env={"ULAK_DATABASE_URL": f"sqlite:///{empty}"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: the database at {empty} has no ulak schema.")

"""The `ulak` command as a shop developer uses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.messages.test_rendering import OVERRIDE, SPINS
from tests.support import StoreKey, dev_inbox, opened_app, order_placed, text_of, ulak_cli
from ulak.clock import FrozenClock, SystemClock
from ulak.config import Settings
from ulak.db import Database
from ulak.messages.models import Message, TemplateOverride
from ulak.stores.service import KeyCheck
from ulak.worker import Workers


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url}


JOURNEY = """\
key: after-delivery
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
    assert sorted((j["key"], j["enabled"]) for j in json.loads(journeys.stdout)) == [
        ("abandoned-cart", True),
        ("back-in-stock", True),
        ("birthday", True),
        ("confirm-back-in-stock", True),
        ("delivery-problems", True),
        ("order-confirmation", True),
        ("order-delivered", True),
        ("order-preparing", True),
        ("order-shipped", True),
        ("replenishment", True),
        ("return-updates", True),
        ("returns", True),
        ("review-request", True),
        ("satisfaction-make-good", True),
        ("satisfaction-survey", True),
        ("special-days", True),
        ("thank-you", True),
        ("welcome", True),
        ("win-back", True),
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


def test_stores_update_clears_an_optional_setting(env: dict[str, str]) -> None:
    created = ulak_cli(
        "stores", "create", "--name", "Dükkan", "--reply-to", "yanit@dukkan.example",
        "--website-url", "https://dukkan.example", "--json", env=env,
    )  # fmt: skip
    store = json.loads(created.stdout)
    sid = str(store["id"])
    result = ulak_cli(
        "stores", "update", sid, "--clear", "reply-to", "--clear", "website_url", "--json",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = {
        **{k: v for k, v in store.items() if k != "api_key"},
        "reply_to": None,
        "website_url": None,
    }
    assert json.loads(result.stdout) == expected

    for clear, says in [
        (["--clear", "name"], "--clear name: only these may be empty: reply-to, logo-url"),
        (
            ["--clear", "reply-to", "--reply-to", "a@dukkan.example"],
            "--clear reply-to: also given a value",
        ),
    ]:
        refused = ulak_cli("stores", "update", sid, *clear, env=env)
        assert refused.returncode == 2
        assert says in refused.stderr
    assert json.loads(ulak_cli("stores", "list", "--json", env=env).stdout) == [expected]


def test_an_invalid_journey_file_names_the_line_and_field(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "after-delivery.yaml"
    path.write_text(JOURNEY.replace("wait: 2d", "wait: 2x"), encoding="utf-8")
    result = ulak_cli("journeys", "validate", str(path), env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:8: steps[0].wait: invalid duration")


def test_journeys_apply_versions_a_changed_definition(tmp_path: Path, env: dict[str, str]) -> None:
    store = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    path = tmp_path / "after-delivery.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    assert ulak_cli("journeys", "validate", str(path), env=env).returncode == 0
    first = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    again = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    path.write_text(JOURNEY.replace("2d", "3d"), encoding="utf-8")
    changed = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    assert first.stdout.strip() == "after-delivery: version 1 (new version)"
    assert again.stdout.strip() == "after-delivery: version 1 (unchanged)"
    assert changed.stdout.strip() == "after-delivery: version 2 (new version)"
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


async def test_keys_are_listed_without_their_secret_and_revoked_per_store(
    client: httpx.AsyncClient, store: StoreKey, env: dict[str, str], clock: FrozenClock
) -> None:
    made = await asyncio.to_thread(
        ulak_cli, "keys", "create", "--store", str(store.id), "--json", env=env
    )
    assert made.returncode == 0, made.stderr
    second = json.loads(made.stdout)
    headers = {"Authorization": f"Bearer {second['api_key']}"}
    assert (
        await client.post("/v1/events", json=order_placed("1"), headers=headers)
    ).status_code == 202
    other = json.loads(
        (
            await asyncio.to_thread(
                ulak_cli, "stores", "create", "--name", "Öteki", "--json", env=env
            )
        ).stdout
    )
    # Another store's id cannot reach this store's key.
    wrong = await asyncio.to_thread(
        ulak_cli, "keys", "revoke", str(second["id"]), "--store", str(other["id"]), env=env
    )
    assert wrong.returncode == 2
    assert f"store {other['id']} has no API key {second['id']}" in wrong.stderr
    revoked = await asyncio.to_thread(
        ulak_cli, "keys", "revoke", str(second["id"]), "--store", str(store.id), env=env
    )
    assert revoked.returncode == 0, revoked.stderr
    # The very next request is refused; the store's first key still works.
    refused = await client.post("/v1/events", json=order_placed("2"), headers=headers)
    assert refused.status_code == 401
    assert (
        await client.post("/v1/events", json=order_placed("3"), headers=store.auth)
    ).status_code == 202
    listed = await asyncio.to_thread(
        ulak_cli, "keys", "list", "--store", str(store.id), "--json", env=env
    )
    keys = json.loads(listed.stdout)
    assert [(k["id"], k["revoked_at"] is not None) for k in keys] == [
        (keys[0]["id"], False),
        (second["id"], True),
    ]
    assert store.key not in listed.stdout
    assert second["api_key"] not in listed.stdout
    assert [k["prefix"] for k in keys] == [store.key[:14], second["api_key"][:14]]


def catch_up_with_the_commands(clock: FrozenClock) -> None:
    """The commands run on the real clock; the workers here on the test's frozen one."""
    clock.set(max(clock.now(), datetime.now(UTC)) + timedelta(seconds=1))


async def test_a_broken_template_fixed_by_reset_then_failed_steps_retried(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    env: dict[str, str],
    db: Database,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """A shop owner's way out of a bad template: enrollments failed on it; reset the
    template, retry the failed steps, and each customer gets one confirmation."""
    # Stored as it was before `ulak templates set` rendered a template before saving it:
    # it compiles, and fails on every real order.
    broken = (
        "{% block subject %}Sipariş{% endblock %}{% block text %}x{% endblock %}"
        '{% block body %}{{ 1 // (order["items"]|length - order["items"]|length) }}{% endblock %}'
    )
    async with db.transaction() as session:
        session.add(
            TemplateOverride(
                store_id=store.id,
                name="order_confirmation",
                locale="tr",
                source=broken,
                updated_at=clock.now(),
            )
        )
    batch = {
        "events": [order_placed("1"), order_placed("2", customer_id="c-2", email="can@example.com")]
    }
    assert (await client.post("/v1/events", json=batch, headers=store.auth)).status_code == 202
    for _ in range(settings.step_max_attempts):
        await workers.drain()
        clock.travel(timedelta(hours=1))
    # No customer got a broken email; the shop heard of it once (both customers' failures,
    # every attempt), at its address, with the reason and the way out.
    (alert,) = await dev_inbox(db)
    assert (alert["To"], alert["Subject"]) == (
        "merhaba@dukkan.example",
        "ulak: order_confirmation şablonunuz e-postaları durdurdu",
    )
    text = text_of(alert)
    assert (
        "order_confirmation (tr, store override), line 1: integer division or modulo by zero"
        in text
    )
    assert f"ulak templates reset order_confirmation --store {store.id}" in text
    status = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert re.search(r"enrollments\s*│\s*failed\s*│\s*2\b", status.stdout), status.stdout

    reset = await asyncio.to_thread(
        ulak_cli, "templates", "reset", "order_confirmation", "--store", str(store.id), env=env
    )
    assert reset.returncode == 0, reset.stderr
    again = await asyncio.to_thread(
        ulak_cli, "templates", "reset", "order_confirmation", "--store", str(store.id), env=env
    )
    assert again.returncode == 1
    assert "has no version of its own of order_confirmation" in again.stderr
    nothing = await asyncio.to_thread(ulak_cli, "steps", "retry", "--store", str(store.id), env=env)
    assert nothing.returncode == 2
    assert "name the rows to retry by id, or give --since" in nothing.stderr
    # Nothing runs again from a journey that is switched off.
    for switch in ("disable", "enable"):
        await asyncio.to_thread(
            ulak_cli, "journeys", switch, "order-confirmation", "--store", str(store.id), env=env
        )
        if switch == "disable":
            off = await asyncio.to_thread(
                ulak_cli, "steps", "retry", "--store", str(store.id), "--since", "2000-01-01",
                env=env,
            )  # fmt: skip
            assert off.stdout.startswith("0 enrollment(s) will run again")
    retried = await asyncio.to_thread(
        ulak_cli, "steps", "retry", "--store", str(store.id), "--since", "2000-01-01", env=env
    )
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith("2 enrollment(s) will run again")
    catch_up_with_the_commands(clock)
    await workers.drain()
    assert sorted(m["To"] for m in (await dev_inbox(db))[1:]) == [
        "ayse@example.com",
        "can@example.com",
    ]
    after = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert re.search(r"enrollments\s*│\s*completed\s*│\s*2\b", after.stdout), after.stdout
    assert "failed" not in after.stdout


async def test_messages_retry_sends_only_the_named_failed_message_of_the_store(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    env: dict[str, str],
    db: Database,
    clock: FrozenClock,
) -> None:
    batch = {
        "events": [order_placed("1"), order_placed("2", customer_id="c-2", email="can@example.com")]
    }
    assert (await client.post("/v1/events", json=batch, headers=store.auth)).status_code == 202
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
    # As a sender that gave up leaves them (tests/messages/test_outbox.py makes them for real).
    async with db.transaction() as session:
        failed = (
            await session.execute(
                update(Message)
                .values(status="failed", attempts=8, last_error="gave up after 8 attempt(s): 451")
                .returning(Message.id, Message.to_address)
            )
        ).all()
    ids = {to: i for i, to in failed}
    other = json.loads(
        (
            await asyncio.to_thread(
                ulak_cli, "stores", "create", "--name", "Öteki", "--json", env=env
            )
        ).stdout
    )
    elsewhere = await asyncio.to_thread(
        ulak_cli,
        "messages",
        "retry",
        str(ids["can@example.com"]),
        "--store",
        str(other["id"]),
        env=env,
    )
    assert elsewhere.stdout.startswith("0 message(s) queued again")
    retried = await asyncio.to_thread(
        ulak_cli,
        "messages",
        "retry",
        str(ids["can@example.com"]),
        "--store",
        str(store.id),
        env=env,
    )
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"1 message(s) queued again: {ids['can@example.com']}")
    catch_up_with_the_commands(clock)
    await workers.drain()
    assert [m["To"] for m in await dev_inbox(db)] == ["can@example.com"]
    async with db.read() as session:
        rows = (
            await session.execute(
                # The order confirmations (the thank-you journey's email, later, is skipped:
                # no consent).
                select(Message.to_address, Message.status, Message.attempts).where(
                    Message.template == "order_confirmation"
                )
            )
        ).all()
    assert sorted(rows) == [("ayse@example.com", "failed", 8), ("can@example.com", "sent", 1)]


async def test_a_disabled_journey_sends_nothing_more_until_enabled(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    env: dict[str, str],
    db: Database,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    path = tmp_path / "after-delivery.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    assert (
        await asyncio.to_thread(
            ulak_cli, "journeys", "apply", str(path), "--store", str(store.id), env=env
        )
    ).returncode == 0
    # The shipped delivery email would answer the same events at once.
    shipped = await asyncio.to_thread(
        ulak_cli, "journeys", "disable", "order-delivered", "--store", str(store.id), env=env
    )
    assert shipped.stdout.startswith("order-delivered: disabled; 0 live enrollment(s)")
    # So would the satisfaction survey, two days after each delivery.
    survey = await asyncio.to_thread(
        ulak_cli, "journeys", "disable", "satisfaction-survey", "--store", str(store.id), env=env
    )
    assert survey.returncode == 0, survey.stderr

    def delivered(order_id: str, customer_id: str, email: str) -> dict[str, Any]:
        return {
            "id": f"evt-delivered-{order_id}",
            "type": "order.delivered",
            "customer": {"id": customer_id, "email": email},
            "data": {"order_id": order_id},
        }

    await client.post(
        "/v1/events", json=delivered("1", "c-1", "ayse@example.com"), headers=store.auth
    )
    await workers.drain()  # waiting two days
    disabled = await asyncio.to_thread(
        ulak_cli, "journeys", "disable", "after-delivery", "--store", str(store.id), env=env
    )
    assert disabled.returncode == 0, disabled.stderr
    assert "1 live enrollment(s) stopped" in disabled.stdout
    await client.post(
        "/v1/events", json=delivered("2", "c-2", "can@example.com"), headers=store.auth
    )
    clock.travel(timedelta(days=3))
    await workers.drain()
    assert await dev_inbox(db) == []
    listed = json.loads(
        (
            await asyncio.to_thread(
                ulak_cli, "journeys", "list", "--store", str(store.id), "--json", env=env
            )
        ).stdout
    )
    assert [
        (j["enabled"], j["live_enrollments"]) for j in listed if j["key"] == "after-delivery"
    ] == [(False, 0)]

    enabled = await asyncio.to_thread(
        ulak_cli, "journeys", "enable", "after-delivery", "--store", str(store.id), env=env
    )
    assert enabled.returncode == 0, enabled.stderr
    await client.post(
        "/v1/events", json=delivered("3", "c-3", "deniz@example.com"), headers=store.auth
    )
    await workers.drain()
    clock.travel(timedelta(days=3))
    await workers.drain()
    assert [m["To"] for m in await dev_inbox(db)] == ["deniz@example.com"]
    missing = await asyncio.to_thread(
        ulak_cli, "journeys", "disable", "nope", "--store", str(store.id), env=env
    )
    assert missing.returncode == 2
    assert "has no journey 'nope'" in missing.stderr


def test_templates_set_renders_a_sample_order_before_saving(
    tmp_path: Path, env: dict[str, str]
) -> None:
    store = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    path = tmp_path / "confirmation.html"
    good = OVERRIDE
    for source, problem in (
        (good.replace("<p>Toplam", SPINS + "<p>Toplam"), "took more than 2 s of CPU"),
        (good.replace("<p>Toplam", "{{ 'a' * 10**9 }}<p>Toplam"), "builds a value over"),
        (good.replace("{{ order.total|money }} ·", "{{ 1 // 0 }}"), "division or modulo by zero"),
    ):
        path.write_text(source, encoding="utf-8")
        refused = ulak_cli(
            "templates", "set", "order_confirmation", str(path), "--store", str(store["id"]),
            env=env,
        )  # fmt: skip
        assert refused.returncode == 2, problem
        assert problem in refused.stderr
        assert "order_confirmation (tr, store override), line 2" in refused.stderr
    reset = ulak_cli(
        "templates", "reset", "order_confirmation", "--store", str(store["id"]), env=env
    )
    assert reset.returncode == 1  # nothing was saved
    path.write_text(good, encoding="utf-8")
    saved = ulak_cli(
        "templates", "set", "order_confirmation", str(path), "--store", str(store["id"]), env=env
    )
    assert saved.returncode == 0, saved.stderr


async def test_postgresql_keeps_known_keys_until_one_is_revoked(
    client: httpx.AsyncClient, store: StoreKey, env: dict[str, str], app: Any, db: Database
) -> None:
    """A process that listens for revocations reads a key once; a revocation reaches it
    as the command commits (the time of a NOTIFY), and the key is refused from then on."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL: SQLite reads the key on every request, in microseconds")
    keys: KeyCheck = app.state.keys
    listener = asyncio.create_task(keys.listen())
    try:
        for _ in range(100):
            if keys._listening:
                break
            await asyncio.sleep(0.05)
        made = await asyncio.to_thread(
            ulak_cli, "keys", "create", "--store", str(store.id), "--json", env=env
        )
        second = json.loads(made.stdout)
        headers = {"Authorization": f"Bearer {second['api_key']}"}
        for n in range(2):
            response = await client.post("/v1/events", json=order_placed(str(n)), headers=headers)
            assert response.status_code == 202
        assert list(keys._known.values()) == [store.id]  # read once, then known
        revoked = await asyncio.to_thread(
            ulak_cli, "keys", "revoke", str(second["id"]), "--store", str(store.id), env=env
        )
        assert revoked.returncode == 0, revoked.stderr
        started = time.monotonic()
        while (
            await client.post("/v1/events", json=order_placed("9"), headers=headers)
        ).status_code != 401:
            assert time.monotonic() - started < 1.0, "the revocation did not arrive"
            await asyncio.sleep(0.01)
        assert keys._known == {}
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


SPRING_NOTE = """{% block subject %}Bahar notu, {{ customer.first_name }}{% endblock %}
{% block body %}<p>Siparişiniz {{ order.number }} için teşekkürler.</p>{% endblock %}
{% block text %}Siparişiniz {{ order.number }} için teşekkürler.{% endblock %}
"""
SPRING_JOURNEY = """\
key: spring
name: Bahar
legal_class: informational
trigger:
  event: order.placed
reentry: once_per_order
steps:
  - send: email
    template: spring_note
"""


async def test_a_store_adds_a_template_of_its_own_and_a_journey_sends_it(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    env: dict[str, str],
    db: Database,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    """A journey may send a template the store added under a new name; validate and apply
    refuse a journey whose template the store does not have, instead of failing each
    customer's email at run time."""
    template, journey = tmp_path / "spring_note.html", tmp_path / "spring.yaml"
    template.write_text(SPRING_NOTE, encoding="utf-8")
    journey.write_text(SPRING_JOURNEY, encoding="utf-8")
    sid = str(store.id)

    def cli(*args: str) -> Any:
        return asyncio.to_thread(ulak_cli, *args, env=env)

    unchecked = await cli("journeys", "validate", str(journey))
    assert unchecked.returncode == 1
    assert unchecked.stderr.strip() == (
        f"{journey}: template 'spring_note' is not among the shipped templates (or pass --store)"
    )
    early = await cli("journeys", "apply", str(journey), "--store", sid)
    assert early.returncode == 2
    assert f"template(s) spring_note not found for store {sid}" in early.stderr
    bad_name = await cli("templates", "set", "Spring-Note", str(template), "--store", sid)
    assert bad_name.returncode == 2
    assert "invalid template name 'Spring-Note'" in bad_name.stderr

    added = await cli("templates", "set", "spring_note", str(template), "--store", sid)
    assert added.returncode == 0, added.stderr
    listed = await cli("templates", "list", "--store", sid)
    assert "spring_note  (the store's own: tr)" in listed.stdout.splitlines()
    assert (await cli("journeys", "validate", str(journey), "--store", sid)).returncode == 0
    applied = await cli("journeys", "apply", str(journey), "--store", sid)
    assert applied.stdout.strip() == "spring: version 1 (new version)"

    # A customer who reads English gets the store's Turkish template: it has no other.
    event = order_placed("7")
    event["customer"]["locale"] = "en"
    catch_up_with_the_commands(clock)
    assert (await client.post("/v1/events", json=event, headers=store.auth)).status_code == 202
    await workers.drain()
    subjects = sorted(str(m["Subject"]) for m in await dev_inbox(db))
    assert subjects == ["Bahar notu, Ayşe", "Your order #7 is confirmed"]


def test_an_informational_journey_may_not_carry_a_promotion(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # The shipped journeys pass, informational and commercial ones alike.
    library = sorted((Path(__file__).parents[1] / "src/ulak/journeys/library").glob("*.yaml"))
    shipped = ulak_cli("journeys", "validate", *map(str, library), env=env)
    assert (shipped.returncode, shipped.stderr) == (0, "")
    assert len(shipped.stdout.splitlines()) == len(library) == 19
    # An informational journey that issues a coupon, and sends a template that shows one.
    path = tmp_path / "after-delivery.yaml"
    coupon = (
        "  - action: issue_coupon\n    coupon: win-back\n  - send: email\n    template: win_back\n"
    )
    path.write_text(JOURNEY + coupon, encoding="utf-8")
    refused = ulak_cli("journeys", "validate", str(path), env=env)
    fix = "informational journeys carry no promotions; make it legal_class: commercial"
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.splitlines() == [
        f"{path}:11: steps[2]: issues a coupon (win-back): {fix}",
        f"{path}:13: steps[3]: template win_back shows coupon, recommendations: {fix}",
    ]
    store = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    applied = ulak_cli("journeys", "apply", str(path), "--store", str(store["id"]), env=env)
    assert applied.returncode == 2
    assert (
        applied.stderr.splitlines()[-1]
        == f"{path}:13: steps[3]: template win_back shows coupon, recommendations: {fix}"
    )
    # A store's own version of a template its informational journeys send may not show a
    # promotion either: refused when it is set (order-delivered is shipped, and sends it).
    sid = str(store["id"])
    own = tmp_path / "order_delivered.html"
    source = ulak_cli("templates", "show", "order_delivered", "--locale", "tr", env=env).stdout
    own.write_text(
        source.replace(
            "{% endblock %}", "{% if coupon %} {{ coupon.code }}{% endif %}{% endblock %}", 1
        ),
        encoding="utf-8",
    )
    refused = ulak_cli("templates", "set", "order_delivered", str(own), "--store", sid, env=env)
    assert refused.returncode == 2
    assert (
        "order_delivered shows coupon, but the informational journeys order-delivered send it,"
        " and they carry no promotions" in " ".join(refused.stderr.split())
    )
    # A template of the store's own that shows one is checked when a journey would send it.
    note = tmp_path / "teslimat_notu.html"
    note.write_text(
        "{% block subject %}Not{% endblock %}{% block body %}<p>{% if coupon %}"
        "{{ coupon.code }}{% endif %}</p>{% endblock %}{% block text %}{% if coupon %}"
        "{{ coupon.code }}{% endif %}{% endblock %}",
        encoding="utf-8",
    )
    saved = ulak_cli("templates", "set", "teslimat_notu", str(note), "--store", sid, env=env)
    assert saved.returncode == 0, saved.stderr
    path.write_text(JOURNEY.replace("order_delivered", "teslimat_notu"), encoding="utf-8")
    checked = ulak_cli("journeys", "validate", str(path), "--store", sid, env=env)
    assert (checked.returncode, checked.stderr) == (
        1,
        f"{path}:9: steps[1]: template teslimat_notu shows coupon: {fix}\n",
    )
    applied = ulak_cli("journeys", "apply", str(path), "--store", sid, env=env)
    assert applied.returncode == 2
    assert f"{path}:9: steps[1]: template teslimat_notu shows coupon" in applied.stderr


def test_a_store_sets_checks_and_clears_its_reorder_link(env: dict[str, str]) -> None:
    created = ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env)
    store = str(json.loads(created.stdout)["id"])
    refused = ulak_cli(
        "stores", "update", store, "--reorder-url", "https://s.example/{sku}", env=env
    )
    assert refused.returncode == 2
    assert "--reorder-url: Value error, unknown placeholder {sku}" in refused.stderr
    pattern = "https://s.example/cart/{variant_id}:{quantity},..."
    result = ulak_cli("stores", "update", store, "--reorder-url", pattern, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reorder_url"] == pattern
    cleared = ulak_cli("stores", "update", store, "--clear", "reorder-url", "--json", env=env)
    assert json.loads(cleared.stdout)["reorder_url"] is None
    (listed,) = json.loads(ulak_cli("stores", "list", "--json", env=env).stdout)
    assert (listed["reorder_url"], listed["never_bought_days"]) == (None, 14)


def test_stores_special_days_list_add_and_remove(env: dict[str, str]) -> None:
    created = ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env)
    store = str(json.loads(created.stdout)["id"])
    listed = ulak_cli("stores", "special-days", "list", "--store", store, "--json", env=env)
    assert [(d["key"], d["rule"]) for d in json.loads(listed.stdout)] == [
        ("anneler-gunu", "05/sun/2"),
        ("babalar-gunu", "06/sun/3"),
        ("kadinlar-gunu", "03-08"),
        ("sevgililer-gunu", "02-14"),
        ("yilbasi", "01-01"),
    ]
    add = ("stores", "special-days", "add", "ramazan-bayrami", "--store", store)
    names = ("--name-tr", "Ramazan Bayramı", "--name-en", "Eid al-Fitr")
    wrong = ulak_cli(*add, "--rule", "20 Mart", *names, env=env)
    assert wrong.returncode != 0
    assert 'unknown rule "20 Mart": use MM-DD' in wrong.stderr
    added = ulak_cli(*add, "--rule", "2099-01-22,2098-02-02", *names, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == (
        "special day ramazan-bayrami of store " + store + " set (next on 2098-02-02)"
    )
    removed = ulak_cli("stores", "special-days", "remove", "yilbasi", "--store", store, env=env)
    assert removed.returncode == 0, removed.stderr
    again = ulak_cli("stores", "special-days", "remove", "yilbasi", "--store", store, env=env)
    assert again.returncode == 1
    assert f"store {store} has no special day 'yilbasi'" in again.stderr
    defaults = ulak_cli("stores", "special-days", "defaults", "--store", store, env=env)
    assert defaults.stdout.strip() == "added: yilbasi"
    listed = ulak_cli("stores", "special-days", "list", "--store", store, "--json", env=env)
    assert [(d["key"], d["name_tr"], d["next"]) for d in json.loads(listed.stdout)][-3:] == [
        ("ramazan-bayrami", "Ramazan Bayramı", "2098-02-02"),
        ("sevgililer-gunu", "Sevgililer Günü", _next_year_of(2, 14)),
        ("yilbasi", "Yılbaşı", _next_year_of(1, 1)),
    ]


def _next_year_of(month: int, day: int) -> str:
    """The next 14 February (or any date) from today, at UTC+14, as ISO."""
    today = datetime.now(UTC) + timedelta(hours=14)
    year = today.year if (today.month, today.day) <= (month, day) else today.year + 1
    return f"{year:04d}-{month:02d}-{day:02d}"

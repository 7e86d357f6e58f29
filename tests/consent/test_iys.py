"""İYS both ways, against a fake İYS over real HTTP (`fake_iys.py`): consent changes are
registered with one token (refreshed when it expires), İYS's rules and refusals are kept
on the row, an outage loses nothing and sends nothing twice, İYS's own changes are pulled
with a cursor and stop commercial messages, and no credential reaches a log or the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.consent.fake_iys import BRAND, BRAND_CODE, IYS_CODE, PASSWORD, USERNAME, FakeIys
from tests.support import (
    StoreKey,
    add_journey,
    dev_inbox,
    free_port,
    make_store,
    order_placed,
    ulak_cli,
)
from ulak.clock import FrozenClock
from ulak.consent import iys_pull
from ulak.consent.iys import set_account
from ulak.consent.models import IysAccount, IysPush, IysRecipient
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.inbox import insert_events
from ulak.events.models import Event
from ulak.messages.models import Message
from ulak.worker import Workers

AYSE = {"id": "c-1042", "email": "ayse@example.com", "phone": "+90 532 123 45 67"}
OFFER = """
key: next-order
name: Next order offer
legal_class: commercial
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_delivered
"""


@pytest.fixture
def fake() -> Iterator[FakeIys]:
    server = FakeIys(free_port())
    server.start()
    yield server
    server.stop()


async def connect(db: Database, clock: FrozenClock, store: StoreKey, url: str) -> None:
    async with db.transaction() as session:
        await set_account(
            session, store_id=store.id, iys_code=IYS_CODE, brand_code=BRAND_CODE,
            username=USERNAME, password=PASSWORD, base_url=url, now=clock.now(),
        )  # fmt: skip


def consent(
    status: str,
    channel: str = "email",
    *,
    at: str,
    who: dict[str, str] = AYSE,
    source: str = "checkout",
) -> dict[str, Any]:
    return {
        "id": f"evt-{who['id']}-{channel}-{status}-{at}",
        "type": "consent.updated",
        "occurred_at": at,
        "customer": who,
        "data": {"channel": channel, "status": status, "source": source},
    }


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def pushes(db: Database) -> list[tuple[str, str, str, str, str | None, str | None]]:
    """(type, recipient, status, state, İYS code or transaction, error) of each row."""
    async with db.read() as session:
        rows = (await session.execute(select(IysPush).order_by(IysPush.id))).scalars()
        return [
            (p.type, p.recipient, p.status, p.state, p.error_code or p.transaction_id, p.error)
            for p in rows
        ]


def body(status: str, type_: str, recipient: str, date: str, source: str = "HS_WEB") -> Any:
    return {
        "consentDate": date,
        "source": source,
        "recipient": recipient,
        "recipientType": "BIREYSEL",
        "status": status,
        "type": type_,
    }


def query(type_: str, recipient: str) -> Any:
    return {"recipient": recipient, "recipientType": "BIREYSEL", "type": type_}


async def test_changes_are_registered_with_one_token_refreshed_when_it_expires(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, fake: FakeIys
) -> None:
    store = await make_store(db, clock, library=False)
    await connect(db, clock, store, fake.url)
    await post(
        client,
        store,
        consent("granted", at="2026-11-23T11:30:00+03:00"),
        consent("granted", "sms", at="2026-11-23T08:40:00Z"),
    )
    await workers.drain()
    first = "Bearer access-1-x7Qp"
    assert [(c.method, c.path, c.authorization, c.body) for c in fake.calls] == [
        ("POST", "/oauth2/token", None, {
            "username": USERNAME, "password": PASSWORD, "grant_type": "password"}),
        ("POST", f"{BRAND}/consents/status", first, query("EPOSTA", "ayse@example.com")),
        ("POST", f"{BRAND}/consents", first,
         body("ONAY", "EPOSTA", "ayse@example.com", "2026-11-23 11:30:00")),
        ("POST", f"{BRAND}/consents/status", first, query("MESAJ", "+905321234567")),
        ("POST", f"{BRAND}/consents", first,
         body("ONAY", "MESAJ", "+905321234567", "2026-11-23 11:40:00")),
    ]  # fmt: skip

    # Two hours on, the access token has expired: the refresh token buys a new one.
    clock.travel(timedelta(hours=2))
    fake.calls.clear()
    await post(client, store, consent("revoked", at="2026-11-23T13:59:00+03:00", source="email"))
    await workers.drain()
    second = "Bearer access-2-x7Qp"
    assert [(c.path, c.authorization, c.body) for c in fake.calls] == [
        ("/oauth2/token", None, {"refresh_token": "refresh-1-k2Zr", "grant_type": "refresh_token"}),
        (f"{BRAND}/consents", second,
         body("RET", "EPOSTA", "ayse@example.com", "2026-11-23 13:59:00", "HS_EPOSTA")),
    ]  # fmt: skip
    assert await pushes(db) == [
        ("EPOSTA", "ayse@example.com", "ONAY", "sent", "tx-1", None),
        ("MESAJ", "+905321234567", "ONAY", "sent", "tx-2", None),
        ("EPOSTA", "ayse@example.com", "RET", "sent", "tx-3", None),
    ]

    # A token İYS revoked early is answered 401: a new one, once, and the change goes.
    fake.access_tokens.clear()
    fake.calls.clear()
    await post(client, store, consent("revoked", "sms", at="2026-11-23T14:00:00+03:00"))
    await workers.drain()
    assert [(c.path, c.authorization, c.body.get("type") or c.body) for c in fake.calls] == [
        (f"{BRAND}/consents", second, "MESAJ"),
        ("/oauth2/token", None, {"refresh_token": "refresh-2-k2Zr", "grant_type": "refresh_token"}),
        (f"{BRAND}/consents", "Bearer access-3-x7Qp", "MESAJ"),
    ]
    assert (await pushes(db))[-1] == ("MESAJ", "+905321234567", "RET", "sent", "tx-4", None)


async def test_iys_rules_skip_and_its_refusals_fail_with_its_code(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, fake: FakeIys
) -> None:
    store = await make_store(db, clock, library=False)
    await connect(db, clock, store, fake.url)
    fake.refuse["mehmet@example.com"] = ("H114", "Alıcı bilgisi geçersiz.")
    mehmet = {"id": "c-2", "email": "mehmet@example.com"}
    zeynep = {"id": "c-3", "email": "zeynep@example.com"}
    german = {"id": "c-4", "email": "jonas@example.com", "phone": "+49 1512 3456789"}
    for event in (
        consent("revoked", at="2026-11-23T10:00:00+03:00"),  # İYS never had her consent
        consent("granted", at="2026-11-23T10:01:00+03:00"),
        consent("granted", at="2026-11-23T10:02:00+03:00", source="signup_form"),
        consent("granted", at="2026-11-23T10:03:00+03:00", who=mehmet),
        consent("granted", at="2026-11-23T10:04:00+03:00", who=zeynep, source="HS_FIZIKSEL_ORTAM"),
        # İYS knows Turkish mobile numbers only, and a change needs one.
        consent("granted", "sms", at="2026-11-23T10:05:00+03:00", who=zeynep),
        consent("granted", "call", at="2026-11-23T10:06:00+03:00", who=german),
    ):
        await post(client, store, event)
        await workers.drain()
    refusal = "Alıcı bilgisi geçersiz."
    assert await pushes(db) == [
        ("EPOSTA", "ayse@example.com", "RET", "skipped", None,
         "İYS has no consent of this recipient to refuse"),
        ("EPOSTA", "ayse@example.com", "ONAY", "sent", "tx-1", None),
        ("EPOSTA", "ayse@example.com", "ONAY", "skipped", None, "İYS holds ONAY already"),
        ("EPOSTA", "mehmet@example.com", "ONAY", "failed", "H114", refusal),
        ("EPOSTA", "zeynep@example.com", "ONAY", "sent", "tx-2", None),
        ("MESAJ", "", "ONAY", "skipped", None, "the customer has no phone number"),
        ("ARAMA", "", "ONAY", "skipped", None, "+4915123456789 is not a Turkish mobile number"),
    ]  # fmt: skip
    assert fake.added == [
        body("ONAY", "EPOSTA", "ayse@example.com", "2026-11-23 10:01:00"),
        body("ONAY", "EPOSTA", "zeynep@example.com", "2026-11-23 10:04:00", "HS_FIZIKSEL_ORTAM"),
    ]
    # Her consent on record is the grant: a refusal İYS would not take changes nothing here.
    shown = await asyncio.to_thread(show, store, db)
    assert (shown["pending"], shown["sent"], shown["skipped"], shown["failed"]) == (0, 2, 4, 1)
    assert shown["failures"] == [[4, "EPOSTA", "ONAY", "H114", refusal]]


def show(store: StoreKey, db: Database) -> Any:
    result = ulak_cli("stores", "iys", "show", "--store", str(store.id), "--json", env=cli_env(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_env(db: Database) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": db.url}


async def test_an_outage_queues_changes_that_all_go_in_order_once_it_is_back(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    fake = FakeIys(free_port())  # not started: İYS is down
    store = await make_store(db, clock, library=False)
    await connect(db, clock, store, fake.url)
    await post(
        client,
        store,
        consent("granted", at="2026-11-23T11:00:00+03:00"),
        consent("revoked", at="2026-11-23T11:10:00+03:00"),
        consent("granted", "sms", at="2026-11-23T11:20:00+03:00"),
    )
    await workers.drain()
    await workers.drain()  # within the backoff: İYS is not asked again

    async def state() -> tuple[list[int], str | None]:
        async with db.read() as session:
            attempts = await session.execute(select(IysPush.attempts).order_by(IysPush.id))
            account = await session.get(IysAccount, store.id)
            assert account is not None
            return list(attempts.scalars()), account.last_error

    assert [row[3] for row in await pushes(db)] == ["pending"] * 3
    assert await state() == (
        [1, 0, 0],
        "push: İYS could not be reached (ConnectError); next try at 09:00:30 UTC",
    )
    # Back, but answering 503 for a while.
    fake.start()
    try:
        fake.unavailable = True
        clock.travel(timedelta(seconds=31))
        await workers.drain()
        assert await state() == (
            [2, 0, 0],
            "push: İYS answered 503 to the token request; next try at 09:01:31 UTC",
        )
        assert fake.added == []
        fake.unavailable = False
        clock.travel(timedelta(seconds=30))
        await workers.drain()
        assert fake.added == []  # still within the backoff
        clock.travel(timedelta(seconds=31))
        await workers.drain()
        assert fake.added == [
            body("ONAY", "EPOSTA", "ayse@example.com", "2026-11-23 11:00:00"),
            body("RET", "EPOSTA", "ayse@example.com", "2026-11-23 11:10:00"),
            body("ONAY", "MESAJ", "+905321234567", "2026-11-23 11:20:00"),
        ]
        assert await state() == ([3, 1, 1], None)
        assert [row[3] for row in await pushes(db)] == ["sent"] * 3
        calls = len(fake.calls)
        clock.travel(timedelta(hours=1))
        await workers.drain()
        assert len(fake.calls) == calls  # nothing twice
    finally:
        fake.stop()


async def test_changes_made_at_iys_are_pulled_with_a_cursor_and_never_pushed_back(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    fake: FakeIys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(iys_pull, "PAGE", 2)
    store = await make_store(db, clock, library=False)
    await post(client, store, consent("granted", at="2026-11-23T10:00:00+03:00"))
    await workers.drain()
    await connect(db, clock, store, fake.url)
    fake.consents[("EPOSTA", "BIREYSEL", "ayse@example.com")] = "ONAY"
    fake.citizen_change(
        type="EPOSTA", recipient="ayse@example.com", recipientType="BIREYSEL",
        status="RET", consentDate="2026-11-23 11:45:00",
    )  # fmt: skip
    fake.citizen_change(
        type="MESAJ", recipient="+905559876543", recipientType="BIREYSEL",
        status="ONAY", consentDate="2026-11-23 11:50:00",
    )  # fmt: skip
    fake.citizen_change(
        type="ARAMA", recipient="+905559876543", recipientType="TACIR",
        status="RET", consentDate="2026-11-23 11:51:00",
    )  # fmt: skip
    assert await workers.once("consent.iys_pull") == 3
    assert await workers.once("consent.iys_pull") == 0  # this minute's tick is taken
    assert [c.query for c in fake.calls_to("/consents/changes")] == [
        {"source": "IYS", "limit": "2"},
        {"source": "IYS", "limit": "2", "after": "2"},
    ]
    await workers.drain()
    async with db.read() as session:
        people = {
            c.email or c.phone: c.consent
            for c in (await session.execute(select(Customer).order_by(Customer.id))).scalars()
        }
    assert people == {
        "ayse@example.com": {
            "email": {"status": "revoked", "source": "iys",
                      "at": "2026-11-23T08:45:00+00:00", "since": "2026-11-23T08:45:00+00:00",
                      "recipient_type": "individual"},
        },
        # Not a customer yet: a profile of the number holds İYS's word for when they become one.
        "+905559876543": {
            "sms": {"status": "granted", "source": "iys",
                    "at": "2026-11-23T08:50:00+00:00", "since": "2026-11-23T08:50:00+00:00",
                    "recipient_type": "individual"},
            "call": {"status": "revoked", "source": "iys",
                     "at": "2026-11-23T08:51:00+00:00", "since": "2026-11-23T08:51:00+00:00",
                     "recipient_type": "merchant"},
        },
    }  # fmt: skip
    assert await pushes(db) == []  # never pushed back
    assert fake.calls_to("/consents") == []

    # The next minute reads on from the cursor; the number becomes a customer.
    clock.travel(timedelta(minutes=1))
    assert await workers.once("consent.iys_pull") == 0
    assert fake.calls_to("/consents/changes")[-1].query == {
        "source": "IYS", "limit": "2", "after": "3"}  # fmt: skip
    order = order_placed("77", customer_id="c-77", email="ali@example.com")
    order["customer"]["phone"] = "0555 987 65 43"
    await post(client, store, order)
    await workers.drain()
    async with db.read() as session:
        ali = (
            await session.execute(select(Customer).where(Customer.external_id == "c-77"))
        ).scalar_one()
    assert (ali.phone, ali.consent["sms"]["status"]) == ("+905559876543", "granted")


async def test_an_opt_out_pulled_from_iys_stops_a_queued_commercial_email(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, fake: FakeIys
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, OFFER)
    await post(client, store, consent("granted", at="2026-11-23T10:00:00+03:00"))
    await workers.drain()
    await connect(db, clock, store, fake.url)
    fake.consents[("EPOSTA", "BIREYSEL", "ayse@example.com")] = "ONAY"
    await post(client, store, order_placed("1"))
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
    async with db.read() as session:
        assert list((await session.execute(select(Message.status))).scalars()) == ["queued"]
    fake.citizen_change(
        type="EPOSTA", recipient="ayse@example.com", recipientType="BIREYSEL",
        status="RET", consentDate="2026-11-23 11:59:00",
    )  # fmt: skip
    assert await workers.once("consent.iys_pull") == 1
    await workers.drain()
    async with db.read() as session:
        (message,) = (await session.execute(select(Message))).scalars()
    assert (message.status, message.last_error) == (
        "skipped",
        "consent to commercial email revoked (iys)",
    )
    assert await dev_inbox(db) == []
    assert fake.added == []


async def test_credentials_never_reach_a_log_nor_the_cli(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    fake: FakeIys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = await make_store(db, clock, library=False)
    env = cli_env(db)
    wrong = "Wrong-Parola-123"
    setup = await asyncio.to_thread(
        ulak_cli,
        "stores", "iys", "set", "--store", str(store.id), "--iys-code", IYS_CODE,
        "--brand-code", BRAND_CODE, "--username", USERNAME, "--password", wrong,
        "--base-url", fake.url,
        env=env,
    )  # fmt: skip
    assert (setup.returncode, setup.stdout) == (0, f"İYS account of store {store.id} set\n")
    await post(client, store, consent("granted", at="2026-11-23T10:00:00+03:00"))
    await workers.drain()  # the wrong password is refused: the change waits
    assert [row[3] for row in await pushes(db)] == ["pending"]
    fixed = await asyncio.to_thread(
        ulak_cli, "stores", "iys", "set", "--store", str(store.id), "--password", PASSWORD, env=env
    )
    assert fixed.returncode == 0
    await workers.drain()
    fake.citizen_change(
        type="EPOSTA", recipient="ayse@example.com", recipientType="BIREYSEL",
        status="RET", consentDate="2026-11-23 11:59:00",
    )  # fmt: skip
    assert await workers.once("consent.iys_pull") == 1
    assert [row[3] for row in await pushes(db)] == ["sent"]
    table = await asyncio.to_thread(
        ulak_cli, "stores", "iys", "show", "--store", str(store.id), env=env
    )
    as_json = await asyncio.to_thread(show, store, db)
    assert as_json == {
        "iys_code": IYS_CODE, "brand_code": BRAND_CODE, "base_url": fake.url,
        "username_set": True, "password_set": True,
        "pending": 0, "sent": 1, "skipped": 0, "failed": 0,
        "pulled_at": "2026-11-23 09:00:00+00:00", "last_error": None, "failures": [],
    }  # fmt: skip
    assert "│ password   │ set" in table.stdout
    secrets = [PASSWORD, wrong, *fake.access_tokens, "refresh-1-k2Zr", "refresh-2-k2Zr"]
    assert len(fake.access_tokens) == 1
    assert "İYS push of store 1 waits: İYS refused the credentials (401)" in caplog.text
    for secret in secrets:
        for text in (caplog.text, table.stdout, table.stderr, json.dumps(as_json), setup.stdout):
            assert secret not in text
    cleared = await asyncio.to_thread(
        ulak_cli, "stores", "iys", "clear", "--store", str(store.id), env=env
    )
    assert cleared.stdout == f"İYS account of store {store.id} cleared\n"
    gone = await asyncio.to_thread(
        ulak_cli, "stores", "iys", "show", "--store", str(store.id), env=env
    )
    assert (gone.returncode, gone.stderr) == (
        1,
        f"store {store.id} has no İYS account (`ulak stores iys set`)\n",
    )


async def test_an_unsubscribe_on_ulaks_page_is_registered_at_iys(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, fake: FakeIys
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, OFFER)
    await post(client, store, consent("granted", at="2026-11-23T10:00:00+03:00"))
    await workers.drain()
    await connect(db, clock, store, fake.url)  # İYS had her consent before ulak
    fake.consents[("EPOSTA", "BIREYSEL", "ayse@example.com")] = "ONAY"
    await post(client, store, order_placed("1"))
    await workers.drain()
    (mail,) = await dev_inbox(db)
    clock.travel(timedelta(minutes=5))
    response = await client.post(
        mail["List-Unsubscribe"].split(",")[0].strip("<> ").removeprefix("http://ulak.test"),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 200
    await workers.drain()
    assert fake.added == [
        body("RET", "EPOSTA", "ayse@example.com", "2026-11-23 12:05:00", "HS_EPOSTA")
    ]
    assert [(c.path, c.body) for c in fake.calls_to("/status")] == [
        (f"{BRAND}/consents/status", query("EPOSTA", "ayse@example.com"))
    ]


async def test_a_pull_that_fails_moves_no_cursor_and_records_nothing_twice(
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    fake: FakeIys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await make_store(db, clock, library=False)
    await connect(db, clock, store, fake.url)
    fake.citizen_change(
        type="EPOSTA", recipient="ayse@example.com", recipientType="BIREYSEL",
        status="ONAY", consentDate="2026-11-23 11:00:00",
    )  # fmt: skip

    async def account() -> tuple[str | None, str | None]:
        async with db.read() as session:
            kept = await session.get(IysAccount, store.id)
            assert kept is not None
            return kept.pull_after, kept.last_error

    fake.unavailable = True  # an outage: the tick passes, the next minute tries again
    assert await workers.once("consent.iys_pull") == 0
    assert await account() == (None, "pull: İYS answered 503 to the token request")
    fake.unavailable = False

    # A crash while the page is recorded: its events and the cursor go together.
    real = insert_events

    async def crash(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(iys_pull, "insert_events", crash)
    clock.travel(timedelta(minutes=1))
    with pytest.raises(RuntimeError):
        await workers.once("consent.iys_pull")
    assert await account() == (None, "pull: İYS answered 503 to the token request")
    async with db.read() as session:
        assert (await session.execute(select(Event.key))).all() == []

    monkeypatch.setattr(iys_pull, "insert_events", real)
    clock.travel(timedelta(minutes=1))
    assert await workers.once("consent.iys_pull") == 1
    assert await account() == ("1", None)
    clock.travel(timedelta(minutes=1))
    assert await workers.once("consent.iys_pull") == 0
    async with db.read() as session:
        assert (await session.execute(select(Event.key, Event.source))).all() == [
            ("iys:iys-tx-1", "iys")
        ]
    assert [c.query.get("after") for c in fake.calls_to("/consents/changes")] == [
        None, None, "1"]  # fmt: skip


async def test_a_change_of_an_erased_customer_is_registered_then_kept_as_a_digest(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    """The law asks that a change be registered at İYS even when its customer is erased
    meanwhile: it keeps the address until then, and a digest after; ulak keeps no copy
    of İYS's state for them."""
    fake = FakeIys(free_port())  # not started: İYS is down
    store = await make_store(db, clock, library=False)
    await connect(db, clock, store, fake.url)
    await post(client, store, consent("granted", at="2026-11-23T11:00:00+03:00"))
    await workers.drain()
    erased = await client.delete(f"/v1/customers/{AYSE['id']}", headers=store.auth)
    assert erased.status_code == 202, erased.text
    await workers.drain()
    assert await pushes(db) == [
        ("EPOSTA", "ayse@example.com", "ONAY", "pending", None,
         "İYS could not be reached (ConnectError)"),
    ]  # fmt: skip
    fake.start()
    try:
        clock.travel(timedelta(minutes=1))
        await workers.drain()
        assert fake.added == [body("ONAY", "EPOSTA", "ayse@example.com", "2026-11-23 11:00:00")]
    finally:
        fake.stop()
    digest = "sha256:" + hashlib.sha256(b"ayse@example.com").hexdigest()
    assert await pushes(db) == [("EPOSTA", digest, "ONAY", "sent", "tx-1", None)]
    async with db.read() as session:
        assert list((await session.execute(select(IysRecipient))).scalars()) == []

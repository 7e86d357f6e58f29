"""Delivery reports: polled from Netgsm, posted back by Twilio (signed), each turning the
SMS `delivered` or `failed` with the provider's reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.sms.netgsm_fake import FakeNetgsm, fake_netgsm
from tests.support import StoreKey, add_journey, make_store, opened_app, order_placed
from ulak.channels.gateways.twilio import sign
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database
from ulak.messages.models import Message
from ulak.sms.service import set_sms, sms_setup
from ulak.worker import Workers

PHONE = "+905321234567"
JOURNEY = """
key: sms-note
name: SMS note
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: sms
    template: birthday_sms
"""
TWILIO = {"account_sid": "AC" + "1" * 32, "auth_token": "twilio-token"}


@pytest.fixture
async def netgsm() -> AsyncIterator[FakeNetgsm]:
    async with fake_netgsm() as fake:
        yield fake


@pytest.fixture
async def app(
    database_url: str, db: Database, clock: FrozenClock, netgsm: FakeNetgsm
) -> AsyncIterator[Any]:
    settings = Settings(
        database_url=database_url,
        smtp_url="",
        public_url="http://ulak.test",
        sms_gateway_url=netgsm.url,
    )
    async with opened_app(settings, db, clock) as application:
        yield application


async def sms_store(db: Database, clock: FrozenClock, provider: str) -> StoreKey:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, JOURNEY)
    credentials = {"usercode": "8503001122", "password": "pw"} if provider == "netgsm" else TWILIO
    async with db.transaction() as session:
        await set_sms(
            session,
            store_id=store.id,
            clock=clock,
            provider=provider,
            credentials=credentials,
            sender="AYSEDKKN",
        )
    return store


async def order(client: httpx.AsyncClient, store: StoreKey, number: str) -> None:
    event = order_placed(number, customer_id=f"c-{number}", email=f"c{number}@example.com")
    event["customer"]["phone"] = f"+90532123456{number}"
    response = await client.post("/v1/events", json={"events": [event]}, headers=store.auth)
    assert response.status_code == 202, response.text


async def test_netgsm_reports_are_polled(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
) -> None:
    store = await sms_store(db, clock, "netgsm")
    for number in "123":
        await order(client, store, number)
    await workers.drain()
    # Job ids in the order the fake took them (deliveries run side by side).
    jobs = {sent["messages"][0]["no"][-1]: f"{17000001 + i}" for i, sent in enumerate(netgsm.sent)}
    assert sorted(jobs) == ["1", "2", "3"]
    assert await by_phone(db) == {n: (jobs[n], "sent", None) for n in "123"}
    netgsm.reports = {
        jobs["1"]: {"status": 1, "deliveredDate": "01.12.2026 12:01:00"},
        jobs["2"]: {"status": 3, "errorCode": 105},
        jobs["3"]: {"status": 0},
    }
    await workers.drain()
    assert netgsm.report_queries == []  # not asked in the first minute
    clock.travel(timedelta(minutes=1))
    await workers.drain()
    assert [sorted(q["jobids"]) for q in netgsm.report_queries] == [sorted(jobs.values())]
    assert await by_phone(db) == {
        "1": (jobs["1"], "delivered", None),
        "2": (
            jobs["2"],
            "failed",
            "Netgsm status 3: invalid or restricted number (error 105: wrong number)",
        ),
        "3": (jobs["3"], "sent", None),
    }
    # Asked again no sooner than a minute later (Netgsm answers 10 queries a minute).
    await workers.drain()
    assert len(netgsm.report_queries) == 1


async def by_phone(db: Database) -> dict[str, tuple[str | None, str, str | None]]:
    """Each SMS's (provider id, status, reason) by its number's last digit."""
    async with db.read() as session:
        rows = await session.execute(select(Message).where(Message.channel == "sms"))
        return {m.to_address[-1]: (m.provider_id, m.status, m.last_error) for m in rows.scalars()}


async def test_twilio_posts_signed_reports(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
) -> None:
    store = await sms_store(db, clock, "twilio")
    await order(client, store, "1")
    await order(client, store, "2")
    await workers.drain()
    async with db.read() as session:
        token = (await sms_setup(session, store_id=store.id)).report_token
    url = f"http://ulak.test/v1/sms/reports/twilio/{token}"
    assert [s["StatusCallback"] for s in netgsm.sent] == [url, url]
    sids = {sent["To"][-1]: f"SM{i + 1:032d}" for i, sent in enumerate(netgsm.sent)}
    first, second = sids["1"], sids["2"]

    async def post(params: dict[str, str], signature: str | None = None) -> httpx.Response:
        return await client.post(
            url,
            data=params,
            headers={
                "X-Twilio-Signature": signature
                or sign(TWILIO["auth_token"].encode(), url, list(params.items()))
            },
        )

    delivered = {
        "MessageSid": first,
        "MessageStatus": "delivered",
        "AccountSid": TWILIO["account_sid"],
    }
    failed = {
        "MessageSid": second,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": TWILIO["account_sid"],
    }
    forged = await post(delivered | {"MessageSid": second}, signature=sign(b"guess", url, []))
    assert forged.status_code == 401
    wrong_store = await client.post(url.replace(token or "", "x" * 43), data=delivered)
    assert wrong_store.status_code == 404
    assert (await post(delivered)).json() == {"accepted": 1}
    assert (await post(failed)).json() == {"accepted": 1}
    await workers.drain()
    assert await by_phone(db) == {
        "1": (first, "delivered", None),
        "2": (second, "failed", "Twilio undelivered (30003: unreachable destination handset)"),
    }


async def test_a_shop_cannot_post_delivery_reports(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock, library=False)
    event = {
        "type": "message.delivered",
        "customer": {"id": "c-1"},
        "data": {"provider_id": "17000001"},
    }
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {
            "path": "type",
            "message": "message.delivered comes only from an SMS gateway's delivery report",
        }
    ]


async def test_a_store_with_many_sms_awaiting_does_not_hold_back_anothers_reports(
    database_url: str, db: Database, clock: FrozenClock, netgsm: FakeNetgsm
) -> None:
    # Batches of 1: a round reads the 10 oldest SMS awaiting a report.
    settings = Settings(
        database_url=database_url,
        smtp_url="",
        public_url="http://ulak.test",
        sms_gateway_url=netgsm.url,
        batch_size=1,
    )
    async with opened_app(settings, db, clock) as app:
        workers: Workers = app.state.workers
        busy = await sms_store(db, clock, "netgsm")
        quiet = await sms_store(db, clock, "netgsm")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
        ) as client:
            for number in range(10, 22):  # 12 SMS of the busy store, sent first
                event = order_placed(
                    str(number), customer_id=f"c-{number}", email=f"c{number}@example.com"
                )
                event["customer"]["phone"] = f"+9053212340{number}"
                response = await client.post(
                    "/v1/events", json={"events": [event]}, headers=busy.auth
                )
                assert response.status_code == 202, response.text
            await workers.drain()
            clock.travel(timedelta(seconds=10))
            await order(client, quiet, "9")
            await workers.drain()
        clock.travel(timedelta(minutes=1))
        await workers.drain()
        await workers.drain()
    # The busy store's gateway was asked about its 10 oldest; then, in the same minute,
    # the quiet store's about its one SMS, which the busy store's older ones did not hide.
    assert [len(q["jobids"]) for q in netgsm.report_queries] == [10, 1]

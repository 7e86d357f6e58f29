"""SMS through a store's gateway: a local fake Netgsm over HTTP. A permanent error fails the
message with the provider's reason, a throttled one is retried when the gateway says."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.sms.netgsm_fake import FakeNetgsm, fake_netgsm
from tests.support import (
    SmtpSink,
    StoreKey,
    add_journey,
    make_store,
    opened_app,
    order_placed,
    wait_until,
)
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database
from ulak.jobs import job_context
from ulak.messages.models import Message
from ulak.messages.sending import SenderProcess
from ulak.sms.models import DevSms
from ulak.sms.service import set_sms
from ulak.stores.models import Store
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
TEXT = "Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe!"


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


async def netgsm_store(db: Database, clock: FrozenClock) -> StoreKey:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, JOURNEY)
    async with db.transaction() as session:
        await set_sms(
            session,
            store_id=store.id,
            clock=clock,
            provider="netgsm",
            credentials={"usercode": "8503001122", "password": "s3cret-pw"},
            sender="AYSEDKKN",
        )
    return store


async def order(client: httpx.AsyncClient, store: StoreKey, number: str) -> None:
    event = order_placed(number)
    event["customer"]["phone"] = PHONE
    response = await client.post("/v1/events", json={"events": [event]}, headers=store.auth)
    assert response.status_code == 202, response.text


async def sms_rows(db: Database) -> list[tuple[str, str | None, str | None, int]]:
    async with db.read() as session:
        rows = await session.execute(select(Message).where(Message.channel == "sms"))
        return [(m.status, m.last_error, m.provider_id, m.attempts) for m in rows.scalars()]


async def test_the_gateway_gets_the_sms_and_its_id_is_kept(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
) -> None:
    store = await netgsm_store(db, clock)
    await order(client, store, "1")
    await workers.drain()
    assert netgsm.sent == [
        {
            "msgheader": "AYSEDKKN",
            "messages": [{"msg": TEXT, "no": "5321234567"}],
            "encoding": "TR",
            "iysfilter": "0",
        }
    ]
    assert netgsm.auth == ["Basic " + base64.b64encode(b"8503001122:s3cret-pw").decode()]
    assert await sms_rows(db) == [("sent", None, "17000001", 1)]
    async with db.read() as session:
        assert (await session.execute(select(DevSms))).first() is None


async def test_a_permanent_error_fails_the_sms_with_the_providers_reason(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
) -> None:
    store = await netgsm_store(db, clock)
    netgsm.answers = [(406, {"code": "40", "jobid": None, "description": "Baslik tanimsiz"})]
    await order(client, store, "1")
    await workers.drain()
    reason = (
        "gave up after 1 attempt(s): Netgsm 40: sender header (msgheader) not defined on the"
        " account (Baslik tanimsiz)"
    )
    assert await sms_rows(db) == [("failed", reason, None, 1)]
    assert len(netgsm.sent) == 1


async def test_a_throttled_sms_is_retried_when_the_gateway_says(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
) -> None:
    store = await netgsm_store(db, clock)
    netgsm.answers = [(200, {"code": "80", "jobid": None, "description": "limit"})]
    start = clock.now()
    await order(client, store, "1")
    await workers.drain()
    assert await sms_rows(db) == [("queued", "Netgsm 80: sending limit reached (limit)", None, 1)]
    async with db.read() as session:
        due = await session.scalar(select(Message.send_after).where(Message.channel == "sms"))
    # Netgsm's limit is per minute: a minute, not the first backoff's 30 s.
    assert due == start + timedelta(seconds=60)
    clock.travel(timedelta(seconds=59))
    await workers.drain()
    assert len(netgsm.sent) == 1
    clock.travel(timedelta(seconds=1))
    await workers.drain()
    assert len(netgsm.sent) == 2
    assert await sms_rows(db) == [("sent", None, "17000002", 2)]


async def test_with_smtp_the_sender_process_sends_the_sms_too(
    database_url: str,
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    netgsm: FakeNetgsm,
    smtp_sink: SmtpSink,
) -> None:
    settings = Settings(
        database_url=database_url,
        public_url="http://ulak.test",
        smtp_url=smtp_sink.url,
        sms_gateway_url=netgsm.url,
    )
    ctx = job_context(settings, db, clock, helper_processes=1)
    workers = Workers(ctx)  # with SMTP and a helper: it delivers in a sender process
    assert isinstance(ctx.sender.deliveries, SenderProcess)
    store = await netgsm_store(db, clock)
    try:
        await order(client, store, "1")
        await workers.drain()
        await asyncio.to_thread(
            wait_until, lambda: len(netgsm.sent) == 1, 10, "the SMS at the gateway"
        )
        await workers.drain()
        assert [s["messages"] for s in netgsm.sent] == [[{"msg": TEXT, "no": "5321234567"}]]
        assert await sms_rows(db) == [("sent", None, "17000001", 1)]
        assert smtp_sink.received == []
    finally:
        await ctx.sender.close(grace=10)
        ctx.offload.close()


COMMERCIAL = JOURNEY.replace("key: sms-note", "key: sms-offer").replace(
    "legal_class: informational", "legal_class: commercial"
)


@pytest.mark.parametrize(
    ("recipient_type", "iysfilter"), [("individual", "11"), ("merchant", "12")]
)
async def test_a_commercial_sms_asks_the_gateway_to_filter_it_as_its_recipient_is(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    netgsm: FakeNetgsm,
    recipient_type: str,
    iysfilter: str,
) -> None:
    """Netgsm checks a commercial SMS against İYS's list of individuals (11) or of
    merchants (12): the recipient's type comes from their consent."""
    store = await netgsm_store(db, clock)
    await add_journey(db, clock, store, COMMERCIAL)
    async with db.transaction() as session:
        await session.execute(
            update(Store).where(Store.id == store.id).values(sending_hours_sms=None)
        )
    consent = {
        "id": "evt-consent",
        "type": "consent.updated",
        "customer": {"id": "c-1042", "phone": PHONE},
        "data": {
            "channel": "sms",
            "status": "granted",
            "source": "checkout",
            "recipient_type": recipient_type,
        },
    }
    response = await client.post("/v1/events", json={"events": [consent]}, headers=store.auth)
    assert response.status_code == 202, response.text
    await workers.drain()
    await order(client, store, "1")
    await workers.drain()
    assert sorted(sent["iysfilter"] for sent in netgsm.sent) == ["0", iysfilter]

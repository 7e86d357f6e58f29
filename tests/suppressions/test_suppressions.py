"""Bounces and complaints put an address on its store's suppression list, and the list
stops the next message: from the SMTP server's refusal, from a DSN or an abuse report
through `ulak inbound` and POST /v1/inbound/email. Only the store's own addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.support import StoreKey, free_port, make_store, opened_app, order_placed
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.consent.service import consent_state
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import LANES, Event
from ulak.messages.models import Message
from ulak.suppressions.listener import ReportHandler, listener
from ulak.suppressions.models import SoftBounce
from ulak.suppressions.service import Suppressed, list_suppressions
from ulak.suppressions.verp import tag_of
from ulak.worker import Workers

SAMPLES = Path(__file__).parent.parent / "samples" / "dsn"
BOUNCES = "bounces.ulak.test"
TOKEN = "operator-token-for-tests"


@dataclass
class RefusingSink:
    """A real SMTP server that answers RCPT for the addresses in `refuse` with their reply,
    and accepts everything else."""

    refuse: dict[str, str]
    received: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[RefusingSink, int]]:
    handler = RefusingSink({})
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def smtp_settings(database_url: str, port: int, **more: Any) -> Settings:
    return Settings(
        database_url=database_url,
        smtp_url=f"smtp://127.0.0.1:{port}",
        public_url="http://ulak.test",
        bounce_domain=BOUNCES,
        inbound_token=TOKEN,
        **more,
    )


@pytest.fixture
async def smtp_app(
    database_url: str, db: Database, clock: FrozenClock, sink: tuple[RefusingSink, int]
) -> AsyncIterator[Any]:
    async with opened_app(smtp_settings(database_url, sink[1]), db, clock) as application:
        yield application


async def order(
    client: httpx.AsyncClient, store: StoreKey, number: str, email: str, customer: str = "c-1"
) -> None:
    event = order_placed(number, customer_id=customer, email=email)
    response = await client.post("/v1/events", json={"events": [event]}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def run(workers: Workers) -> None:
    """Apply, run steps, send, record outcomes and apply what they caused, until quiet."""
    for _ in range(3):
        await workers.drain()
        await workers.ctx.sender.free_slot()
        while workers.ctx.sender.in_flight:
            await workers.ctx.sender.ended(within=5)
        await workers.ctx.sender.outcomes.wait()
    await workers.drain()


async def messages(db: Database, store: StoreKey) -> list[tuple[str, str, str | None]]:
    """(recipient, status, reason) of the store's messages, in order."""
    async with db.read() as session:
        rows = await session.execute(
            select(Message).where(Message.store_id == store.id).order_by(Message.id)
        )
        return [(m.to_address, m.status, m.last_error) for m in rows.scalars()]


async def suppressions(db: Database, store: StoreKey) -> list[tuple[str, str, str, int | None]]:
    async with db.read() as session:
        found: list[Suppressed] = await list_suppressions(session, store_id=store.id)
    return [(s.address, s.reason, s.detail, s.message_id) for s in found]


async def message_ids(db: Database, store: StoreKey) -> list[int]:
    async with db.read() as session:
        rows = await session.execute(
            select(Message.id).where(Message.store_id == store.id).order_by(Message.id)
        )
        return list(rows.scalars())


async def bounce_lanes(db: Database) -> list[tuple[str, int]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Event.type, Event.lane).where(Event.type == "message.bounced")
        )
        return [(t, lane) for t, lane in rows]


async def customer_of(db: Database, message_id: int) -> int:
    async with db.read() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        assert message.customer_id is not None
        return message.customer_id


async def tag(db: Database, message_id: int) -> str:
    from ulak.stores.models import Store

    async with db.read() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        store = await session.get(Store, message.store_id)
        assert store is not None
        return tag_of(message_id, store.link_secret)


async def test_a_550_at_rcpt_suppresses_the_address_for_its_store_only(
    smtp_app: Any, db: Database, clock: FrozenClock, sink: tuple[RefusingSink, int]
) -> None:
    handler, _ = sink
    handler.refuse["gone@example.com"] = "550 5.1.1 <gone@example.com>: user unknown"
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    other = await make_store(db, clock, name="Başka Dükkan")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        # A customer with no message first, so that customer and message ids differ.
        cart = {"type": "cart.updated", "customer": {"id": "x-1"}, "data": {"cart_id": "k1"}}
        response = await client.post("/v1/events", json={"events": [cart]}, headers=other.auth)
        assert response.status_code == 202, response.text
        await order(client, shop, "1001", "gone@example.com")
        await run(workers)
        (first,) = await message_ids(db, shop)
        refused = "recipient refused: 550 5.1.1 <gone@example.com>: user unknown"
        assert await suppressions(db, shop) == [
            ("gone@example.com", "hard_bounce", f"5.1.1 {refused}", first)
        ]
        # The bounce was applied in the customer's lane, in order with ulak's other events
        # about them (a page's unsubscribe, say), whichever worker takes that lane.
        assert await bounce_lanes(db) == [
            ("message.bounced", (await customer_of(db, first)) % LANES)
        ]
        # The next order's confirmation is not sent: skipped as it is made, saying why.
        await order(client, shop, "1002", "gone@example.com")
        # The same address at another store is that store's business.
        handler.refuse.clear()
        await order(client, other, "2001", "gone@example.com", customer="o-1")
        await run(workers)
    why = f"address suppressed (hard bounce: 5.1.1 {refused})"
    assert await messages(db, shop) == [
        ("gone@example.com", "bounced", f"bounced (hard, smtp): 5.1.1 {refused}"),
        ("gone@example.com", "skipped", why),
    ]
    assert await messages(db, other) == [("gone@example.com", "sent", None)]
    assert await suppressions(db, other) == []
    # Sent with the message's VERP address as its envelope sender.
    assert [mail_from for mail_from, _ in handler.received] == [
        f"bounce+{await tag(db, (await message_ids(db, other))[0])}@{BOUNCES}"
    ]


async def test_a_suppressed_address_is_skipped_at_claim_too(
    smtp_app: Any, db: Database, clock: FrozenClock, sink: tuple[RefusingSink, int]
) -> None:
    """An address suppressed after its message was queued: the claim skips it."""
    from ulak.suppressions.service import suppress

    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        await order(client, shop, "1001", "Ayse@Example.com")
        await workers.once("events.apply")
        await workers.once("journeys.run_due")
        async with db.transaction() as session:
            await suppress(
                session,
                store_id=shop.id,
                channel="email",
                address="ayse@example.com",
                reason="manual",
                detail="asked by phone",
                message_id=None,
                now=clock.now(),
            )
        await run(workers)
    assert await messages(db, shop) == [
        ("ayse@example.com", "skipped", "address suppressed (added by hand: asked by phone)")
    ]
    assert sink[0].received == []


async def test_three_soft_bounces_suppress_the_address(
    database_url: str, db: Database, clock: FrozenClock, sink: tuple[RefusingSink, int]
) -> None:
    handler, port = sink
    handler.refuse["full@example.com"] = "452 4.2.2 mailbox full"
    # One attempt: each message's retries run out at its first refusal.
    settings = smtp_settings(database_url, port, send_max_attempts=1)
    async with opened_app(settings, db, clock) as app:
        workers: Workers = app.state.workers
        shop = await make_store(db, clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
        ) as client:
            for number in ("1001", "1002"):
                await order(client, shop, number, "full@example.com")
                await run(workers)
            assert await suppressions(db, shop) == []
            async with db.read() as session:
                counted = (await session.execute(select(SoftBounce))).scalars().all()
                assert [(s.address, s.count) for s in counted] == [("full@example.com", 2)]
            await order(client, shop, "1003", "full@example.com")
            await run(workers)
            await order(client, shop, "1004", "full@example.com")
            await run(workers)
    refused = "recipient refused: 452 4.2.2 mailbox full"
    third = (await message_ids(db, shop))[2]
    assert await suppressions(db, shop) == [
        (
            "full@example.com",
            "soft_bounces",
            f"3 soft bounces; last: 4.2.2 {refused}",
            third,
        )
    ]
    statuses = [status for _, status, _ in await messages(db, shop)]
    assert statuses == ["bounced", "bounced", "bounced", "skipped"]


def with_tag(raw: bytes, before: bytes, value: str) -> bytes:
    """A real report whose returned headers carry ulak's tag (before the header `before`
    starts), as they would had the message been ulak's."""
    assert raw.count(before) == 1
    return raw.replace(before, b"X-Ulak-Message: " + value.encode() + b"\n" + before)


async def sent_message(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey
) -> int:
    await order(client, store, "1001", "ayse@example.com")
    await run(workers)
    assert [status for _, status, _ in await messages(db, store)] == ["sent"]
    return (await message_ids(db, store))[0]


async def test_a_dsn_to_the_verp_address_through_ulak_inbound(
    smtp_app: Any, db: Database, clock: FrozenClock
) -> None:
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
    port = free_port()
    server = listener(ReportHandler(db, smtp_app.state.inbox, BOUNCES), host="127.0.0.1", port=port)
    server.start()
    try:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        # Never a relay: mail for anywhere else is refused.
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp.sendmail("", ["someone@example.com"], b"Subject: x\n\nx\n")
        # A real Postfix DSN, to the address the message was sent from.
        raw = (SAMPLES / "postfix-01.eml").read_bytes()
        await smtp.sendmail("", [f"bounce+{await tag(db, message)}@{BOUNCES}"], raw)
        await smtp.quit()
    finally:
        server.stop()
    await workers.once("events.apply")
    detail = (
        '5.1.1 procmail: Couldn\'t create "/var/spool/mail/neko" id: r.example.org: No such user'
    )
    # The DSN names another recipient (the sample's); the message's own address is the
    # one suppressed, since the VERP address names the message.
    assert await suppressions(db, shop) == [("ayse@example.com", "hard_bounce", detail, message)]
    assert await messages(db, shop) == [
        ("ayse@example.com", "bounced", f"bounced (hard, dsn): {detail}")
    ]


async def test_a_dsn_through_the_api_with_the_stores_key(
    smtp_app: Any, db: Database, clock: FrozenClock
) -> None:
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    other = await make_store(db, clock, name="Başka Dükkan")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
        raw = with_tag(
            (SAMPLES / "gmail-01.eml").read_bytes(),
            b"Subject: TEST FROM GMAIL.COM",
            await tag(db, message),
        )
        headers = {"Content-Type": "message/rfc822"}
        # Another store's key cannot report this store's message.
        answer = await client.post("/v1/inbound/email", content=raw, headers=headers | other.auth)
        assert answer.status_code == 202
        assert answer.json() == {
            "event_type": None,
            "key": None,
            "ignored": "names no message of ulak's (or its signature is wrong)",
        }
        unauthenticated = await client.post("/v1/inbound/email", content=raw, headers=headers)
        assert unauthenticated.status_code == 401
        answer = await client.post("/v1/inbound/email", content=raw, headers=headers | shop.auth)
        assert answer.status_code == 202
        assert answer.json() == {
            "event_type": "message.bounced",
            "key": f"derived:dsn:{message}:hard",
            "ignored": None,
        }
        await workers.once("events.apply")
    detail = "5.1.1 550 5.1.1 <userunknown@example.jp>... User Unknown"
    assert await suppressions(db, shop) == [("ayse@example.com", "hard_bounce", detail, message)]
    assert await suppressions(db, other) == []
    assert await messages(db, shop) == [
        ("ayse@example.com", "bounced", f"bounced (hard, dsn): {detail}")
    ]


async def test_a_forged_tag_is_ignored(smtp_app: Any, db: Database, clock: FrozenClock) -> None:
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
        forged = f"{message}.{'0' * 16}"
        raw = with_tag(
            (SAMPLES / "gmail-01.eml").read_bytes(), b"Subject: TEST FROM GMAIL.COM", forged
        )
        answer = await client.post(
            "/v1/inbound/email",
            content=raw,
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "X-Original-To": f"bounce+{forged}@{BOUNCES}",
            },
        )
        assert answer.status_code == 202
        assert answer.json()["ignored"] == "names no message of ulak's (or its signature is wrong)"
        await workers.drain()
    assert await suppressions(db, shop) == []
    assert await messages(db, shop) == [("ayse@example.com", "sent", None)]
    async with db.read() as session:
        types = (await session.execute(select(Event.type))).scalars().all()
    assert "message.bounced" not in types


async def test_a_complaint_suppresses_commercial_mail_and_revokes_consent(
    smtp_app: Any, db: Database, clock: FrozenClock
) -> None:
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
        # A real Yahoo! feedback-loop report, with the returned message's headers ours.
        raw = with_tag(
            (SAMPLES / "arf-02.eml").read_bytes(),
            b"Subject: Nyaaaaaaaan\n",
            await tag(db, message),
        )
        answer = await client.post(
            "/v1/inbound/email", content=raw, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.json() == {
            "event_type": "message.complained",
            "key": f"derived:arf:{message}",
            "ignored": None,
        }
        await workers.once("events.apply")
        # Her next order's confirmation (informational) still goes: she complained about
        # marketing, not about what she bought.
        await order(client, shop, "1002", "ayse@example.com")
        await run(workers)
    assert await suppressions(db, shop) == [
        ("ayse@example.com", "complaint", "feedback type abuse", message)
    ]
    assert await messages(db, shop) == [
        ("ayse@example.com", "complained", "reported as spam (abuse)"),
        ("ayse@example.com", "sent", None),
    ]
    async with db.read() as session:
        (customer,) = (await session.execute(select(Customer))).scalars()
    state = consent_state(customer, "email")
    assert state is not None
    assert (state.status, state.source) == ("revoked", "spam_complaint")


async def test_a_shop_cannot_post_a_bounce_as_an_event(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    event = {
        "type": "message.bounced",
        "customer": {"id": "c-1", "email": "ayse@example.com"},
        "data": {"message_id": 1, "kind": "hard"},
    }
    response = await client.post("/v1/events", json={"events": [event]}, headers=store.auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {
            "path": "events[0].type",
            "message": "message.bounced is ulak's own: post bounce and complaint reports "
            "to /v1/inbound/email",
        }
    ]


async def test_a_delivery_between_soft_bounces_starts_the_count_again(
    database_url: str, db: Database, clock: FrozenClock, sink: tuple[RefusingSink, int]
) -> None:
    handler, port = sink
    settings = smtp_settings(database_url, port, send_max_attempts=1)
    async with opened_app(settings, db, clock) as app:
        workers: Workers = app.state.workers
        shop = await make_store(db, clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
        ) as client:
            for number, full in (("1001", True), ("1002", True), ("1003", False), ("1004", True)):
                if full:
                    handler.refuse["full@example.com"] = "452 4.2.2 mailbox full"
                else:
                    handler.refuse.clear()
                await order(client, shop, number, "full@example.com")
                await run(workers)
                clock.travel(timedelta(hours=1))
    soft = "bounced (soft, smtp): 4.2.2 recipient refused: 452 4.2.2 mailbox full"
    assert await messages(db, shop) == [
        ("full@example.com", "bounced", soft),
        ("full@example.com", "bounced", soft),
        ("full@example.com", "sent", None),
        # A commercial journey of the library, a few hours after the first order.
        ("full@example.com", "skipped", "no consent to commercial email on record"),
        ("full@example.com", "bounced", soft),
    ]
    # Two in a row, a delivery, then one: not three in a row.
    assert await suppressions(db, shop) == []
    async with db.read() as session:
        counted = (await session.execute(select(SoftBounce))).scalars().all()
    assert [(s.address, s.count) for s in counted] == [("full@example.com", 1)]


async def test_a_report_after_an_erasure_brings_no_address_back(
    smtp_app: Any, db: Database, clock: FrozenClock
) -> None:
    """DSNs come hours or days late, and their diagnostic names the recipient: one about an
    erased customer's message suppresses nothing and keeps nothing of the report."""
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
        raw = with_tag(
            (SAMPLES / "gmail-01.eml")
            .read_bytes()
            .replace(b"userunknown@example.jp", b"ayse@example.com"),
            b"Subject: TEST FROM GMAIL.COM",
            await tag(db, message),
        )
        erased = await client.delete("/v1/customers/c-1", headers=shop.auth)
        assert erased.status_code == 202, erased.text
        await run(workers)
        answer = await client.post(
            "/v1/inbound/email",
            content=raw,
            headers=shop.auth | {"Content-Type": "message/rfc822"},
        )
        assert answer.status_code == 202, answer.text
        await workers.once("events.apply")
    assert await suppressions(db, shop) == []
    assert await messages(db, shop) == [("[erased]", "sent", None)]
    async with db.read() as session:
        report = (
            await session.execute(select(Event).where(Event.type == "message.bounced"))
        ).scalar_one()
    assert (report.status, report.error, report.data) == (
        "applied",
        "not acted on: the message's customer was erased",
        {},
    )


async def test_an_erasure_clears_the_addresses_the_customer_had_before(
    smtp_app: Any, db: Database, clock: FrozenClock
) -> None:
    """An address she no longer has is personal data too: the list forgets it."""
    workers: Workers = smtp_app.state.workers
    shop = await make_store(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=smtp_app), base_url="http://ulak.test"
    ) as client:
        message = await sent_message(client, workers, db, shop)
        raw = with_tag(
            (SAMPLES / "gmail-01.eml").read_bytes(),
            b"Subject: TEST FROM GMAIL.COM",
            await tag(db, message),
        )
        reported = await client.post(
            "/v1/inbound/email",
            content=raw,
            headers=shop.auth | {"Content-Type": "message/rfc822"},
        )
        assert reported.status_code == 202, reported.text
        await workers.once("events.apply")
        assert [s[:2] for s in await suppressions(db, shop)] == [
            ("ayse@example.com", "hard_bounce")
        ]
        moved = {
            "type": "customer.updated",
            "customer": {"id": "c-1", "email": "ayse.yeni@example.com"},
        }
        answer = await client.post("/v1/events", json={"events": [moved]}, headers=shop.auth)
        assert answer.status_code == 202, answer.text
        await run(workers)
        erased = await client.delete("/v1/customers/c-1", headers=shop.auth)
        assert erased.status_code == 202, erased.text
        await run(workers)
    assert await suppressions(db, shop) == []

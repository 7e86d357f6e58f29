"""The sending policy through the real pipeline and the sender's claim, on SQLite and
PostgreSQL: caps across journeys with each send's exact time, priority, skip over a cap,
quiet hours in the recipient's zone, the merchant relaxation, relay addresses, and the
reasons in the customer's timeline and `ulak status`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import false, select

from tests.support import (
    StoreKey,
    add_journey,
    consent_updated,
    dev_inbox,
    make_store,
    order_placed,
    ulak_cli,
)
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.messages.models import Message
from ulak.messages.policing import OUTRANKED
from ulak.messages.service import claim_due
from ulak.operations import held_report
from ulak.worker import Workers

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY_CAP = "frequency cap: 1 commercial email a day"
WEEK_CAP = "frequency cap: 3 commercial email a week"


def journey(key: str, *, priority: int, over_cap: str = "postpone") -> str:
    return f"""
key: {key}
name: {key}
legal_class: commercial
priority: {priority}
over_cap: {over_cap}
trigger: {{event: order.placed}}
reentry: once_per_order
steps:
  - send: email
    template: order_delivered
"""


CONFIRMATION = """
key: confirmation
name: confirmation
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_confirmation
"""


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def messages(db: Database) -> list[tuple[str, str, datetime | None, str | None, Any]]:
    """(journey's template and step as the enrollment tells, status, sent at, reason,
    held until) per message, in the order they were made."""
    async with db.read() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
        return [
            (m.template, m.status, m.sent_at, m.held_reason or m.last_error, m.held_until)
            for m in rows
        ]


async def test_caps_across_two_journeys_send_by_priority_at_exact_moments(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    clock.set(START)
    store = await make_store(db, clock, library=False)
    # The low-priority journey is applied first, so its message is made (and due) first.
    await add_journey(db, clock, store, journey("cross-sell", priority=20))
    await add_journey(db, clock, store, journey("thanks", priority=80))
    await post(client, store, consent_updated("granted"), order_placed("1"))
    await workers.drain()
    async with db.read() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
        cross_sell, thanks = rows
        journey_of = {cross_sell.id: "cross-sell", thanks.id: "thanks"}

    async def state() -> dict[str, tuple[str, datetime | None, str | None, datetime | None]]:
        async with db.read() as session:
            found = (await session.execute(select(Message).order_by(Message.id))).scalars()
            return {
                f"{journey_of.get(m.id) or m.id}": (
                    m.status,
                    m.sent_at,
                    m.held_reason or m.last_error,
                    m.held_until,
                )
                for m in found
            }

    # The day's one slot goes to the higher priority; the other waits a day.
    tomorrow = START + timedelta(days=1)
    assert await state() == {
        "cross-sell": ("queued", None, DAY_CAP, tomorrow),
        "thanks": ("sent", START, None, None),
    }
    async with db.read() as session:
        assert await held_report(session, store_id=store.id) == [
            {"store_id": store.id, "status": "postponed", "reason": DAY_CAP, "count": 1}
        ]
    # Its reason is in the customer's timeline.
    response = await client.get("/v1/customers/c-1042", headers=store.auth)
    held = [
        e["detail"] for e in response.json()["timeline"] if e["detail"].get("id") == cross_sell.id
    ]
    assert [(h["status"], h["held_reason"], h["held_until"]) for h in held] == [
        ("queued", DAY_CAP, tomorrow.isoformat().replace("+00:00", "Z"))
    ]

    # An hour before its moment nothing goes; at it, it does.
    clock.set(tomorrow - timedelta(hours=1))
    await workers.drain()
    assert (await state())["cross-sell"][0] == "queued"
    clock.set(tomorrow)
    await workers.drain()
    assert (await state())["cross-sell"] == ("sent", tomorrow, None, None)

    # A second order an hour later: both wait for the day's next slot (09:00 on the 25th),
    # where the higher priority goes; the week's third slot is then used, so the other
    # waits for the first of the week's three to be 7 days old (09:00 on the 30th).
    clock.set(tomorrow + timedelta(hours=1))
    await post(client, store, order_placed("2"))
    await workers.drain()
    second = {k: v for k, v in (await state()).items() if k not in ("cross-sell", "thanks")}
    day_after = START + timedelta(days=2)
    assert sorted(second.values(), key=str) == [("queued", None, DAY_CAP, day_after)] * 2
    clock.set(day_after)
    await workers.drain()
    async with db.read() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
    outcome = [(m.id in journey_of, m.template, m.status, m.sent_at, m.held_until) for m in rows]
    cross_sell_2, thanks_2 = rows[2], rows[3]
    assert (thanks_2.status, thanks_2.sent_at) == ("sent", day_after)
    assert (cross_sell_2.status, cross_sell_2.held_reason, cross_sell_2.held_until) == (
        "queued",
        WEEK_CAP,
        START + timedelta(days=7),
    ), outcome
    assert len(await dev_inbox(db)) == 3  # nothing else went


async def test_a_journey_that_says_skip_drops_its_message_over_the_cap(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("survey", priority=10, over_cap="skip"))
    await add_journey(db, clock, store, journey("thanks", priority=80))
    await add_journey(db, clock, store, CONFIRMATION)
    await post(client, store, consent_updated("granted"), order_placed("1"))
    await workers.drain()
    assert sorted((t, s, r) for t, s, _, r, _ in await messages(db)) == [
        ("order_confirmation", "sent", None),  # informational: never capped
        ("order_delivered", "sent", None),
        ("order_delivered", "skipped", DAY_CAP),
    ]
    async with db.read() as session:
        assert await held_report(session, store_id=store.id) == [
            {"store_id": store.id, "status": "skipped", "reason": DAY_CAP, "count": 1}
        ]
    env = {"ULAK_DATABASE_URL": db.url}
    status = await asyncio.to_thread(ulak_cli, "status", "--store", str(store.id), env=env)
    assert status.returncode == 0, status.stderr
    assert "not sent, and why" in status.stdout
    why = status.stdout.split("not sent, and why")[1]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in why.splitlines()]
    assert [row for row in rows if row] == [[str(store.id), "skipped", DAY_CAP, "1"]]


async def test_a_marketplace_relay_gets_informational_messages_only(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("thanks", priority=80))
    await add_journey(db, clock, store, CONFIRMATION)
    relay = "pf+dym24k@trendyolmail.com"
    await post(
        client,
        store,
        consent_updated("granted", email=relay),
        order_placed("1", email=relay, channel="trendyol"),
    )
    await workers.drain()
    assert sorted((t, s, r) for t, s, _, r, _ in await messages(db)) == [
        ("order_confirmation", "sent", None),
        ("order_delivered", "skipped", "marketplace relay address"),
    ]
    assert [m["To"] for m in await dev_inbox(db)] == [relay]


async def test_a_merchant_without_a_grant_gets_commercial_messages_only_where_relaxed(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    relaxed = await make_store(db, clock, library=False, merchant_opt_out=True)
    strict = await make_store(db, clock, library=False, name="Strict")
    merchant = consent_updated("granted", channel="sms")  # says who she is: a merchant
    merchant["data"]["recipient_type"] = "merchant"
    for store in (relaxed, strict):
        await add_journey(db, clock, store, journey("thanks", priority=80))
        await post(client, store, merchant, order_placed("1"))
    await workers.drain()
    async with db.read() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
        by_store = {m.store_id: (m.status, m.last_error) for m in rows}
        kept = (await session.execute(select(Customer.consent))).scalars().all()
    assert by_store == {
        relaxed.id: ("sent", None),
        strict.id: ("skipped", "no consent to commercial email on record"),
    }
    assert [c["sms"]["recipient_type"] for c in kept] == ["merchant", "merchant"]
    # A revocation always stops, relaxed or not.
    revoked = consent_updated("revoked", event_id="revoked")
    revoked["data"]["recipient_type"] = "merchant"
    await post(client, relaxed, revoked, order_placed("2"))
    await workers.drain()
    async with db.read() as session:
        last = (await session.execute(select(Message).order_by(Message.id.desc()))).scalars()
        assert next(iter(last)).last_error == "consent to commercial email revoked (checkout)"


async def add_sms(
    db: Database, store: StoreKey, customer_id: int, legal_class: str, due: datetime
) -> int:
    """An SMS row as the SMS channel's send step would make it."""
    async with db.transaction() as session:
        message = Message(
            store_id=store.id,
            customer_id=customer_id,
            channel="sms",
            template="birthday",
            locale="tr",
            legal_class=legal_class,
            to_address="+905321234567",
            subject="",
            html="",
            text="İyi ki doğdun!",
            message_id_header=f"<sms.{legal_class}.{due.timestamp()}@test>",
            status="queued",
            send_after=due,
            attempts=0,
            created_at=due,
        )
        session.add(message)
        await session.flush()
        return message.id


async def claim(db: Database, now: datetime) -> list[int]:
    async with db.transaction() as session:
        claimed = await claim_due(
            session,
            now=now,
            limit=50,
            lease=timedelta(minutes=5),
            base_url="http://ulak.test",
            max_attempts=5,
            claimer=1,
            taken_back=false(),
        )
    return [c.id for c in claimed]


async def test_quiet_hours_hold_commercial_sms_to_the_next_opening_in_the_recipients_zone(
    db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock, library=False)
    cases = [
        # zone, due (UTC), the window's next opening (UTC)
        (
            "Asia/Tokyo",
            datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
        ),
        # Berlin's spring change: 09:00 CEST on 29 March is 07:00 UTC.
        (
            "Europe/Berlin",
            datetime(2026, 3, 28, 21, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        ),
        # No zone of her own: the store's (Istanbul, UTC+3).
        (None, datetime(2026, 11, 23, 18, 0, tzinfo=UTC), datetime(2026, 11, 24, 6, 0, tzinfo=UTC)),
    ]
    for number, (zone, due, opens) in enumerate(cases):
        async with db.transaction() as session:
            customer = Customer(
                store_id=store.id,
                external_id=f"c-{number}",
                phone=f"+90532123456{number}",
                timezone=zone,
                attributes={},
                consent={
                    "sms": {
                        "status": "granted",
                        "source": "checkout",
                        "at": "2026-01-01T00:00:00+00:00",
                    }
                },
                created_at=due,
                updated_at=due,
            )
            session.add(customer)
            await session.flush()
            customer_id = customer.id
        commercial = await add_sms(db, store, customer_id, "commercial", due)
        informational = await add_sms(db, store, customer_id, "informational", due)
        # The informational one goes at once; the commercial one waits, queued, with why.
        assert await claim(db, due) == [informational]
        async with db.read() as session:
            held = await session.get(Message, commercial)
            assert held is not None
            reason = f"quiet hours: sms only 09:00-20:00 ({zone or 'Europe/Istanbul'})"
            assert (held.status, held.send_after, held.held_until, held.held_reason) == (
                "queued",
                opens,
                opens,
                reason,
            )
        # Nothing before the opening; at it, it goes, and no longer says it is held.
        assert await claim(db, opens - timedelta(seconds=1)) == []
        assert await claim(db, opens) == [commercial]
        async with db.read() as session:
            sent = await session.get(Message, commercial)
            assert sent is not None
            assert (sent.status, sent.held_reason, sent.released_at) == ("sending", None, opens)


def test_stores_update_sets_the_sending_policy(database_url: str) -> None:
    env = {"ULAK_DATABASE_URL": database_url}
    created = ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env)
    assert created.returncode == 0, created.stderr
    sid = str(json.loads(created.stdout)["id"])
    changed = ulak_cli(
        "stores",
        "update",
        sid,
        "--merchant-opt-out",
        "--sending-hours-email",
        "10:00-21:30",
        "--cap-email-day",
        "2",
        "--cap-sms-week",
        "0",
        "--clear",
        "sending-hours-sms",
        "--json",
        env=env,
    )
    assert changed.returncode == 0, changed.stderr
    policy = {
        k: v
        for k, v in json.loads(changed.stdout).items()
        if k.startswith(("cap_", "sending_hours", "merchant"))
    }
    assert policy == {
        "merchant_opt_out": True,
        "sending_hours_email": "10:00-21:30",
        "sending_hours_sms": None,
        "cap_email_day": 2,
        "cap_email_week": 3,
        "cap_sms_day": 0,
        "cap_sms_week": 0,
    }
    bad = ulak_cli("stores", "update", sid, "--sending-hours-sms", "9-20", env=env)
    assert bad.returncode == 2
    assert "is not a window of local hours like 09:00-20:00" in bad.stderr


@pytest.mark.parametrize("capped", [True, False])
async def test_priority_decides_across_the_edge_of_a_claims_batch(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, capped: bool
) -> None:
    clock.set(START)  # 12:00 in Istanbul: outside the store's email hours
    caps = {} if capped else {"cap_email_day": 0, "cap_email_week": 0}
    store = await make_store(db, clock, library=False, sending_hours_email="10:00-11:00", **caps)
    await add_journey(db, clock, store, journey("cross-sell", priority=20))
    await add_journey(db, clock, store, journey("thanks", priority=80))
    await post(client, store, consent_updated("granted"), order_placed("1"))
    await workers.drain()
    opens = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 10:00 in Istanbul
    hours = "quiet hours: email only 10:00-11:00 (Europe/Istanbul)"
    assert [(s, r, u) for _, s, _, r, u in await messages(db)] == [("queued", hours, opens)] * 2
    # The low-priority one comes first in the queue, so a claim of one takes it alone;
    # the higher-priority one, due too, takes the day's slot from it.
    async with db.transaction() as session:
        low, high = (await session.execute(select(Message).order_by(Message.id))).scalars()
        low.send_after = opens - timedelta(minutes=1)
        low_id, high_id = low.id, high.id
    async with db.transaction() as session:
        claimed = await claim_due(
            session,
            now=opens,
            limit=1,
            lease=timedelta(minutes=5),
            base_url="http://ulak.test",
            max_attempts=5,
            claimer=1,
            taken_back=false(),
        )
    assert [c.id for c in claimed] == [high_id]
    async with db.read() as session:
        rows = {m.id: m for m in (await session.execute(select(Message))).scalars()}
    assert (rows[high_id].status, rows[high_id].released_at) == ("sending", opens)
    if capped:
        assert (rows[low_id].status, rows[low_id].held_reason, rows[low_id].held_until) == (
            "queued",
            DAY_CAP,
            # A day after the slot was taken is 10:00 in Istanbul again: inside the hours.
            opens + timedelta(days=1),
        )
        return
    # Without caps the claim still lets go no more than its batch held: the other is
    # next, due at once.
    assert (rows[low_id].status, rows[low_id].held_reason, rows[low_id].send_after) == (
        "queued",
        OUTRANKED,
        opens,
    )
    assert await claim(db, opens) == [low_id]

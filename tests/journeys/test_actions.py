"""Action and split steps, driven as the workers drive them."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from tests.journeys.test_engine import enrollments, post, sent
from tests.support import add_journey, dev_inbox, make_store, order_placed, text_of
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.journeys.definition import SplitOp, compile_program, load_journey, split_branch
from ulak.journeys.models import Enrollment, EnrollmentStep
from ulak.messages.models import Message
from ulak.worker import Workers

TAGS = """
key: big-spender
name: Big spender
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - action: tag
    tag: vip
  - action: tag
    tag: new
  - action: untag
    tag: new
  - action: untag
    tag: never-had-it
  - action: set_attribute
    attribute: segment
    value: gold
  - action: set_attribute
    attribute: trial
    value: null
  - if: "'vip' in customer.tags and customer.attributes.segment == 'gold'"
    then:
      - send: email
        template: order_delivered
"""


async def trace(db: Database) -> list[tuple[int, str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(EnrollmentStep.pc, EnrollmentStep.kind, EnrollmentStep.note).order_by(
                EnrollmentStep.id
            )
        )
        return [(pc, kind, note) for pc, kind, note in rows.all()]


async def test_tags_and_attributes_change_the_customer_and_what_later_steps_see(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, TAGS)
    placed = order_placed("1")
    placed["customer"]["attributes"] = {"trial": True, "source": "instagram"}
    await post(client, store, placed)
    await workers.drain()
    async with db.read() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (customer.tags, customer.attributes) == (
        ["vip"],
        {"source": "instagram", "segment": "gold"},
    )
    assert await sent(db) == [("order_delivered", "sent")]
    assert await trace(db) == [
        (0, "enter", "triggered by order.placed"),
        (0, "action", "tagged vip"),
        (1, "action", "tagged new"),
        (2, "action", "untagged new"),
        (3, "action", "untagged never-had-it (no change)"),
        (4, "action", "set attribute segment = 'gold'"),
        (5, "action", "set attribute trial = None"),
        (6, "if", "'vip' in customer.tags and customer.attributes.segment == 'gold' -> True"),
        (7, "send", "order_delivered -> message 1 (queued)"),
        (8, "complete", "journey completed"),
    ]


ALERT = """
key: big-order
name: Tell the shop of big orders
legal_class: informational
trigger:
  event: order.placed
  where: "order.total > 1000"
reentry: once_per_order
steps:
  - action: alert_shop
    reason: Büyük sipariş, elle kontrol edin
"""


async def test_alert_shop_mails_the_shop_each_time_naming_the_customer_and_reason(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(
        db, clock, library=False, contact_email="destek@dukkan.example", locale="tr"
    )
    await add_journey(db, clock, store, ALERT)
    await post(client, store, order_placed("1"), order_placed("2"), order_placed("3", total="5"))
    await workers.drain()
    # No once-a-day limit: each order the journey names is one alert.
    mails = sorted(await dev_inbox(db), key=lambda m: text_of(m))
    assert [(m["To"], m["Subject"]) for m in mails] == [
        ("destek@dukkan.example", "ulak: Büyük sipariş, elle kontrol edin (Ayşe Yılmaz)")
    ] * 2
    text = text_of(mails[0]).replace("\r\n", "\n")
    assert text.startswith(
        "big-order akışınız şunu bildiriyor:\n\n"
        "  Büyük sipariş, elle kontrol edin\n\n"
        "Müşteri: Ayşe Yılmaz\n"
        "E-posta: ayse@example.com\n"
        "Müşteri numaranız: c-1042\n"
        "Sipariş: 1\n\n"
        "Profili, siparişleri ve mesajları: GET /v1/customers/c-1042\n"
    )
    assert "Sipariş: 2\n" in text_of(mails[1]).replace("\r\n", "\n")
    first, second = await enrollments(db)
    assert (first.status, second.status) == ("completed", "completed")


SPLIT = """
key: ab-test
name: A/B with a holdout
legal_class: commercial
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - split:
      - weight: 45
        name: thanks
        steps:
          - send: email
            template: order_delivered
      - weight: 45
        steps:
          - send: email
            template: order_shipped
      - weight: 10
  - wait: 1d
"""


async def test_a_split_sends_each_customer_down_the_same_branch_every_time(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, SPLIT)
    people = [f"c-{i}" for i in range(12)]
    await post(
        client,
        store,
        *(order_placed(f"{p}-1", customer_id=p, email=f"{p}@example.com") for p in people),
    )
    await workers.drain()
    clock.travel(timedelta(days=2))
    # Their second orders go down the same branches.
    await post(
        client,
        store,
        *(order_placed(f"{p}-2", customer_id=p, email=f"{p}@example.com") for p in people),
    )
    await workers.drain()
    (op,) = [o for o in compile_program(load_journey(SPLIT)).ops if isinstance(o, SplitOp)]
    async with db.read() as session:
        rows = await session.execute(select(Customer.external_id, Customer.id))
        ids = {str(ref): id_ for ref, id_ in rows.all()}
    expected = {p: split_branch(op, journey="ab-test", customer_id=ids[p]) for p in people}
    assert sorted(set(expected.values())) == [0, 1, 2]  # these twelve fall in every branch
    notes = {0: "thanks: weight 45 of 100", 1: "branch 2: weight 45 of 100"}
    notes[2] = "branch 3 (holdout): weight 10 of 100"
    template = {0: "order_delivered", 1: "order_shipped"}
    async with db.read() as session:
        branches = await session.execute(
            select(Customer.external_id, EnrollmentStep.note)
            .join(Enrollment, Enrollment.id == EnrollmentStep.enrollment_id)
            .join(Customer, Customer.id == Enrollment.customer_id)
            .where(EnrollmentStep.kind == "split")
        )
        mailed = await session.execute(
            select(Customer.external_id, Message.template).join(
                Customer, Customer.id == Message.customer_id
            )
        )
        assert sorted(tuple(row) for row in branches.all()) == sorted(
            (p, notes[expected[p]]) for p in people for _ in (1, 2)
        )
        assert sorted(tuple(row) for row in mailed.all()) == sorted(
            (p, template[expected[p]]) for p in people for _ in (1, 2) if expected[p] in template
        )
    # Every branch, the holdout too, goes on after the split: the first orders' enrollments
    # have waited their day, the second orders' wait.
    statuses = sorted((e.order_id or "")[-1] + e.status for e in await enrollments(db))
    assert statuses == ["1completed"] * 12 + ["2active"] * 12

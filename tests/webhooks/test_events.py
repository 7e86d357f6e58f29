"""Each of ulak's own events reaches a subscribed endpoint signed, with its exact
payload; unsubscribed types and other stores' endpoints get nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.reviews.support import place_order, review_link, submit
from tests.support import StoreKey, make_store, order_placed
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import add_receiver, deliveries, post_events
from ulak.clock import FrozenClock
from ulak.coupons.service import issue_coupon
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.worker import Workers

AYSE = {"id": "c-1042", "email": "ayse@example.com", "phone": None}
WHEN = "2026-11-23T09:00:00Z"


def survey_answer(score: int, comment: str | None, kind: str = "csat") -> dict[str, Any]:
    return {
        "id": "answer-1",
        "type": "survey.answered",
        "customer": {"id": "c-1042", "email": "ayse@example.com"},
        "data": {"order_id": "1001", "kind": kind, "score": score, "comment": comment},
    }


async def test_each_event_type_is_delivered_signed_with_its_exact_payload(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    endpoint = await add_receiver(db, store, clock, receiver)
    await place_order(client, store, workers)
    path = await review_link(db, store, clock)
    answer = await submit(client, path, {"rating_0": "5", "title_0": "Çok güzel"})
    assert answer.status_code == 200, answer.text
    await post_events(client, store, survey_answer(2, "Kutu ezikti"))
    async with db.transaction() as session:
        customer = await find_customer(session, store_id=store.id, ref="c-1042")
        coupon = await issue_coupon(
            session,
            store_id=store.id,
            template_key="welcome",
            customer_id=customer.id,
            currency="TRY",
            now=clock.now(),
        )
    await post_events(client, store, order_placed("1002", discount_codes=[coupon.code.lower()]))
    await workers.drain()

    def sent(message_id: int) -> dict[str, Any]:
        return {
            "type": "message.sent",
            "timestamp": WHEN,
            "data": {
                "message_id": message_id,
                "channel": "email",
                "template": "order_confirmation",
                "to": "ayse@example.com",
                "customer": AYSE,
            },
        }

    # Message 2 is the shop's alert of the low score: a message to the shop is not reported.
    expected = {
        "msg_1": sent(1),
        "evt_2": {
            "type": "review.submitted",
            "timestamp": WHEN,
            "data": {
                "review_id": 1,
                "order_id": "1001",
                "product_id": "p-1",
                "rating": 5,
                "title": "Çok güzel",
                "body": "",
                "display_name": "",
                "photos": 0,
                "customer": AYSE,
            },
        },
        "evt_3": {
            "type": "survey.answered",
            "timestamp": WHEN,
            "data": {
                "order_id": "1001",
                "kind": "csat",
                "score": 2,
                "comment": "Kutu ezikti",
                "customer": AYSE,
            },
        },
        "evt_4_coupon_1": {
            "type": "coupon.redeemed",
            "timestamp": WHEN,
            "data": {
                "code": coupon.code,
                "order_id": "1002",
                "kind": "percent",
                "amount": "10.00",
                "currency": "TRY",
                "journey": None,
                "customer": AYSE,
            },
        },
        "msg_3": sent(3),
    }
    received = receiver.received()
    assert len(received) == len(expected)
    assert dict(received) == expected
    assert sorted(await deliveries(db)) == sorted(
        (store.id, endpoint.id, body["type"], webhook_id, "delivered", 1)
        for webhook_id, body in expected.items()
    )
    # Each request's signature verified (the receiver's fixture checks it has no problem).
    assert len(receiver.requests) == 5


async def test_unsubscribed_types_and_other_stores_get_nothing(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    other = await make_store(db, clock, name="Öteki Dükkan")
    others = await add_receiver(db, other, clock, receiver)
    mine = await add_receiver(db, store, clock, receiver, events=["survey.answered"])
    await place_order(client, store, workers)
    await post_events(client, store, survey_answer(9, None, "nps"))
    await workers.drain()
    assert await deliveries(db) == [(store.id, mine.id, "survey.answered", "evt_2", "delivered", 1)]
    assert receiver.received() == [
        (
            "evt_2",
            {
                "type": "survey.answered",
                "timestamp": WHEN,
                "data": {
                    "order_id": "1001",
                    "kind": "nps",
                    "score": 9,
                    "comment": None,
                    "customer": AYSE,
                },
            },
        )
    ]
    assert others.store_id == other.id

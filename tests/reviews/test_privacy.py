"""KVKK/GDPR: a customer's reviews are in their export, and an erasure takes them, their
photos and the text their events carried, off the store's pages."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.reviews import images
from tests.reviews.support import place_order, review_link, submit
from tests.support import StoreKey
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events.models import Event
from ulak.reviews.models import Review, ReviewPhoto
from ulak.worker import Workers

SECRET_NAME = "Gülizar Şenyurt"
SECRET_TEXT = "Kadıköy'deki evimde çok güzel duruyor"


async def test_reviews_are_exported_and_erased_with_their_photos(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await place_order(client, store, workers)
    path = await review_link(db, store, clock)
    await submit(
        client,
        path,
        {"rating_0": "5", "body_0": SECRET_TEXT, "display_name": SECRET_NAME, "quote_ok": "1"},
        [("photos_0", ("ev.jpg", images.jpeg_with_gps(), "image/jpeg"))],
    )
    await workers.drain()

    export = await client.get("/v1/customers/c-1042/export", headers=store.auth)
    assert export.status_code == 200
    (review,) = export.json()["reviews"]
    assert review == {
        "order_id": "1001",
        "product_id": "p-1",
        "rating": 5,
        "title": "",
        "body": SECRET_TEXT,
        "display_name": SECRET_NAME,
        "quote_ok": True,
        "status": "published",
        "submitted_at": review["submitted_at"],
        "photos": 1,
        "reply": None,
    }

    erased = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert erased.status_code == 202
    await workers.drain()

    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Review)) == 0
        assert await session.scalar(select(func.count()).select_from(ReviewPhoto)) == 0
        events = list(
            (await session.execute(select(Event).where(Event.type == "review.submitted"))).scalars()
        )
    assert len(events) == 1
    assert SECRET_TEXT not in str(events[0].data)
    assert SECRET_NAME not in str(events[0].data)
    public = (await client.get(f"/v1/stores/{store.id}/reviews")).json()
    assert (public["count"], public["reviews"]) == (0, [])
    widget = (await client.get(f"/w/{store.id}/reviews")).text
    assert SECRET_TEXT not in widget

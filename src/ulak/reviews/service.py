"""Reviews: storing what a verified buyer wrote, moderation, what is published, and the
timer that asks for a review after delivery.

Every change is made by the worker (the event applier calls `apply`) or by an admin in the
CLI: the API process only reads these tables.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import find_product
from ulak.customers.models import Customer
from ulak.db import Database, sqlite_utc
from ulak.errors import Invalid, NotFound
from ulak.events.models import Event
from ulak.orders.service import order_views, orders_of
from ulak.reviews.models import Review, ReviewPhoto, ReviewSettings
from ulak.reviews.schemas import ReviewModeratedData, ReviewSubmittedData
from ulak.stores.models import Store
from ulak.timers import service as timers

REVIEW_DUE = "review.due"
# Events after which an order is no longer asked about: its review request timer goes.
_ENDS_REQUEST = frozenset({"order.refunded", "order.cancelled", "return.requested"})
DEFAULT_DELAY_DAYS = 7
# The longest wait a store may set before asking (a season of use).
MAX_DELAY_DAYS = 180


# Settings.


@dataclass(frozen=True)
class Settings:
    moderate: bool
    delay_days: int
    tag_delays: Mapping[str, int]


async def settings_of(session: AsyncSession, *, store_id: int) -> Settings:
    row = await session.get(ReviewSettings, store_id)
    if row is None:
        return Settings(moderate=False, delay_days=DEFAULT_DELAY_DAYS, tag_delays={})
    return Settings(row.moderate, row.delay_days, dict(row.tag_delays))


async def set_settings(
    session: AsyncSession,
    *,
    store_id: int,
    now: datetime,
    moderate: bool | None = None,
    delay_days: int | None = None,
    tag_delays: Mapping[str, int | None] | None = None,
) -> Settings:
    """Change what is given; a tag's delay of None removes the tag's override."""
    for days in [delay_days, *(tag_delays or {}).values()]:
        if days is not None and not 0 <= days <= MAX_DELAY_DAYS:
            raise Invalid(f"a delay is between 0 and {MAX_DELAY_DAYS} days")
    row = await session.get(ReviewSettings, store_id)
    if row is None:
        row = ReviewSettings(
            store_id=store_id, moderate=False, delay_days=DEFAULT_DELAY_DAYS, tag_delays={}
        )
        session.add(row)
    if moderate is not None:
        row.moderate = moderate
    if delay_days is not None:
        row.delay_days = delay_days
    if tag_delays:
        merged = dict(row.tag_delays or {})
        for tag, days in tag_delays.items():
            if days is None:
                merged.pop(tag.strip(), None)
            else:
                merged[tag.strip()] = days
        row.tag_delays = merged
    row.updated_at = now
    await session.flush()
    return Settings(row.moderate, row.delay_days, dict(row.tag_delays))


# Names.


def short_name(first: str | None, last: str | None) -> str:
    """ "Ayşe Y." of Ayşe Yılmaz: the name a review shows unless its writer changes it."""
    first = (first or "").strip()
    last = (last or "").strip()
    if first and last:
        return f"{first} {last[0].upper()}."
    return first or (f"{last[0].upper()}." if last else "")


def shortened(display_name: str) -> str:
    """A name as quoted in emails: its first word and the initial of its last."""
    words = display_name.split()
    if len(words) < 2:
        return display_name.strip()
    last = words[-1]
    return f"{words[0]} {last[0].upper()}." if not last.endswith(".") else f"{words[0]} {last}"


# What the review page needs.


async def reviewable_order(
    session: AsyncSession, *, store_id: int, customer_id: int, order_id: str
) -> dict[str, Any] | None:
    """The customer's order (its view, with items), None when it is not theirs."""
    for order in await orders_of(session, customer_id=customer_id):
        if order["order_id"] == order_id:
            return order
    return None


def reviewable_products(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The order's products, once each (two sizes of a shirt are one review)."""
    seen: dict[str, dict[str, Any]] = {}
    for item in order.get("items", []):
        product_id = item.get("product_id")
        if product_id and product_id not in seen:
            seen[product_id] = {
                "product_id": product_id,
                "title": item.get("title") or product_id,
                "image_url": item.get("image_url"),
            }
    return list(seen.values())


async def reviews_of_order(
    session: AsyncSession, *, store_id: int, order_id: str
) -> dict[str, Review]:
    rows = await session.execute(
        select(Review).where(Review.store_id == store_id, Review.order_id == order_id)
    )
    return {r.product_id: r for r in rows.scalars()}


# Applying events (the worker).


async def apply(
    session: AsyncSession,
    *,
    store: Store,
    event: Event,
    data: Any,
    customer: Customer | None,
    now: datetime,
) -> None:
    """What an event means for reviews: a submission or moderation to store, a delivered
    order to ask about later, a refunded, cancelled or returned one to ask about no more."""
    if isinstance(data, ReviewModeratedData):
        try:
            await moderate(
                session,
                store_id=store.id,
                review_id=data.review_id,
                action=data.action,
                reason=data.reason,
                reply=data.reply,
                now=now,
            )
        except NotFound as error:
            event.error = f"not acted on: {error}"
    elif isinstance(data, ReviewSubmittedData) and customer is not None:
        await submit(session, store=store, customer=customer, event=event, data=data, now=now)
    elif event.type == "order.delivered" and customer is not None:
        order_id = event.data.get("order_id")
        if isinstance(order_id, str):
            await order_delivered(
                session,
                store=store,
                customer_id=customer.id,
                order_id=order_id,
                at=event.occurred_at,
            )
    elif event.type in _ENDS_REQUEST and isinstance(event.data.get("order_id"), str):
        await timers.delete_timer(
            session, store_id=store.id, kind=REVIEW_DUE, subject=event.data["order_id"]
        )


def wants(event_type: str) -> bool:
    """Whether `apply` has anything to do with an event of this type."""
    return event_type in _ENDS_REQUEST or event_type in (
        "order.delivered",
        "review.submitted",
        "review.moderated",
    )


async def submit(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    event: Event,
    data: ReviewSubmittedData,
    now: datetime,
) -> Review | None:
    """Store a review (replacing the customer's earlier one of the same order and product)
    and its photos, then take the photos' bytes out of the event, keeping their tokens."""
    order = await reviewable_order(
        session, store_id=store.id, customer_id=customer.id, order_id=data.order_id
    )
    products = {p["product_id"]: p for p in reviewable_products(order or {})}
    if data.product_id not in products:
        # Only a buyer of the product, through their order's link, reviews it.
        event.error = "not acted on: the product is not in the customer's order"
        event.data = {**event.data, "photos": []}
        return None
    settings = await settings_of(session, store_id=store.id)
    review = (
        await session.execute(
            select(Review).where(
                Review.store_id == store.id,
                Review.order_id == data.order_id,
                Review.product_id == data.product_id,
            )
        )
    ).scalar_one_or_none()
    if review is None:
        review = Review(store_id=store.id, order_id=data.order_id, product_id=data.product_id)
        session.add(review)
    review.customer_id = customer.id
    review.product_title = products[data.product_id]["title"]
    review.rating = data.rating
    review.title = data.title.strip()
    review.body = data.body.strip()
    review.display_name = data.display_name.strip()
    review.quote_ok = data.quote_ok
    review.status = "pending" if settings.moderate else "published"
    review.reason = None
    review.submitted_at = event.occurred_at
    review.published_at = None if settings.moderate else now
    review.event_id = event.id
    await session.flush()
    await session.execute(delete(ReviewPhoto).where(ReviewPhoto.review_id == review.id))
    kept = []
    for position, photo in enumerate(data.photos):
        if photo.data is None:
            continue
        token = secrets.token_urlsafe(24)
        session.add(
            ReviewPhoto(
                review_id=review.id,
                store_id=store.id,
                token=token,
                position=position,
                content_type=photo.content_type,
                width=photo.width,
                height=photo.height,
                data=base64.b64decode(photo.data, validate=True),
            )
        )
        kept.append(photo.model_copy(update={"data": None, "token": token}))
    # The event is kept for the store's `keep_events_days`: not the photos' megabytes.
    event.data = {
        **event.data,
        "review_id": review.id,
        "photos": [p.model_dump(exclude_none=True) for p in kept],
    }
    await timers.delete_timer(session, store_id=store.id, kind=REVIEW_DUE, subject=data.order_id)
    await session.flush()
    return review


async def order_delivered(
    session: AsyncSession, *, store: Store, customer_id: int, order_id: str, at: datetime
) -> datetime | None:
    """Set the order's review request timer: delivery + the longest delay among its
    products' tags (the store's default for untagged ones). Returns when it is due."""
    views = await order_views(session, {(store.id, order_id)})
    if (store.id, order_id) not in views:
        return None
    order, _ = views[(store.id, order_id)]
    products = reviewable_products(order)
    if not products or await reviews_of_order(session, store_id=store.id, order_id=order_id):
        # Nothing to review, or reviewed already (a later delivery event asks nothing).
        return None
    settings = await settings_of(session, store_id=store.id)
    days = settings.delay_days
    if settings.tag_delays:
        longest = None
        for product in products:
            try:
                found = await find_product(
                    session, store_id=store.id, product_id=product["product_id"], variant_id=None
                )
            except NotFound:
                continue
            for tag in found.tags or []:
                if tag in settings.tag_delays:
                    longest = max(longest or 0, settings.tag_delays[tag])
        if longest is not None:
            days = longest
    due = at + timedelta(days=days)
    await timers.set_timer(
        session,
        store_id=store.id,
        kind=REVIEW_DUE,
        subject=order_id,
        customer_id=customer_id,
        due_at=due,
        data={"order_id": order_id, "delivered_at": at.isoformat(), "delay_days": days},
    )
    return due


# Moderation (the CLI, and the worker for the API's review.moderated).


async def moderate(
    session: AsyncSession,
    *,
    store_id: int,
    review_id: int,
    action: str,
    now: datetime,
    reason: str | None = None,
    reply: str | None = None,
) -> Review:
    review = await get_review(session, store_id=store_id, review_id=review_id)
    if action == "approve":
        review.status = "published"
        review.reason = None
        review.published_at = review.published_at or now
    elif action == "reject":
        review.status = "rejected"
        review.reason = (reason or "").strip() or None
        review.published_at = None
    elif action == "reply":
        text = (reply or "").strip()
        review.reply = text or None
        review.replied_at = now if text else None
    else:
        raise Invalid(f"unknown action {action!r}: approve, reject or reply")
    await session.flush()
    return review


async def get_review(session: AsyncSession, *, store_id: int, review_id: int) -> Review:
    review = await session.get(Review, review_id) if 0 < review_id < 2**63 else None
    if review is None or review.store_id != store_id:
        raise NotFound(f"review {review_id} is not one of this store's")
    return review


async def list_reviews(
    session: AsyncSession, *, store_id: int, status: str | None = None, limit: int = 100
) -> list[Review]:
    query = select(Review).where(Review.store_id == store_id)
    if status is not None:
        query = query.where(Review.status == status)
    query = query.order_by(Review.submitted_at.desc(), Review.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def photo_tokens(session: AsyncSession, review_ids: Sequence[int]) -> dict[int, list[str]]:
    if not review_ids:
        return {}
    rows = await session.execute(
        select(ReviewPhoto.review_id, ReviewPhoto.token)
        .where(ReviewPhoto.review_id.in_(review_ids))
        .order_by(ReviewPhoto.review_id, ReviewPhoto.position)
    )
    out: dict[int, list[str]] = {}
    for review_id, token in rows.all():
        out.setdefault(review_id, []).append(token)
    return out


# What is published.


@dataclass(frozen=True)
class PublishedReview:
    """A published review as the public routes show it (plain values: the widget is the
    busiest public read, and ORM objects were a good part of its cost)."""

    id: int
    product_id: str
    product_title: str | None
    rating: int
    title: str
    body: str
    display_name: str
    published_at: datetime | None
    reply: str | None
    replied_at: datetime | None


@dataclass(frozen=True)
class Published:
    reviews: list[PublishedReview]
    photos: dict[int, list[str]]
    count: int
    average: float | None
    product_title: str | None


_SHOWN = (
    Review.id,
    Review.product_id,
    Review.product_title,
    Review.rating,
    Review.title,
    Review.body,
    Review.display_name,
    Review.published_at,
    Review.reply,
    Review.replied_at,
)


async def published(
    session: AsyncSession,
    *,
    store_id: int,
    product_id: str | None,
    page: int = 1,
    per_page: int = 10,
) -> Published:
    """A page of a product's (or the whole store's) published reviews, newest first, with
    the count and average of all of them. No gating: every published rating counts."""
    where = [Review.store_id == store_id, Review.status == "published"]
    if product_id is not None:
        where.append(Review.product_id == product_id)
    count, average = (
        await session.execute(select(func.count(), func.avg(Review.rating)).where(*where))
    ).one()
    rows = await session.execute(
        select(*_SHOWN)
        .where(*where)
        .order_by(Review.published_at.desc(), Review.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    reviews = [
        PublishedReview(
            id=r.id,
            product_id=r.product_id,
            product_title=r.product_title,
            rating=r.rating,
            title=r.title,
            body=r.body,
            display_name=r.display_name,
            published_at=r.published_at,
            reply=r.reply,
            replied_at=r.replied_at,
        )
        for r in rows.all()
    ]
    title = None
    if product_id is not None:
        title = await session.scalar(
            select(Review.product_title).where(*where).order_by(Review.id.desc()).limit(1)
        )
    return Published(
        reviews=reviews,
        photos=await photo_tokens(session, [r.id for r in reviews]),
        count=int(count),
        average=round(float(average), 2) if average is not None else None,
        product_title=title,
    )


# `published` as plain statements on SQLite's read-only connection (`Database.lookup`):
# microseconds a statement where SQLAlchemy's async path costs about a quarter of a
# millisecond, most of a widget's render (as the tracking page measured). The columns in
# `_SHOWN`'s order; SQLite keeps times as naive UTC text. Like `tracking_sqlite`, its
# statements are not one snapshot: a review published meanwhile may show in one and not
# the other, for the 5 s the widget keeps an answer.
# Each statement written out, for a store's reviews (False) and for one product's (True).
_SQLITE_COUNT = {
    False: "SELECT count(*), avg(rating) FROM reviews WHERE store_id = ? AND status = 'published'",
    True: "SELECT count(*), avg(rating) FROM reviews"
    " WHERE store_id = ? AND status = 'published' AND product_id = ?",
}
_SQLITE_PAGE = {
    False: "SELECT id, product_id, product_title, rating, title, body, display_name,"
    " published_at, reply, replied_at FROM reviews"
    " WHERE store_id = ? AND status = 'published'"
    " ORDER BY published_at DESC, id DESC LIMIT ? OFFSET ?",
    True: "SELECT id, product_id, product_title, rating, title, body, display_name,"
    " published_at, reply, replied_at FROM reviews"
    " WHERE store_id = ? AND status = 'published' AND product_id = ?"
    " ORDER BY published_at DESC, id DESC LIMIT ? OFFSET ?",
}
_SQLITE_TITLE = (
    "SELECT product_title FROM reviews"
    " WHERE store_id = ? AND status = 'published' AND product_id = ?"
    " ORDER BY id DESC LIMIT 1"
)
_SQLITE_PHOTOS = (
    "SELECT review_id, token FROM review_photos WHERE review_id IN"
    " (SELECT value FROM json_each(?)) ORDER BY review_id, position"
)


def published_sqlite(
    database: Database,
    *,
    store_id: int,
    product_id: str | None,
    page: int = 1,
    per_page: int = 10,
) -> Published:
    one = product_id is not None
    args: tuple[Any, ...] = (store_id, product_id) if one else (store_id,)
    ((count, average),) = database.lookup(_SQLITE_COUNT[one], args)
    rows = database.lookup(_SQLITE_PAGE[one], (*args, per_page, (page - 1) * per_page))
    reviews = [_shown(*row) for row in rows]
    title = None
    if one:
        found = database.lookup(_SQLITE_TITLE, args)
        title = found[0][0] if found else None
    photos: dict[int, list[str]] = {}
    if reviews:
        ids = json.dumps([r.id for r in reviews])
        for review_id, token in database.lookup(_SQLITE_PHOTOS, (ids,)):
            photos.setdefault(review_id, []).append(token)
    return Published(
        reviews=reviews,
        photos=photos,
        count=int(count),
        average=round(float(average), 2) if average is not None else None,
        product_title=title,
    )


def _shown(
    id_: int,
    product_id: str,
    product_title: str | None,
    rating: int,
    title: str,
    body: str,
    display_name: str,
    published_at: str | None,
    reply: str | None,
    replied_at: str | None,
) -> PublishedReview:
    return PublishedReview(
        id=id_,
        product_id=product_id,
        product_title=product_title,
        rating=rating,
        title=title,
        body=body,
        display_name=display_name,
        published_at=sqlite_utc(published_at),
        reply=reply,
        replied_at=sqlite_utc(replied_at),
    )


async def find_photo(session: AsyncSession, *, token: str) -> ReviewPhoto | None:
    """A published review's photo by its token (a pending or rejected review's is not
    shown)."""
    if not 16 <= len(token) <= 32:
        return None
    row = await session.execute(
        select(ReviewPhoto)
        .join(Review, Review.id == ReviewPhoto.review_id)
        .where(ReviewPhoto.token == token, Review.status == "published")
    )
    return row.scalar_one_or_none()


async def quotable_reviews(
    session: AsyncSession, *, store_id: int, limit: int = 3
) -> list[dict[str, Any]]:
    """Recent published 4-5 star reviews whose writers allowed quoting, for emails."""
    rows = await session.execute(
        select(Review)
        .where(
            Review.store_id == store_id,
            Review.status == "published",
            Review.quote_ok.is_(True),
            Review.rating >= 4,
        )
        .order_by(Review.published_at.desc(), Review.id.desc())
        .limit(limit)
    )
    return [
        {
            "rating": r.rating,
            "title": r.title,
            "body": r.body if len(r.body) <= 300 else r.body[:297].rstrip() + "…",
            "name": shortened(r.display_name),
            "product_title": r.product_title,
        }
        for r in rows.scalars()
    ]


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    """On a customer merge: the absorbed profile's reviews become the survivor's."""
    await session.execute(
        update(Review).where(Review.customer_id == from_customer).values(customer_id=to_customer)
    )

"""Reviews over HTTP: the public list of a store's published reviews (JSON with schema.org
JSON-LD, and an embeddable widget), their photos, and moderation with the store's key.

Moderation changes state through a `review.moderated` event (the worker applies it): the
API process writes no table but its inbox."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ulak.db import Database
from ulak.errors import Conflict, NotFound
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted, EventIn, Id
from ulak.messages.rendering import resolve_locale
from ulak.reviews.models import Review
from ulak.reviews.service import (
    Published,
    PublishedReview,
    find_photo,
    get_review,
    list_reviews,
    photo_tokens,
    published,
    published_sqlite,
)
from ulak.stores.models import Store
from ulak.web.deps import AppDatabase, CurrentStore
from ulak.web.links import StoreCache
from ulak.web.pages import render_page, store_page

router = APIRouter(tags=["reviews"])

PER_PAGE = 10
# Public answers may be cached this long by browsers and CDNs.
PUBLIC_CACHE = "public, max-age=60"
PHOTO_CACHE = "public, max-age=86400"
# The widget is framed by any shop's page, and runs no script at all.
WIDGET_CSP = (
    "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors *"
)


class ReviewOut(BaseModel):
    id: int
    product_id: str
    product_title: str | None
    rating: int
    title: str
    body: str
    name: str
    photos: list[str] = Field(description="URLs of the review's photos")
    published_at: datetime | None
    reply: str | None
    replied_at: datetime | None


class ReviewList(BaseModel):
    store_id: int
    product_id: str | None
    count: int = Field(description="Published reviews in all (of the product, if given)")
    average: float | None = Field(description="Their average rating, 1-5; null when none")
    page: int
    pages: int
    reviews: list[ReviewOut]
    json_ld: dict[str, Any] = Field(description="schema.org Product/AggregateRating/Review")


class PendingReview(ReviewOut):
    order_id: str
    status: str
    submitted_at: datetime
    quote_ok: bool
    reason: str | None


def _photo_url(request: Request, token: str) -> str:
    # As `url_for("review_photo")` would write it, without its search through every route
    # (a widget page names ten).
    return f"{request.base_url}v1/reviews/photos/{token}"


# What the public routes answered lately, by what was asked (and the host it was asked of,
# whose name the photo URLs carry). A shop's product page asks the same few questions for
# every visitor: a page is rendered once per CACHE_SECONDS, and browsers and CDNs may keep
# it longer still (PUBLIC_CACHE). A new or moderated review shows within that time.
CACHE_SECONDS = 5.0
_answers: dict[tuple[object, ...], tuple[float, bytes]] = {}


def _cached(key: tuple[object, ...]) -> bytes | None:
    if CACHE_SECONDS <= 0:
        return None
    found = _answers.get(key)
    if found is None or time.monotonic() - found[0] > CACHE_SECONDS:
        return None
    return found[1]


def _keep(key: tuple[object, ...], body: bytes) -> None:
    if len(_answers) > 10_000:
        _answers.clear()
    _answers[key] = (time.monotonic(), body)


def _out(request: Request, review: Review | PublishedReview, tokens: list[str]) -> dict[str, Any]:
    return {
        "id": review.id,
        "product_id": review.product_id,
        "product_title": review.product_title,
        "rating": review.rating,
        "title": review.title,
        "body": review.body,
        "name": review.display_name,
        "photos": [_photo_url(request, t) for t in tokens],
        "published_at": review.published_at,
        "reply": review.reply,
        "replied_at": review.replied_at,
    }


def json_ld(store: Store, found: Published, product_id: str | None) -> dict[str, Any]:
    """schema.org markup of the page's reviews: a Product with its AggregateRating, or the
    store (an Organization) when no product is named."""
    thing: dict[str, Any] = {"@context": "https://schema.org"}
    # A writer who cleared the name shown is a verified buyer, in the store's language.
    anonymous = WIDGET_TEXTS[resolve_locale(store.locale, None)]["verified"]
    if product_id is not None:
        thing |= {"@type": "Product", "name": found.product_title or product_id}
        thing["productID"] = product_id
    else:
        thing |= {"@type": "Organization", "name": store.name}
    if found.count:
        thing["aggregateRating"] = {
            "@type": "AggregateRating",
            "ratingValue": found.average,
            "reviewCount": found.count,
            "bestRating": 5,
            "worstRating": 1,
        }
        thing["review"] = [
            {
                "@type": "Review",
                "author": {"@type": "Person", "name": r.display_name or anonymous},
                "datePublished": r.published_at.date().isoformat() if r.published_at else None,
                "name": r.title or None,
                "reviewBody": r.body or None,
                "reviewRating": {
                    "@type": "Rating",
                    "ratingValue": r.rating,
                    "bestRating": 5,
                    "worstRating": 1,
                },
            }
            for r in found.reviews
        ]
        for review in thing["review"]:
            for key in [k for k, v in review.items() if v is None]:
                del review[key]
    return thing


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `</script>`, `<!--` or `&` can close it or
    change its parsing (each `<`, `>`, `&` written as a \\u escape, which JSON reads back)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


ProductQuery = Annotated[Id | None, Query(description="A product's id; none: the whole store")]
PageQuery = Annotated[int, Query(ge=1, le=10_000)]


@router.get(
    "/v1/stores/{store_id}/reviews",
    response_model=ReviewList,
    summary="A store's published reviews (public: no key), with their average and count",
)
async def public_reviews(
    request: Request,
    store_id: int,
    database: AppDatabase,
    product_id: ProductQuery = None,
    page: PageQuery = 1,
) -> Response:
    """Newest first, 10 a page. Every published review counts: no filtering by rating."""
    headers = {"Cache-Control": PUBLIC_CACHE, "Access-Control-Allow-Origin": "*"}
    key = ("json", store_id, product_id, page, str(request.base_url))
    body = _cached(key)
    if body is None:
        store, found = await _published(database, store_id, product_id, page)
        answer = ReviewList(
            store_id=store.id,
            product_id=product_id,
            count=found.count,
            average=found.average,
            page=page,
            pages=max(1, math.ceil(found.count / PER_PAGE)),
            reviews=[
                ReviewOut(**_out(request, r, found.photos.get(r.id, []))) for r in found.reviews
            ],
            json_ld=json_ld(store, found, product_id),
        )
        body = answer.model_dump_json().encode()
        _keep(key, body)
    return Response(body, media_type="application/json", headers=headers)


# The stores the public routes answer for, kept 5 s (as the tracking page keeps them).
_stores = StoreCache()


async def _published(
    database: Database, store_id: int, product_id: str | None, page: int
) -> tuple[Store, Published]:
    """The store and a page of its published reviews (on SQLite, read on the plain
    read-only connection: `published_sqlite`)."""
    store = _stores.get(store_id)
    if store is None:
        async with database.read() as session:
            store = await session.get(Store, store_id) if 0 < store_id < 2**63 else None
            if store is None:
                raise NotFound(f"store {store_id} does not exist")
            session.expunge(store)
        _stores.put(store)
    if database.is_sqlite:
        found = published_sqlite(
            database, store_id=store.id, product_id=product_id, page=page, per_page=PER_PAGE
        )
    else:
        async with database.read() as session:
            found = await published(
                session, store_id=store.id, product_id=product_id, page=page, per_page=PER_PAGE
            )
    return store, found


@router.get("/v1/reviews/photos/{token}", name="review_photo", include_in_schema=False)
async def review_photo(token: str, database: AppDatabase) -> Response:
    async with database.read() as session:
        photo = await find_photo(session, token=token)
    if photo is None:
        raise NotFound("no such photo")
    return Response(
        photo.data,
        media_type=photo.content_type,
        headers={
            "Cache-Control": PHOTO_CACHE,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


WIDGET_TEXTS = {
    "tr": {
        "title": "Müşteri yorumları",
        "count": "{n} değerlendirme",
        "none": "Henüz değerlendirme yok.",
        "verified": "Doğrulanmış alıcı",
        "reply": "Mağazanın yanıtı",
        "stars": "5 üzerinden {n} yıldız",
        "average": "Ortalama 5 üzerinden {n}",
        "photo": "Müşteri fotoğrafı",
        "more": "Daha eski yorumlar",
    },
    "en": {
        "title": "Customer reviews",
        "count": "{n} reviews",
        "none": "No reviews yet.",
        "verified": "Verified buyer",
        "reply": "The shop's reply",
        "stars": "{n} out of 5 stars",
        "average": "Average {n} out of 5",
        "photo": "Customer photo",
        "more": "Older reviews",
    },
}


@router.get("/w/{store_id}/reviews", response_class=HTMLResponse, include_in_schema=False)
async def review_widget(
    request: Request,
    store_id: int,
    database: AppDatabase,
    product_id: ProductQuery = None,
    page: PageQuery = 1,
    lang: Annotated[Literal["tr", "en"] | None, Query()] = None,
) -> HTMLResponse:
    """The reviews as a small page for an iframe on the shop's product page."""
    headers = {
        "Content-Security-Policy": WIDGET_CSP,
        "Cache-Control": PUBLIC_CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    key = ("widget", store_id, product_id, page, lang, str(request.base_url))
    body = _cached(key)
    if body is None:
        store, found = await _published(database, store_id, product_id, page)
        locale = lang or resolve_locale(store.locale, None)
        context = store_page(store, locale) | {
            "w": WIDGET_TEXTS[locale],
            "found": found,
            "reviews": [_out(request, r, found.photos.get(r.id, [])) for r in found.reviews],
            "json_ld": script_json(json_ld(store, found, product_id)),
            "more_url": str(request.url.include_query_params(page=page + 1))
            if page * PER_PAGE < found.count
            else None,
            "help": None,
        }
        body = bytes(render_page(request, "reviews/widget.html", context).body)
        _keep(key, body)
    return HTMLResponse(body, headers=headers)


WIDGET_SCRIPT = """(function () {
  var s = document.currentScript;
  if (!s) return;
  var base = new URL(s.src).origin;
  var store = encodeURIComponent(s.getAttribute("data-store") || "");
  var product = s.getAttribute("data-product");
  var lang = s.getAttribute("data-lang");
  var src = base + "/w/" + store + "/reviews";
  var q = [];
  if (product) q.push("product_id=" + encodeURIComponent(product));
  if (lang) q.push("lang=" + encodeURIComponent(lang));
  if (q.length) src += "?" + q.join("&");
  var f = document.createElement("iframe");
  f.src = src;
  f.title = s.getAttribute("data-title") || "Reviews";
  f.loading = "lazy";
  f.style.cssText = "width:100%;border:0;min-height:480px";
  f.setAttribute("sandbox", "allow-popups");
  s.parentNode.insertBefore(f, s.nextSibling);
})();
"""


@router.get("/w/reviews.js", include_in_schema=False)
async def review_widget_script() -> Response:
    """`<script src=".../w/reviews.js" data-store="1" data-product="P1"></script>` puts
    the widget's iframe after itself. It reads only its own attributes."""
    return Response(
        WIDGET_SCRIPT,
        media_type="text/javascript",
        headers={
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Access-Control-Allow-Origin": "*",
        },
    )


# Moderation, with the store's key.


class ModerationAccepted(BaseModel):
    event: str = Field(description="The review.moderated event carrying the change")
    duplicate: bool


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply: Annotated[str, Field(max_length=5000)] = Field(
        description="The shop's public reply; empty removes it"
    )


@router.get(
    "/v1/reviews/pending",
    response_model=list[PendingReview],
    summary="Reviews waiting for moderation, newest first",
)
async def pending_reviews(
    request: Request, store: CurrentStore, database: AppDatabase
) -> list[dict[str, Any]]:
    async with database.read() as session:
        rows = await list_reviews(session, store_id=store.id, status="pending", limit=500)
        tokens = await photo_tokens(session, [r.id for r in rows])
    return [
        _out(request, r, tokens.get(r.id, []))
        | {
            "order_id": r.order_id,
            "status": r.status,
            "submitted_at": r.submitted_at,
            "quote_ok": r.quote_ok,
            "reason": r.reason,
        }
        for r in rows
    ]


async def _moderate(
    request: Request,
    store: Store,
    database: Database,
    review_id: int,
    data: dict[str, Any],
) -> ModerationAccepted:
    async with database.read() as session:
        review = await get_review(session, store_id=store.id, review_id=review_id)
        customer_id = review.customer_id
    inbox: Inbox = request.app.state.inbox
    event = EventIn(type="review.moderated", data={"review_id": review_id, **data})
    (answer,) = await inbox.accept(store.id, [(0, event)], source="api", customer_id=customer_id)
    if not isinstance(answer, Accepted):
        raise Conflict("the change could not be accepted")
    return ModerationAccepted(event=answer.key, duplicate=answer.duplicate)


ReviewId = Annotated[int, Path(ge=1, lt=2**63)]


@router.post(
    "/v1/reviews/{review_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ModerationAccepted,
    summary="Publish a review",
)
async def approve_review(
    request: Request, review_id: ReviewId, store: CurrentStore, database: AppDatabase
) -> ModerationAccepted:
    return await _moderate(request, store, database, review_id, {"action": "approve"})


@router.post(
    "/v1/reviews/{review_id}/reject",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ModerationAccepted,
    summary="Reject a review, with the reason (kept, not shown)",
)
async def reject_review(
    request: Request,
    review_id: ReviewId,
    body: RejectBody,
    store: CurrentStore,
    database: AppDatabase,
) -> ModerationAccepted:
    return await _moderate(
        request, store, database, review_id, {"action": "reject", "reason": body.reason}
    )


@router.post(
    "/v1/reviews/{review_id}/reply",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ModerationAccepted,
    summary="Reply to a review in public (shown under it)",
)
async def reply_review(
    request: Request,
    review_id: ReviewId,
    body: ReplyBody,
    store: CurrentStore,
    database: AppDatabase,
) -> ModerationAccepted:
    return await _moderate(
        request, store, database, review_id, {"action": "reply", "reply": body.reply}
    )

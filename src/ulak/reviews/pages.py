"""The review form: `GET/POST /p/{store_id}/review/{token}`, one block per product of the
order the signed link names (the link proves the purchase).

The POST reads its body with a limit of its own (the photos), counted while it arrives,
re-makes every photo from its pixels (`photos.process`) and sends one `review.submitted`
per reviewed product through the inbox; the worker stores them (`service.submit`)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ulak.config import Settings
from ulak.customers.models import Customer
from ulak.customers.service import surviving_customer
from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.rendering import resolve_locale
from ulak.reviews import photos as photo_files
from ulak.reviews.service import (
    photo_tokens,
    reviewable_order,
    reviewable_products,
    reviews_of_order,
    settings_of,
    short_name,
)
from ulak.web.deps import AppClock, AppDatabase
from ulak.web.links import (
    BadLink,
    Link,
    RateLimit,
    csrf_ok,
    csrf_value,
    open_link,
    page_url,
)
from ulak.web.pages import render_page, store_page

router = APIRouter(include_in_schema=False)

# The POST's path: the app's body limit leaves it to this route's own (`form_limit`).
UPLOAD_PATH = re.compile(r"^/p/\d+/review/[^/]+$")
# Text fields and the multipart framing, beyond the photos.
FORM_OVERHEAD = 256 * 1024
# Submissions per link: a person fixing a typo, not a script.
SUBMISSIONS = RateLimit(limit=20, seconds=3600)

TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "Siparişinizi değerlendirin",
        "intro": "Aldığınız ürünleri nasıl buldunuz? Yorumunuz diğer alışverişçilere yol gösterir.",
        "rating": "Puanınız",
        "star": "{n} yıldız",
        "review_title": "Başlık",
        "body": "Yorumunuz",
        "photos": (
            "Fotoğraflar (isteğe bağlı, en fazla 3; JPEG, PNG, WebP veya HEIC, 10 MB'a kadar)"
        ),
        "photos_kept": (
            "Daha önce {n} fotoğraf eklediniz; yeniden gönderirseniz yorumunuz yenisiyle değişir."
        ),
        "name": "Görünecek adınız",
        "quote": "{store} bu yorumu e-postalarında alıntılayabilir",
        "submit": "Değerlendirmemi gönder",
        "thanks_title": "Teşekkür ederiz!",
        "thanks_published": "Değerlendirmeniz yayımlandı.",
        "thanks_pending": (
            "Değerlendirmeniz mağaza tarafından kontrol edildikten sonra yayımlanacak."
        ),
        "no_products": "Bu siparişte değerlendirilecek ürün yok.",
        "help_title": "Bir sorun mu var?",
        "help_body": "Siparişinizle ilgili bir sorun varsa önce bize yazın; yardımcı olalım.",
        "return_link": "İade veya değişim talebi oluştur",
        "errors_title": "Lütfen aşağıdakileri düzeltin:",
        "need_rating": "En az bir ürün için yıldız seçin.",
        "too_long": "{product}: metin çok uzun.",
        "too_many": "{product}: en fazla 3 fotoğraf ekleyebilirsiniz.",
        "too_large": "{product}: {file} 10 MB'tan büyük.",
        "not_image": "{product}: {file} bir JPEG, PNG, WebP veya HEIC fotoğrafı değil.",
        "too_many_pixels": "{product}: {file} çok büyük bir görüntü.",
        "body_too_large": (
            "Gönderdiğiniz dosyalar çok büyük. Her ürün için en "
            "fazla 3 fotoğraf, her biri en fazla 10 MB olabilir."
        ),
        "bad_form": "Form okunamadı. Lütfen sayfayı yenileyip yeniden deneyin.",
        "csrf": (
            "Bu form süresi dolmuş ya da başka bir siteden "
            "gönderilmiş. Lütfen e-postadaki bağlantıyı yeniden açın."
        ),
        "slow_down": "Çok fazla deneme yapıldı. Lütfen biraz sonra yeniden deneyin.",
        "error_title": "Bir sorun oluştu",
    },
    "en": {
        "title": "Review your order",
        "intro": "How do you like what you bought? Your review helps other shoppers.",
        "rating": "Your rating",
        "star": "{n} star",
        "review_title": "Title",
        "body": "Your review",
        "photos": "Photos (optional, up to 3; JPEG, PNG, WebP or HEIC, up to 10 MB each)",
        "photos_kept": "You added {n} photos before; sending again replaces your review.",
        "name": "Name shown",
        "quote": "{store} may quote this review in its emails",
        "submit": "Send my review",
        "thanks_title": "Thank you!",
        "thanks_published": "Your review is published.",
        "thanks_pending": "Your review will be published once the shop has checked it.",
        "no_products": "This order has nothing to review.",
        "help_title": "Something wrong?",
        "help_body": "If something is wrong with your order, tell us first and we will help.",
        "return_link": "Request a return or exchange",
        "errors_title": "Please fix the following:",
        "need_rating": "Choose stars for at least one product.",
        "too_long": "{product}: the text is too long.",
        "too_many": "{product}: you can add at most 3 photos.",
        "too_large": "{product}: {file} is larger than 10 MB.",
        "not_image": "{product}: {file} is not a JPEG, PNG, WebP or HEIC photo.",
        "too_many_pixels": "{product}: {file} is too large an image.",
        "body_too_large": (
            "The files you sent are too large. Each "
            "product takes up to 3 photos of at most 10 MB each."
        ),
        "bad_form": "The form could not be read. Please reload the page and try again.",
        "csrf": (
            "This form has expired or was sent from another "
            "site. Please open the link in the email again."
        ),
        "slow_down": "Too many attempts. Please try again a little later.",
        "error_title": "Something went wrong",
    },
}

LIMITS = {"title": 200, "body": 5000, "display_name": 100}


class _TooLarge(Exception):
    pass


def _texts(locale: str) -> dict[str, str]:
    return TEXTS.get(locale, TEXTS["en"])


async def _open(
    request: Request, store_id: int, token: str, database: Database, now: datetime
) -> tuple[Link, Customer, dict[str, Any], str]:
    """The link, its customer (after merges), their order and the page's language; a link
    whose customer or order is gone is as bad as a forged one."""
    async with database.read() as session:
        link = await open_link(session, store_id=store_id, kind="review", token=token, now=now)
        customer_id, order_id = link.subject.get("c"), link.subject.get("o")
        customer = None
        order = None
        if isinstance(customer_id, int) and isinstance(order_id, str):
            customer = await surviving_customer(
                session, store_id=link.store.id, customer_id=customer_id
            )
            if customer is not None and customer.erased_at is None:
                order = await reviewable_order(
                    session, store_id=link.store.id, customer_id=customer.id, order_id=order_id
                )
        if customer is None or order is None:
            raise BadLink(expired=False, store=link.store)
        session.expunge(customer)
    return link, customer, order, resolve_locale(customer.locale, link.store.locale)


async def _context(
    request: Request,
    database: Database,
    link: Link,
    customer: Customer,
    order: dict[str, Any],
    locale: str,
    now: datetime,
) -> dict[str, Any]:
    store = link.store
    async with database.read() as session:
        earlier = await reviews_of_order(session, store_id=store.id, order_id=order["order_id"])
        photo_counts = await _photo_counts(session, [r.id for r in earlier.values()])
    products = []
    for product in reviewable_products(order):
        before = earlier.get(product["product_id"])
        products.append(
            {
                **product,
                "rating": before.rating if before else None,
                "title_value": before.title if before else "",
                "body_value": before.body if before else "",
                "photos_before": photo_counts.get(before.id, 0) if before else 0,
            }
        )
    first = next(iter(earlier.values()), None)
    settings: Settings = request.app.state.settings
    return store_page(store, locale) | {
        "t": _texts(locale),
        "products": products,
        "csrf": csrf_value(link),
        "display_name": first.display_name
        if first
        else short_name(customer.first_name, customer.last_name),
        "quote_ok": first.quote_ok if first else False,
        "returns_url": page_url(
            settings.base_url,
            store,
            "return",
            {"c": customer.id, "o": order["order_id"]},
            at=now,
        ),
        "limits": LIMITS,
        "max_photos": photo_files.MAX_PHOTOS,
    }


async def _photo_counts(session: AsyncSession, review_ids: list[int]) -> dict[int, int]:
    return {k: len(v) for k, v in (await photo_tokens(session, review_ids)).items()}


@router.get("/p/{store_id}/review/{token}", response_class=HTMLResponse)
async def review_form(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    now = clock.now()
    link, customer, order, locale = await _open(request, store_id, token, database, now)
    context = await _context(request, database, link, customer, order, locale, now)
    # A star in the request email opens the form with that product's stars chosen.
    chosen, stars = request.query_params.get("product"), request.query_params.get("r")
    if stars in ("1", "2", "3", "4", "5"):
        for product in context["products"]:
            if product["product_id"] == chosen:
                product["rating"] = int(stars)
    return render_page(request, "reviews/form.html", context)


def _message(request: Request, link: Link, locale: str, key: str, status_code: int) -> HTMLResponse:
    t = _texts(locale)
    context = store_page(link.store, locale) | {"title": t["error_title"], "message": t[key]}
    return render_page(request, "error.html", context, status_code=status_code)


async def _read_form(request: Request, limit: int) -> FormData:
    """The multipart body, refused (`_TooLarge`) as soon as more than `limit` bytes came."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge

    async def stream() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise _TooLarge
            yield chunk

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        # A form without files (a browser's urlencoded post).
        body = b""
        async for chunk in stream():
            body += chunk
        fields: list[tuple[str, str | UploadFile]] = list(
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        )
        return FormData(fields)
    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=photo_files.MAX_PHOTOS * 50,
        max_fields=1000,
        max_part_size=64 * 1024,
    )
    return await parser.parse()


@router.post("/p/{store_id}/review/{token}", response_class=HTMLResponse)
async def submit_review(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    now = clock.now()
    link, customer, order, locale = await _open(request, store_id, token, database, now)
    t = _texts(locale)
    if not SUBMISSIONS.allow(link.store.id, token):
        return _message(request, link, locale, "slow_down", 429)
    products = reviewable_products(order)
    limit = len(products) * photo_files.MAX_PHOTOS * (photo_files.MAX_BYTES + 4096)
    try:
        form = await _read_form(request, limit + FORM_OVERHEAD)
    except _TooLarge:
        return _message(request, link, locale, "body_too_large", 413)
    except (MultiPartException, ValueError, UnicodeDecodeError):
        return _message(request, link, locale, "bad_form", 400)
    try:
        if not csrf_ok(request, link, _text(form, "csrf")):
            return _message(request, link, locale, "csrf", 403)
        events, errors = await _events(form, products, order["order_id"], t)
    finally:
        await form.close()
    if errors or not events:
        context = await _context(request, database, link, customer, order, locale, now)
        context["errors"] = errors or [t["need_rating"]]
        _keep_entered(context, form)
        return render_page(request, "reviews/form.html", context, status_code=400)
    inbox: Inbox = request.app.state.inbox
    await inbox.accept(
        link.store.id,
        [(i, event) for i, event in enumerate(events)],
        source="page",
        customer_id=customer.id,
    )
    async with database.read() as session:
        moderated = (await settings_of(session, store_id=link.store.id)).moderate
    context = store_page(link.store, locale) | {
        "t": t,
        "done": True,
        "message": t["thanks_pending" if moderated else "thanks_published"],
        "returns_url": None,
    }
    return render_page(request, "reviews/thanks.html", context)


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _keep_entered(context: dict[str, Any], form: FormData) -> None:
    """What the customer typed stays in the form shown again with the errors."""
    for i, product in enumerate(context["products"]):
        rating = _text(form, f"rating_{i}") or ""
        product["rating"] = int(rating) if rating in ("1", "2", "3", "4", "5") else None
        product["title_value"] = (_text(form, f"title_{i}") or "")[: LIMITS["title"]]
        product["body_value"] = (_text(form, f"body_{i}") or "")[: LIMITS["body"]]
    context["display_name"] = (_text(form, "display_name") or "")[: LIMITS["display_name"]]
    context["quote_ok"] = _text(form, "quote_ok") == "1"


async def _events(
    form: FormData, products: list[dict[str, Any]], order_id: str, t: dict[str, str]
) -> tuple[list[EventIn], list[str]]:
    """One review.submitted per product the customer rated, or what to fix."""
    events: list[EventIn] = []
    errors: list[str] = []
    display_name = (_text(form, "display_name") or "").strip()
    quote_ok = _text(form, "quote_ok") == "1"
    if len(display_name) > LIMITS["display_name"]:
        errors.append(t["too_long"].format(product=t["name"]))
    for i, product in enumerate(products):
        name = product["title"]
        rating = _text(form, f"rating_{i}")
        title = (_text(form, f"title_{i}") or "").strip()
        body = (_text(form, f"body_{i}") or "").strip()
        files = [
            f
            for f in form.getlist(f"photos_{i}")
            if isinstance(f, UploadFile) and (f.filename or f.size)
        ]
        if rating not in ("1", "2", "3", "4", "5"):
            continue
        if len(title) > LIMITS["title"] or len(body) > LIMITS["body"]:
            errors.append(t["too_long"].format(product=name))
            continue
        if len(files) > photo_files.MAX_PHOTOS:
            errors.append(t["too_many"].format(product=name))
            continue
        photos = []
        for upload in files:
            label = upload.filename or "?"
            if upload.size is not None and upload.size > photo_files.MAX_BYTES:
                errors.append(t["too_large"].format(product=name, file=label))
                continue
            raw = await upload.read(photo_files.MAX_BYTES + 1)
            try:
                # Decoding is CPU work: off the event loop, so other pages keep answering.
                photo = await asyncio.to_thread(photo_files.process, raw)
            except photo_files.PhotoRefused as refused:
                errors.append(t[refused.code].format(product=name, file=label))
                continue
            photos.append(
                {
                    "content_type": photo.content_type,
                    "data": base64.b64encode(photo.data).decode(),
                    "width": photo.width,
                    "height": photo.height,
                }
            )
        events.append(
            EventIn(
                type="review.submitted",
                data={
                    "order_id": order_id,
                    "product_id": product["product_id"],
                    "rating": int(rating),
                    "title": title,
                    "body": body,
                    "display_name": display_name,
                    "quote_ok": quote_ok,
                    "photos": photos,
                },
            )
        )
    return events, errors

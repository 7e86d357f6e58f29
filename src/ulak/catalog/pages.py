"""The embeddable back-in-stock form and its double opt-in.

- `GET /w/{store}/back-in-stock?product_id=&variant_id=&lang=`: the form, for an iframe on
  the shop's product page (any site may frame it; nothing on it runs a script).
- `/w/{store}/back-in-stock.js`: the snippet's script, which puts that iframe wherever a
  `<div data-ulak-back-in-stock data-product="...">` sits.
- `POST /w/{store}/back-in-stock`: from the iframe or from a plain `<form>` on the shop's
  page (public: no key, so rate-limited). It subscribes nobody: it sends
  `back_in_stock.confirm_requested` through the inbox, whose shipped journey
  (`confirm-back-in-stock`) emails a signed link of kind `back_in_stock` naming the email,
  product and variant. The worker makes the address a customer when it applies that
  event, for the email to be sent.
- `GET/POST /p/{store}/back_in_stock/{token}`: the link. GET shows a button (mail scanners
  open links); the POST (CSRF-checked) sends `back_in_stock.requested`, as the
  key-authenticated API does.

Limits on the public form, each answered with a friendly 429 page: per client address and
store, per store, and per email address (the store's `back_in_stock_daily_limit` a day,
counted here and in the subscriptions the database holds). At most one confirm email per
address, product and variant a day: the request's event key is an HMAC of the four (the
day the store's), so the inbox takes a second one as a duplicate and nothing more is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ulak.catalog.models import Product
from ulak.catalog.service import requester, subscriptions_today, variants_of
from ulak.customers.identity import normalize_email
from ulak.events.inbox import Inbox
from ulak.events.schemas import CustomerIn, EventIn
from ulak.stores.models import Store
from ulak.web.deps import AppDatabase
from ulak.web.links import (
    BadLink,
    Link,
    RateLimit,
    client_address,
    csrf_ok,
    csrf_value,
    open_link,
    page_url,
)
from ulak.web.pages import TEXTS as SHELL_TEXTS
from ulak.web.pages import bad_link_page, browser_language, render_page, store_page

router = APIRouter(include_in_schema=False)

# Public form POSTs one client address may make to one store, and all clients to one
# store, in a window of seconds. A shopper asks once or twice; a script asks far more.
PER_CLIENT = (5, 600.0)
PER_STORE = (300, 3600.0)
DAY = 86_400.0

TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "form_title": "Stoğa girince haber ver",
        "form_intro": (
            "Bu ürün şu anda stokta yok. E-posta adresinizi bırakın, yeniden satışa "
            "çıktığında size haber verelim."
        ),
        "email_label": "E-posta adresiniz",
        "variant_label": "Seçenek",
        "any_variant": "Herhangi biri",
        "consent": (
            "Adresinizi yalnızca bu ürün için kullanırız: önce onay için bir e-posta, ürün "
            "gelince bir bildirim. Onaylamazsanız kaydınız oluşmaz."
        ),
        "submit": "Bana haber ver",
        "bad_email": "Geçerli bir e-posta adresi yazın (ör. ad@ornek.com).",
        "sent_title": "E-postanızı kontrol edin",
        "sent_body": (
            "{email} adresine bir onay bağlantısı gönderiyoruz. Bağlantıyı açıp "
            "onayladığınızda, ürün stoğa girince size haber vereceğiz."
        ),
        "sent_note": "E-posta birkaç dakika içinde gelmezse istenmeyen klasörüne bakın.",
        "unknown_title": "Ürün bulunamadı",
        "unknown_body": "Bu ürün için şu anda stok bildirimi alınamıyor.",
        "limit_title": "Çok fazla istek",
        "limit_body": "Kısa sürede çok fazla istek geldi. Lütfen daha sonra yeniden deneyin.",
        "confirm_title": "Stok bildirimini onaylayın",
        "confirm_question": (
            "{product} yeniden stoğa girdiğinde {email} adresine e-posta gönderelim mi?"
        ),
        "confirm_button": "Evet, haber verin",
        "confirm_note": (
            "Ürün stoğa girince size bir kez e-posta göndeririz; isteğiniz 90 gün sonra "
            "kendiliğinden sona erer."
        ),
        "confirmed_title": "Listeye eklendiniz",
        "confirmed_body": (
            "{product} yeniden stoğa girince {email} adresine haber vereceğiz. "
            "Bildirim isteğiniz 90 gün geçerlidir."
        ),
        "csrf_failed": (
            "Bu form başka bir sayfadan gönderilmiş ya da eskimiş. Lütfen e-postadaki "
            "bağlantıyı yeniden açın."
        ),
        "frame_title": "Stoğa girince haber ver",
    },
    "en": {
        "form_title": "Tell me when it's back",
        "form_intro": (
            "This product is out of stock right now. Leave your email and we'll tell you "
            "when it's back."
        ),
        "email_label": "Your email address",
        "variant_label": "Option",
        "any_variant": "Any of them",
        "consent": (
            "We use your address only for this product: one email to confirm, and one when "
            "it's back. Nothing is saved unless you confirm."
        ),
        "submit": "Notify me",
        "bad_email": "Enter a valid email address (e.g. name@example.com).",
        "sent_title": "Check your email",
        "sent_body": (
            "We're sending a confirmation link to {email}. Once you open it and confirm, "
            "we'll tell you when the product is back."
        ),
        "sent_note": "If it hasn't arrived in a few minutes, look in your spam folder.",
        "unknown_title": "Product not found",
        "unknown_body": "Back-in-stock alerts are not available for this product.",
        "limit_title": "Too many requests",
        "limit_body": "We received too many requests. Please try again later.",
        "confirm_title": "Confirm your back-in-stock alert",
        "confirm_question": "Shall we email {email} when {product} is back in stock?",
        "confirm_button": "Yes, notify me",
        "confirm_note": (
            "We'll email you once when it's back; your alert ends by itself after 90 days."
        ),
        "confirmed_title": "You're on the list",
        "confirmed_body": (
            "We'll email {email} as soon as {product} is back in stock. Your alert lasts 90 days."
        ),
        "csrf_failed": (
            "This form came from another page or is too old. Please open the link in the "
            "email again."
        ),
        "frame_title": "Tell me when it's back",
    },
}

# The form may be framed by any site (the shop's product page); its pages load nothing but
# the logo and product picture and run no script, so user text can never run as code.
EMBEDDABLE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors *"
)
# The confirm page is not framed: its button must not be clicked through someone's page.
OWN_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _language(requested: str | None, store: Store) -> str:
    for candidate in (requested, store.locale):
        language = (candidate or "").split("-")[0].split("_")[0].lower()
        if language in TEXTS:
            return language
    return "en"


@dataclass
class Limits:
    """This process's counters for the public form (per app, so tests start afresh)."""

    client: RateLimit = field(default_factory=lambda: RateLimit(*PER_CLIENT))
    store: RateLimit = field(default_factory=lambda: RateLimit(*PER_STORE))
    # By the store's daily limit, which each store sets.
    email: dict[int, RateLimit] = field(default_factory=dict)

    def allow_email(self, limit: int, *key: object) -> bool:
        counter = self.email.get(limit)
        if counter is None:
            counter = self.email[limit] = RateLimit(limit, DAY)
        return counter.allow(*key)


def _limits(request: Request) -> Limits:
    state = request.app.state
    limits: Limits | None = getattr(state, "back_in_stock_limits", None)
    if limits is None:
        limits = state.back_in_stock_limits = Limits()
    return limits


def _secured(response: Response, *, embeddable: bool) -> Response:
    response.headers["Content-Security-Policy"] = EMBEDDABLE_POLICY if embeddable else OWN_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The confirm link is a capability: never sent to the picture's host. (Not
    # "no-referrer": the browser would then send `Origin: null` with the page's own POST,
    # which the CSRF check refuses.)
    response.headers["Referrer-Policy"] = "same-origin"
    if not embeddable:
        response.headers["X-Frame-Options"] = "DENY"
    return response


def _page(
    request: Request,
    store: Store,
    language: str,
    name: str,
    extra: dict[str, Any],
    *,
    status_code: int = 200,
    embeddable: bool = True,
) -> Response:
    context = store_page(store, language) | {"t": TEXTS[language]} | extra
    if embeddable:
        # In the shop's page: the shop shows its own help contacts.
        context["help"] = None
    page = render_page(request, f"catalog/{name}", context, status_code=status_code)
    return _secured(page, embeddable=embeddable)


def _note(
    request: Request,
    store: Store,
    language: str,
    title: str,
    body: str,
    *,
    status_code: int,
    embeddable: bool = True,
) -> Response:
    t = TEXTS[language]
    return _page(
        request,
        store,
        language,
        "back_in_stock_note.html",
        {"title": t[title], "body": t[body]},
        status_code=status_code,
        embeddable=embeddable,
    )


def _no_store(request: Request) -> Response:
    """A store id that names no store: the form's "not found", in the browser's language."""
    language = browser_language(request)
    t = TEXTS[language] if language in TEXTS else TEXTS["en"]
    page = render_page(
        request,
        "error.html",
        {"title": t["unknown_title"], "message": t["unknown_body"], "lang": language},
        status_code=404,
    )
    return _secured(page, embeddable=True)


async def _store(database: AppDatabase, store_id: int) -> Store | None:
    async with database.read() as session:
        # An id no database column can hold names no store (asking would overflow).
        store = await session.get(Store, store_id) if 0 < store_id < 2**63 else None
        if store is not None:
            session.expunge(store)
        return store


@dataclass(frozen=True)
class Offer:
    """The product as the form shows it, with its variants (none: one kind)."""

    product_id: str
    title: str
    image_url: str | None
    url: str | None
    variants: list[tuple[str, str]]  # (variant id, its title or id)

    def has(self, variant_id: str) -> bool:
        return any(v == variant_id for v, _ in self.variants)

    def name_of(self, variant_id: str) -> str:
        """What the emails and pages call the product asked for: the variant's own title
        when it has one (shops title variants "Mug – Blue"), else the product's."""
        row = next((label for v, label in self.variants if v == variant_id), None)
        return row if row is not None and row != variant_id else self.title


def _shared_words(titles: list[str]) -> str:
    """The words every title starts with, without a separator left dangling at the end."""
    shared: list[str] = []
    for words in zip(*(title.split() for title in titles), strict=False):
        if any(word != words[0] for word in words):
            break
        shared.append(words[0])
    return " ".join(shared).rstrip(" -–—/|,:(")


def _offer(rows: list[Product]) -> Offer | None:
    if not rows:
        return None
    own = rows[0] if rows[0].variant_id == "" else None
    titles = [r.title for r in rows if r.title]
    if own is not None and own.title:
        title = own.title
    else:
        # Variants only: what their titles share ("Mug – Blue", "Mug – Green": "Mug").
        shared = _shared_words(titles) if len(titles) > 1 else ""
        title = shared if len(shared) >= 3 else (titles[0] if titles else rows[0].product_id)
    # A variant titled as the product (or not at all) is told apart by its id.
    variants = [
        (r.variant_id, r.title if r.title and r.title != title else r.variant_id)
        for r in rows
        if r.variant_id
    ]
    first = own or rows[0]
    image = first.image_url or next((r.image_url for r in rows if r.image_url), None)
    url = first.url or next((r.url for r in rows if r.url), None)
    return Offer(first.product_id, title, image, url, variants)


def _field(value: object, limit: int = 200) -> str | None:
    """A form or query value, trimmed: "" when absent, None when no id or address can be
    it (a NUL, which PostgreSQL cannot hold; longer than any; a file)."""
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        return None
    return value.strip()


@router.get("/w/{store_id}/back-in-stock", response_class=HTMLResponse)
async def form(request: Request, store_id: int, database: AppDatabase) -> Response:
    store = await _store(database, store_id)
    if store is None:
        return _no_store(request)
    language = _language(request.query_params.get("lang"), store)
    product_id = _field(request.query_params.get("product_id"))
    variant_id = _field(request.query_params.get("variant_id"))
    rows = []
    if product_id:
        async with database.read() as session:
            rows = await variants_of(session, store_id=store.id, product_id=product_id)
    return _form_page(request, store, language, rows, variant_id, email="", error=None)


def _form_page(
    request: Request,
    store: Store,
    language: str,
    rows: list[Product],
    variant_id: str | None,
    *,
    email: str,
    error: str | None,
) -> Response:
    offer = _offer(rows)
    if offer is None or variant_id is None or (variant_id and not offer.has(variant_id)):
        return _note(request, store, language, "unknown_title", "unknown_body", status_code=404)
    return _page(
        request,
        store,
        language,
        "back_in_stock_form.html",
        {
            "action": f"/w/{store.id}/back-in-stock",
            "product": offer,
            "variant_id": variant_id,
            # A choice when the product has several and the page named none (or, with an
            # error, the shopper's choice kept).
            "choose": len(offer.variants) > 1 and (not variant_id or error is not None),
            "only_variant": offer.variants[0][0] if len(offer.variants) == 1 else "",
            "email": email,
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.get("/w/{store_id}/back-in-stock.js")
async def script(request: Request, store_id: int, database: AppDatabase) -> Response:
    store = await _store(database, store_id)
    if store is None:
        return Response("/* no such store */\n", status_code=404, media_type="text/javascript")
    title = TEXTS[_language(None, store)]["frame_title"]
    # JSON is a JavaScript literal; "<" escaped so no "</script>" can end an inline copy.
    source = SCRIPT.replace("__TITLE__", json.dumps(title).replace("<", "\\u003c"))
    response = Response(source, media_type="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# Reads only attributes, builds the iframe with DOM calls (never HTML from text), and adds
# each iframe once even when the script is included twice.
SCRIPT = """(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || !me.src) return;
  var form = me.src.split("?")[0].replace(/\\.js$/, "");
  function mount(el) {
    var product = el.getAttribute("data-product");
    if (!product || el.getAttribute("data-ulak-mounted")) return;
    el.setAttribute("data-ulak-mounted", "1");
    var query = "?product_id=" + encodeURIComponent(product);
    var variant = el.getAttribute("data-variant");
    if (variant) query += "&variant_id=" + encodeURIComponent(variant);
    var lang = el.getAttribute("data-lang") || document.documentElement.lang || "";
    if (lang) query += "&lang=" + encodeURIComponent(lang.slice(0, 2));
    var frame = document.createElement("iframe");
    frame.src = form + query;
    frame.title = el.getAttribute("data-title") || __TITLE__;
    frame.style.cssText = "display:block;width:100%;max-width:480px;height:" +
      (parseInt(el.getAttribute("data-height"), 10) || 470) + "px;border:0";
    el.appendChild(frame);
  }
  function mountAll() {
    var found = document.querySelectorAll("[data-ulak-back-in-stock]");
    for (var i = 0; i < found.length; i++) mount(found[i]);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
"""


def _request_key(store: Store, email: str, product_id: str, variant_id: str, now: datetime) -> str:
    """One key per address, product and variant a day (the store's day): the inbox takes a
    second request that day as a duplicate. An HMAC, so the key tells no one the address."""
    day = now.astimezone(ZoneInfo(store.timezone)).date().isoformat()
    message = f"{email}\x00{product_id}\x00{variant_id}\x00{day}".encode()
    digest = hmac.new(store.link_secret.encode(), message, hashlib.sha256).hexdigest()
    return f"ulak:back_in_stock.confirm:{digest[:40]}"


@router.post("/w/{store_id}/back-in-stock", response_class=HTMLResponse)
async def ask(request: Request, store_id: int, database: AppDatabase) -> Response:
    store = await _store(database, store_id)
    if store is None:
        return _no_store(request)
    submitted = await request.form()
    language = _language(_field(submitted.get("lang"), 16) or None, store)
    limits = _limits(request)
    if not limits.client.allow(store.id, client_address(request)) or not limits.store.allow(
        store.id
    ):
        return _too_many(request, store, language)
    product_id = _field(submitted.get("product_id"))
    variant_id = _field(submitted.get("variant_id"))
    typed = _field(submitted.get("email"), 320) or ""
    email = normalize_email(typed) if typed else None
    now = request.app.state.clock.now()
    async with database.read() as session:
        rows = await variants_of(session, store_id=store.id, product_id=product_id or "")
        offer = _offer(rows)
        if offer is None or variant_id is None or (variant_id and not offer.has(variant_id)):
            return _note(request, store, language, "unknown_title", "unknown_body", status_code=404)
        if email is None:
            error = TEXTS[language]["bad_email"]
            return _form_page(request, store, language, rows, variant_id, email=typed, error=error)
        who = requester(email, None, 0)
        subscribed_today = await subscriptions_today(
            session, store_id=store.id, requested_by=who, now=now
        )
    if subscribed_today >= store.back_in_stock_daily_limit or not limits.allow_email(
        store.back_in_stock_daily_limit, store.id, who
    ):
        return _too_many(request, store, language)
    variant_id = variant_id or (offer.variants[0][0] if len(offer.variants) == 1 else "")
    subject = {"e": email, "p": offer.product_id, "v": variant_id, "l": language}
    base_url: str = request.app.state.settings.base_url
    data = {
        "product_id": offer.product_id,
        "variant_id": variant_id or None,
        "title": offer.name_of(variant_id),
        "url": offer.url,
        "image_url": offer.image_url,
        "confirm_url": page_url(base_url, store, "back_in_stock", subject, at=now),
    }
    event = EventIn(
        id=_request_key(store, email, offer.product_id, variant_id, now),
        type="back_in_stock.confirm_requested",
        customer=CustomerIn(email=email),
        data={k: v for k, v in data.items() if v is not None},
    )
    inbox: Inbox = request.app.state.inbox
    # A duplicate (asked before today) or a conflict (the same, with another link) sends
    # nothing more; the page says the same either way, telling nobody what was asked.
    await inbox.accept(store.id, [(0, event)], source="page")
    return _page(
        request,
        store,
        language,
        "back_in_stock_note.html",
        {
            "title": TEXTS[language]["sent_title"],
            "body": TEXTS[language]["sent_body"].format(email=email),
            "note": TEXTS[language]["sent_note"],
        },
    )


def _too_many(
    request: Request, store: Store, language: str, *, embeddable: bool = True
) -> Response:
    page = _note(
        request,
        store,
        language,
        "limit_title",
        "limit_body",
        status_code=429,
        embeddable=embeddable,
    )
    page.headers["Retry-After"] = "600"
    return page


# The link in the confirm email.


async def _open(request: Request, database: AppDatabase, store_id: int, token: str) -> Link:
    async with database.read() as session:
        return await open_link(
            session,
            store_id=store_id,
            kind="back_in_stock",
            token=token,
            now=request.app.state.clock.now(),
        )


@router.get("/p/{store_id}/back_in_stock/{token}", response_class=HTMLResponse)
async def confirm_page(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> Response:
    """A button, not the confirmation itself: mail scanners open every link."""
    link = await _open(request, database, store_id, token)
    return await _confirm(request, database, link, post=False)


@router.post("/p/{store_id}/back_in_stock/{token}", response_class=HTMLResponse)
async def confirm(request: Request, store_id: int, token: str, database: AppDatabase) -> Response:
    link = await _open(request, database, store_id, token)
    return await _confirm(request, database, link, post=True)


async def _confirm(request: Request, database: AppDatabase, link: Link, *, post: bool) -> Response:
    store, subject = link.store, link.subject
    email, product_id, variant_id = subject.get("e"), subject.get("p"), subject.get("v")
    language = _language(str(subject.get("l") or ""), store)
    t = TEXTS[language]
    if not (isinstance(email, str) and isinstance(product_id, str) and isinstance(variant_id, str)):
        # Signed by the store, so made by ulak: never so, but a page rather than a 500.
        return bad_link_page(request, BadLink(expired=False, store=store))
    if post:
        submitted = await request.form()
        csrf = submitted.get("csrf")
        if not csrf_ok(request, link, csrf if isinstance(csrf, str) else None):
            page = _page(
                request,
                store,
                language,
                "back_in_stock_note.html",
                {"title": SHELL_TEXTS[language]["error_title"], "body": t["csrf_failed"]},
                status_code=403,
                embeddable=False,
            )
            return page
    now = request.app.state.clock.now()
    async with database.read() as session:
        rows = await variants_of(session, store_id=store.id, product_id=product_id)
        offer = _offer(rows)
        if offer is None or (variant_id and not offer.has(variant_id)):
            return _note(
                request,
                store,
                language,
                "unknown_title",
                "unknown_body",
                status_code=404,
                embeddable=False,
            )
        subscribed_today = await subscriptions_today(
            session, store_id=store.id, requested_by=requester(email, None, 0), now=now
        )
    product = offer.name_of(variant_id)
    if not post:
        return _page(
            request,
            store,
            language,
            "back_in_stock_confirm.html",
            {
                "question": t["confirm_question"].format(product=product, email=email),
                "csrf": csrf_value(link),
            },
            embeddable=False,
        )
    if subscribed_today >= store.back_in_stock_daily_limit:
        return _too_many(request, store, language, embeddable=False)
    digest = hashlib.sha256(link.token.encode()).hexdigest()[:40]
    event = EventIn(
        # Confirmed twice (a double click): one request.
        id=f"ulak:back_in_stock.confirmed:{digest}",
        type="back_in_stock.requested",
        customer=CustomerIn(email=email),
        data={"product_id": product_id, "variant_id": variant_id or None},
    )
    inbox: Inbox = request.app.state.inbox
    await inbox.accept(store.id, [(0, event)], source="page")
    return _page(
        request,
        store,
        language,
        "back_in_stock_note.html",
        {
            "title": t["confirmed_title"],
            "body": t["confirmed_body"].format(product=product, email=email),
        },
        embeddable=False,
    )

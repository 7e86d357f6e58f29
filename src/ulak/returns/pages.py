"""The returns page: `GET/POST /p/{store_id}/return/{token}` (kind `return`, subject
`{"c": customer, "o": order}`).

GET shows what of a delivered order may still be returned, the store's policy and
deadline; POST checks the request on a read and sends `return.requested` through the inbox
(the worker checks it again and records it). A request for an order not delivered, or
past the window, is refused politely with the reason and the store's help contacts.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from ulak.catalog.service import ProductCard, recommend
from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.customers.service import surviving_customer
from ulak.errors import NotFound
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted, EventIn
from ulak.messages.formatting import Formatter
from ulak.messages.rendering import resolve_locale
from ulak.returns.schemas import REFERENCE_PATTERN, ReturnRequestedData
from ulak.returns.service import (
    Policy,
    Refused,
    Returnable,
    amount_of,
    credit_of,
    new_reference,
    policy_of,
    problem_with,
    returnable,
)
from ulak.web.deps import AppDatabase
from ulak.web.links import BadLink, Link, csrf_ok, csrf_value, open_link
from ulak.web.pages import render_page, store_page

router = APIRouter(include_in_schema=False)
REFERENCE = re.compile(REFERENCE_PATTERN)

TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "İade ve değişim",
        "order": "Sipariş #{number}",
        "deadline": "İade talebinizi {date} tarihine kadar (bu gün dahil) iletebilirsiniz.",
        "policy": "İade koşulları",
        "pick": "İade etmek istediğiniz ürünler",
        "quantity": "Adet",
        "bought": "{n} adet alındı",
        "left_none": "Bu ürünün tamamı için zaten talep var.",
        "unit_price": "Birim fiyat",
        "reason": "İade nedeni",
        "comment": "Açıklama (isteğe bağlı)",
        "resolution": "Ne istersiniz?",
        "refund": "Para iadesi",
        "refund_note": "Ödediğiniz tutar, ödeme yönteminize iade edilir.",
        "exchange": "Değişim",
        "exchange_note": "Aynı ürünün başka bir bedeni ya da rengi.",
        "exchange_for": "Yerine istediğiniz seçenek",
        "exchange_pick": "Seçiniz",
        "out_of_stock": "stokta yok",
        "store_credit": "Mağaza kredisi",
        "store_credit_note": "İade tutarı mağaza krediniz olarak yüklenir.",
        "store_credit_bonus": "İade tutarının üzerine %{bonus} ek kredi.",
        "submit": "İade talebini gönder",
        "alternatives": "Başka bir beden ya da renk mi istersiniz?",
        "alternatives_note": "Değişim seçeneğiyle bu ürünün şu seçeneklerini alabilirsiniz:",
        "recommended": "Beğenebileceğiniz ürünler",
        "earlier": "Bu sipariş için önceki talepleriniz",
        "nothing_left": "Bu siparişteki tüm ürünler için zaten iade talebiniz var.",
        "done_title": "İade talebiniz alındı",
        "done_body": (
            "Talep numaranız {reference}. Talebinizi inceleyip e-postayla bilgi vereceğiz."
        ),
        "done_items": "Talep ettiğiniz iade",
        "done_already": (
            "{reference} numaralı talebinizi daha önce gönderdiniz; ilk gönderdiğiniz geçerli."
            " Değiştirmek isterseniz bize ulaşın."
        ),
        "done_value": "İade ettiğiniz ürünlerin tutarı: {amount}",
        "done_credit": "Mağaza krediniz: {amount}",
        "refused_title": "İade talebi alınamıyor",
        "refused_not_delivered": (
            "Siparişiniz henüz teslim edilmedi. Teslim edildikten sonra "
            "{days} gün içinde iade talebinde bulunabilirsiniz."
        ),
        "refused_window_closed": (
            "Bu siparişin iade süresi {date} tarihinde sona erdi (teslimattan sonra {days} gün)."
            " Yine de bir sorun varsa bize ulaşın; yardımcı olmaya çalışırız."
        ),
        "refused_cancelled": "Bu sipariş iptal edildi; iade edilecek bir ürün yok.",
        "refused_help": "Sorunuz mu var? Bize ulaşın:",
        "error_quantity": "Seçtiğiniz adet, iade edilebilecek adetten fazla.",
        "error_items": "Lütfen iade etmek istediğiniz en az bir ürün ve adedini seçin.",
        "error_reason": "Lütfen bir iade nedeni seçin.",
        "error_resolution": "Lütfen listeden bir seçenek belirleyin.",
        "error_exchange": "Değişim için her ürünün yerine stokta olan bir seçenek belirleyin.",
        "error_csrf": "Form süresi doldu ya da başka bir siteden gönderildi. Sayfayı yenileyin.",
        "status_requested": "Alındı",
        "status_approved": "Onaylandı",
        "status_received": "Ürünler bize ulaştı",
        "status_refunded": "Tamamlandı",
        "status_rejected": "Reddedildi",
    },
    "en": {
        "title": "Returns and exchanges",
        "order": "Order #{number}",
        "deadline": "You can ask for a return until {date} (inclusive).",
        "policy": "Return policy",
        "pick": "Items to return",
        "quantity": "Quantity",
        "bought": "{n} bought",
        "left_none": "A return is already asked for all of this item.",
        "unit_price": "Unit price",
        "reason": "Reason for the return",
        "comment": "Comment (optional)",
        "resolution": "What would you like?",
        "refund": "Refund",
        "refund_note": "The amount is refunded to your payment method.",
        "exchange": "Exchange",
        "exchange_note": "Another size or colour of the same product.",
        "exchange_for": "What you would like instead",
        "exchange_pick": "Choose",
        "out_of_stock": "out of stock",
        "store_credit": "Store credit",
        "store_credit_note": "The amount is added to your store credit.",
        "store_credit_bonus": "Plus a {bonus}% bonus on top of the amount.",
        "submit": "Send the return request",
        "alternatives": "Would another size or colour fit better?",
        "alternatives_note": "With an exchange you can have these options of this product:",
        "recommended": "You may also like",
        "earlier": "Your earlier requests for this order",
        "nothing_left": "A return is already asked for every item of this order.",
        "done_title": "We have your return request",
        "done_body": ("Your reference is {reference}. We will look at your request and email you."),
        "done_items": "Your request",
        "done_already": (
            "You sent request {reference} before; the first one you sent stands."
            " Please contact us if you want to change it."
        ),
        "done_value": "Value of the items: {amount}",
        "done_credit": "Your store credit: {amount}",
        "refused_title": "We cannot take a return request",
        "refused_not_delivered": (
            "Your order has not been delivered yet. Once it is, you can ask for a return"
            " within {days} days."
        ),
        "refused_window_closed": (
            "The return period of this order ended on {date} ({days} days after delivery)."
            " If something is wrong, please contact us anyway and we will try to help."
        ),
        "refused_cancelled": "This order was cancelled: there is nothing to return.",
        "refused_help": "Questions? Reach us:",
        "error_quantity": "A quantity is more than what is left to return.",
        "error_items": "Please choose at least one item and its quantity.",
        "error_reason": "Please choose a reason.",
        "error_resolution": "Please choose one of the options.",
        "error_exchange": "For an exchange, choose an option in stock for each item.",
        "error_csrf": "The form expired or was sent from another site. Please reload the page.",
        "status_requested": "Received",
        "status_approved": "Approved",
        "status_received": "Items received",
        "status_refunded": "Completed",
        "status_rejected": "Rejected",
    },
}


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


class _Page:
    """What one request read: the link, its customer, the store's policy, and what the
    order allows (or why it allows nothing)."""

    def __init__(
        self,
        link: Link,
        customer: Customer,
        policy: Policy,
        allowed: Returnable | None,
        refused: Refused | None,
        recommended: list[ProductCard],
    ) -> None:
        self.link = link
        self.customer = customer
        self.policy = policy
        self.allowed = allowed
        self.refused = refused
        self.recommended = recommended
        self.locale = resolve_locale(customer.locale, link.store.locale)
        self.t = TEXTS[self.locale]
        self.format = Formatter(
            locale=self.locale,
            timezone=customer.timezone or link.store.timezone,
            currency=link.store.currency,
        )


async def _read(request: Request, store_id: int, token: str, database: AppDatabase) -> _Page:
    now = _clock(request).now()
    async with database.read() as session:
        link = await open_link(session, store_id=store_id, kind="return", token=token, now=now)
        store = link.store
        customer_id, order_id = link.subject.get("c"), link.subject.get("o")
        if not isinstance(customer_id, int) or not isinstance(order_id, str):
            raise BadLink(expired=False, store=store)
        customer = await surviving_customer(session, store_id=store.id, customer_id=customer_id)
        if customer is None or customer.erased_at is not None:
            raise BadLink(expired=False, store=store)
        session.expunge(customer)
        policy = await policy_of(session, store_id=store.id)
        allowed, refused = None, None
        try:
            allowed = await returnable(
                session, store=store, customer=customer, order_id=order_id, policy=policy, at=now
            )
        except NotFound as error:
            raise BadLink(expired=False, store=store) from error
        except Refused as error:
            refused = error
        recommended: list[ProductCard] = []
        if allowed is not None:
            recommended = await recommend(
                session, store_id=store.id, customer_id=customer.id, limit=3
            )
    return _Page(link, customer, policy, allowed, refused, recommended)


def _context(page: _Page) -> dict[str, Any]:
    store = page.link.store
    t = page.t
    context = store_page(store, page.locale)
    context |= {
        "t": t,
        "csrf": csrf_value(page.link),
        "policy_text": page.policy.text(page.locale),
        # The request's reference, made when the form is shown: sent twice (a double tap,
        # a reload), it is one request.
        "reference": new_reference(),
    }
    if page.refused is not None:
        code = page.refused.code
        context["refusal"] = t[f"refused_{code}"].format(
            days=page.policy.window_days,
            date=page.format.date(page.refused.deadline) if page.refused.deadline else "",
        )
        return context
    allowed = page.allowed
    assert allowed is not None
    bonus = page.policy.credit_bonus_percent
    context |= {
        "number": allowed.number,
        "deadline": page.format.date(allowed.deadline),
        "lines": [
            {
                "line": line.line,
                "title": line.title,
                "image_url": line.image_url,
                "bought": line.bought,
                "left": line.left,
                "price": page.format.money(line.price, allowed.currency),
                "variants": line.variants,
            }
            for line in allowed.lines
        ],
        # Other sizes/colours in stock, for the customer choosing between refund and exchange.
        "alternatives": [
            {"title": line.title, "options": [v.title for v in line.variants if v.in_stock]}
            for line in allowed.lines
            if line.left and any(v.in_stock for v in line.variants)
        ],
        "reasons": [
            {"code": r["code"], "label": page.policy.reason_label(r["code"], page.locale)}
            for r in page.policy.reasons
        ],
        "resolutions": page.policy.resolutions,
        "bonus": bonus,
        "recommended": [
            {
                "title": card.title,
                "url": card.url,
                "image_url": card.image_url,
                "price": page.format.money(card.price, card.currency) if card.price else None,
            }
            for card in page.recommended
        ],
        "earlier": [
            {"reference": r.reference, "status": t[f"status_{r.status}"]} for r in allowed.earlier
        ],
        "nothing_left": not any(line.left for line in allowed.lines),
    }
    return context


def _form_page(
    request: Request, page: _Page, *, form: dict[str, str] | None = None, error: str | None = None
) -> HTMLResponse:
    context = _context(page) | {"form": form or {}, "error": error}
    if page.refused is not None:
        return render_page(request, "returns/refused.html", context)
    return render_page(request, "returns/form.html", context, status_code=400 if error else 200)


@router.get("/p/{store_id}/return/{token}", response_class=HTMLResponse)
async def return_page(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> HTMLResponse:
    return _form_page(request, await _read(request, store_id, token, database))


def _request_of(form: dict[str, str], allowed: Returnable) -> ReturnRequestedData | str:
    """The request a posted form makes, or the text code of what is wrong with it."""
    resolution = form.get("resolution", "")
    reference = form.get("reference", "")
    if not REFERENCE.match(reference):
        reference = new_reference()
    items = []
    for line in allowed.lines:
        raw = form.get(f"qty_{line.line}", "0").strip() or "0"
        # ASCII digits only: "²" is a digit to `str.isdigit` but not to `int`.
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 7:
            return "error_quantity"
        if int(raw) == 0:
            continue
        items.append(
            {
                "line": line.line,
                "quantity": int(raw),
                "exchange_variant_id": (
                    form.get(f"exchange_{line.line}") or None if resolution == "exchange" else None
                ),
            }
        )
    if not items:
        return "error_items"
    if not form.get("reason"):
        return "error_reason"
    try:
        return ReturnRequestedData.model_validate(
            {
                "order_id": allowed.order["order_id"],
                "reference": reference,
                "items": items,
                "reason": form.get("reason"),
                "comment": form.get("comment", "").strip() or None,
                "resolution": resolution,
            }
        )
    except ValidationError as error:
        where = {str(e["loc"][0]) for e in error.errors()}
        if "resolution" in where:
            return "error_resolution"
        if "items" in where:
            return "error_items"
        return "error_reason"


def _already(request: Request, page: _Page, reference: str) -> HTMLResponse:
    """A form sent again once its request is taken: the first one stands."""
    context = store_page(page.link.store, page.locale) | {
        "t": page.t,
        "already": page.t["done_already"].format(reference=reference),
    }
    return render_page(request, "returns/done.html", context)


@router.post("/p/{store_id}/return/{token}", response_class=HTMLResponse)
async def request_return(
    request: Request, store_id: int, token: str, database: AppDatabase
) -> HTMLResponse:
    page = await _read(request, store_id, token, database)
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    if not csrf_ok(request, page.link, form.get("csrf")):
        context = store_page(page.link.store, page.locale) | {
            "title": page.t["title"],
            "message": page.t["error_csrf"],
        }
        return render_page(request, "error.html", context, status_code=403)
    if page.refused is not None or page.allowed is None:
        return _form_page(request, page)
    allowed = page.allowed
    if form.get("reference") in {r.reference for r in allowed.earlier}:
        return _already(request, page, form["reference"])
    asked = _request_of(form, allowed)
    if isinstance(asked, str):
        return _form_page(request, page, form=form, error=page.t[asked])
    problem = problem_with(asked, allowed, page.policy)
    if problem is not None:
        return _form_page(request, page, form=form, error=page.t[f"error_{problem[0]}"])
    inbox: Inbox = request.app.state.inbox
    event = EventIn(
        # The same form sent again is the same event (a duplicate, stored once).
        id=f"return-page:{page.customer.id}:{asked.reference}",
        type="return.requested",
        data=asked.model_dump(mode="json", exclude_none=True),
    )
    (answer,) = await inbox.accept(
        page.link.store.id, [(0, event)], source="page", customer_id=page.customer.id
    )
    if not isinstance(answer, Accepted):
        # Sent before with other choices (the browser's back button): the first stands.
        return _already(request, page, str(asked.reference))
    amount = amount_of(asked.items, allowed)
    lines = {line.line: line for line in allowed.lines}
    context = store_page(page.link.store, page.locale) | {
        "t": page.t,
        "number": allowed.number,
        "reference": asked.reference,
        "resolution": page.t[asked.resolution],
        "items": [
            {
                "title": lines[item.line].title,
                "quantity": item.quantity,
                "exchange": next(
                    (
                        v.title
                        for v in lines[item.line].variants
                        if v.variant_id == item.exchange_variant_id
                    ),
                    None,
                ),
            }
            for item in asked.items
        ],
        "value": page.format.money(amount, allowed.currency),
        "credit": (
            page.format.money(credit_of(amount, page.policy.credit_bonus_percent), allowed.currency)
            if asked.resolution == "store_credit"
            else None
        ),
    }
    return render_page(request, "returns/done.html", context)

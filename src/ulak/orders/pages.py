"""The order tracking page: `GET /p/{store_id}/tracking/{token}`, the page every order
email links to (`links.tracking`).

The token names the customer and the shop's order id (`{"c": ..., "o": ...}`). The page
reads (never writes) the order through `orders.service.tracking` and shows its timeline
(the order's statuses and each carrier checkpoint with its time and place, newest first),
its items, each parcel's carrier with a tracking link (the shop's, or one built from the
carrier's pattern), the estimated delivery, what to do about a delivery problem, and the
store's help contacts (the shell's footer). An order that is not the link's customer's
(erased, unknown, another customer's) is the friendly 404, as a forged link is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any, Literal

from babel.dates import get_month_names
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ulak.clock import Clock
from ulak.customers.service import page_customer, page_customer_sqlite
from ulak.db import Database
from ulak.messages.formatting import Formatter
from ulak.messages.rendering import resolve_locale
from ulak.orders.service import Parcel, Tracking, tracking, tracking_sqlite
from ulak.web.links import BadLink, StoreCache, open_link
from ulak.web.pages import render_page, store_page

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=4)
def _months(locale: str, width: Literal["abbreviated", "wide"]) -> dict[int, str]:
    return dict(get_month_names(width, locale=locale).items())


def local_time(at: datetime, locale: str, zone: tzinfo) -> str:
    """A moment in `zone` as the page writes it: "21 Kasım 2026 23:40" in Turkish, "Nov 21,
    2026, 11:40 PM" in English (CLDR's month names; Babel's own pattern formatting, parsed
    on every call, was a third of the page's formatting)."""
    local = at.astimezone(zone)
    if locale == "tr":
        return f"{local.day} {_months('tr', 'wide')[local.month]} {local.year} {local:%H:%M}"
    hour = local.hour % 12 or 12
    noon = "AM" if local.hour < 12 else "PM"
    month = _months("en", "abbreviated")[local.month]
    return f"{month} {local.day}, {local.year}, {hour}:{local:%M} {noon}"


TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "Sipariş takibi",
        "order": "Sipariş #{number}",
        "placed_on": "Sipariş tarihi: {date}",
        "headline_placed": "Siparişinizi aldık",
        "headline_preparing": "Siparişiniz hazırlanıyor",
        "headline_shipped": "Siparişiniz yolda",
        "headline_delivered": "Siparişiniz teslim edildi",
        "headline_cancelled": "Siparişiniz iptal edildi",
        "headline_refunded": "Siparişinizin ücreti iade edildi",
        "cancelled_note": "Bu sipariş iptal edildi; gönderilmeyecek.",
        "refunded_note": "Bu siparişin ücreti iade edildi.",
        "progress": "Sipariş durumu",
        "step_placed": "Alındı",
        "step_preparing": "Hazırlanıyor",
        "step_shipped": "Kargoda",
        "step_delivered": "Teslim edildi",
        "step_done": "tamamlandı",
        "step_current": "şu anki adım",
        "estimated": "Tahmini teslim: {date}",
        "problem": "Teslimatta dikkat etmeniz gereken bir durum var",
        "carrier_says": "Kargo firmasının notu: {message}",
        "parcels": "Kargo",
        "parcel": "Paket {n}",
        "carrier": "Kargo firması",
        "tracking_number": "Takip numarası",
        "track_at_carrier": "Kargo firmasının sitesinde takip edin",
        "new_window": "(yeni pencerede açılır)",
        "not_shipped": "Siparişiniz henüz kargoya verilmedi.",
        "timeline": "Sipariş geçmişi",
        "items_heading": "Ürünler",
        "quantity": "{n} adet",
        "total": "Toplam",
        "product": "Ürün",
        "amount": "Tutar",
    },
    "en": {
        "title": "Order tracking",
        "order": "Order #{number}",
        "placed_on": "Placed on {date}",
        "headline_placed": "We have your order",
        "headline_preparing": "Your order is being prepared",
        "headline_shipped": "Your order is on its way",
        "headline_delivered": "Your order was delivered",
        "headline_cancelled": "Your order was cancelled",
        "headline_refunded": "Your order was refunded",
        "cancelled_note": "This order was cancelled; it will not be sent.",
        "refunded_note": "This order was refunded.",
        "progress": "Order progress",
        "step_placed": "Placed",
        "step_preparing": "Preparing",
        "step_shipped": "Shipped",
        "step_delivered": "Delivered",
        "step_done": "done",
        "step_current": "current step",
        "estimated": "Estimated delivery: {date}",
        "problem": "Your delivery needs your attention",
        "carrier_says": "The carrier says: {message}",
        "parcels": "Shipping",
        "parcel": "Parcel {n}",
        "carrier": "Carrier",
        "tracking_number": "Tracking number",
        "track_at_carrier": "Track on the carrier's site",
        "new_window": "(opens in a new window)",
        "not_shipped": "Your order has not been handed to a carrier yet.",
        "timeline": "Order history",
        "items_heading": "Items",
        "quantity": "Qty: {n}",
        "total": "Total",
        "product": "Item",
        "amount": "Amount",
    },
}

# The order's own statuses, and the carriers' (`ShipmentStatus`), as the timeline names them.
STATUS_TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "placed": "Sipariş alındı",
        "paid": "Ödeme alındı",
        "preparing": "Sipariş hazırlanıyor",
        "shipped": "Kargoya verildi",
        "delivered": "Teslim edildi",
        "cancelled": "Sipariş iptal edildi",
        "refunded": "Ücret iade edildi",
        "pending": "Kargo bilgisi bekleniyor",
        "info_received": "Kargo firmasına bilgi verildi",
        "in_transit": "Yolda",
        "out_for_delivery": "Dağıtıma çıktı",
        "attempt_failed": "Teslim edilemedi",
        "available_for_pickup": "Şubede teslim alınmayı bekliyor",
        "exception": "Teslimatta sorun",
        "returned_to_sender": "Göndericiye iade ediliyor",
    },
    "en": {
        "placed": "Order placed",
        "paid": "Payment received",
        "preparing": "Order being prepared",
        "shipped": "Handed to the carrier",
        "delivered": "Delivered",
        "cancelled": "Order cancelled",
        "refunded": "Refunded",
        "pending": "Waiting for the carrier's details",
        "info_received": "The carrier has the parcel's details",
        "in_transit": "In transit",
        "out_for_delivery": "Out for delivery",
        "attempt_failed": "Delivery attempt failed",
        "available_for_pickup": "Ready for pickup",
        "exception": "Delivery problem",
        "returned_to_sender": "Being returned to the sender",
    },
}

# What a customer should do about a carrier status that needs them, in plain words.
PROBLEM_TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "out_for_delivery": (
            "Kargonuz bugün adresinize getirilecek. Teslim alabilmek için adreste birinin"
            " bulunmasını sağlayın."
        ),
        "attempt_failed": (
            "Kurye kargonuzu teslim edemedi. Kargo firması genellikle ertesi iş günü yeniden"
            " dener; kargo firmasının sitesinden yeni bir teslim günü seçebilir ya da"
            " kargonuzu şubeden alabilirsiniz."
        ),
        "available_for_pickup": (
            "Kargonuz şubede sizi bekliyor. Kimliğinizle gidip teslim alabilirsiniz; şube"
            " kargoyu belirli bir süre bekletir, sonra bize geri gönderir."
        ),
        "exception": (
            "Kargonuzda beklenmedik bir sorun oluştu. Kargo firmasının sitesine bakın ya da"
            " aşağıdaki iletişim bilgilerinden bize ulaşın, yardımcı olalım."
        ),
        "returned_to_sender": (
            "Kargonuz bize geri gönderiliyor. Yeniden gönderim ya da ücret iadesi için bize ulaşın."
        ),
    },
    "en": {
        "out_for_delivery": (
            "Your parcel will be brought to your address today. Make sure someone is there to"
            " receive it."
        ),
        "attempt_failed": (
            "The courier could not deliver your parcel. The carrier usually tries again the"
            " next working day; you can choose a new delivery day on the carrier's site or"
            " collect the parcel from their branch."
        ),
        "available_for_pickup": (
            "Your parcel is waiting for you at the carrier's branch. Take an ID to collect it;"
            " it is held for a limited time and then sent back to us."
        ),
        "exception": (
            "Something unexpected happened to your parcel. Check the carrier's site, or contact"
            " us below and we will help."
        ),
        "returned_to_sender": (
            "Your parcel is on its way back to us. Contact us to have it sent again or to get"
            " a refund."
        ),
    },
}

# The progress bar's steps, and the order statuses that reach each.
STEPS = ("placed", "preparing", "shipped", "delivered")
STEP_OF_STATUS = {"placed": 0, "paid": 0, "preparing": 1, "shipped": 2, "delivered": 3}
HEADLINE_OF_STATUS = {"paid": "placed"}


@dataclass(frozen=True)
class Entry:
    """A line of the timeline."""

    at: datetime
    when: str
    label: str
    place: str | None
    note: str | None
    parcel: str | None


@router.get("/p/{store_id}/tracking/{token}", response_class=HTMLResponse)
async def tracking_page(request: Request, store_id: int, token: str) -> HTMLResponse:
    state = request.app.state
    database: Database = state.database
    clock: Clock = state.clock
    stores = getattr(state, "tracking_stores", None)
    if stores is None:
        stores = state.tracking_stores = StoreCache()
    async with database.read() as session:
        link = await open_link(
            session, store_id=store_id, kind="tracking", token=token, now=clock.now(), stores=stores
        )
        customer_id, order_id = link.subject.get("c"), link.subject.get("o")
        found: Tracking | None = None
        customer = None
        if isinstance(customer_id, int) and isinstance(order_id, str):
            store = link.store.id
            # SQLite: the plain read-only connection (`Database.lookup`), microseconds a
            # statement; PostgreSQL: the read transaction.
            if database.is_sqlite:
                customer = page_customer_sqlite(database, store_id=store, customer_id=customer_id)
            else:
                customer = await page_customer(session, store_id=store, customer_id=customer_id)
            # An erased customer's orders stay, anonymous, for the shop's figures: no
            # link of theirs opens them again.
            if customer is not None and not customer.erased:
                if database.is_sqlite:
                    found = tracking_sqlite(
                        database, store_id=store, customer_id=customer.id, order_id=order_id
                    )
                else:
                    found = await tracking(
                        session, store_id=store, customer_id=customer.id, order_id=order_id
                    )
    if customer is None or found is None:
        raise BadLink(expired=False, store=link.store)
    locale = resolve_locale(customer.locale, link.store.locale)
    zone = customer.timezone or link.store.timezone
    context = store_page(link.store, locale)
    context |= page_context(found, locale=locale, zone=zone, currency=link.store.currency)
    return render_page(request, "orders/tracking.html", context)


def page_context(found: Tracking, *, locale: str, zone: str, currency: str) -> dict[str, Any]:
    """Everything the template shows, formatted for `locale` and the customer's zone."""
    t, statuses, problems = TEXTS[locale], STATUS_TEXTS[locale], PROBLEM_TEXTS[locale]
    fmt = Formatter(locale=locale, timezone=zone, currency=found.order.currency or currency)
    order = found.order
    status = order.status
    several = len(found.parcels) > 1

    def when(at: datetime) -> str:
        return local_time(at, locale, fmt.tz)

    entries: list[Entry] = []
    carrier_delivered = any(c.status == "delivered" for p in found.parcels for c in p.checkpoints)
    seen: set[str] = set()
    for change in found.history:
        # An order sent again records "placed" again; a carrier's own "delivered" (with its
        # place) stands for the order's.
        if change.status in seen or (change.status == "delivered" and carrier_delivered):
            continue
        seen.add(change.status)
        label = statuses.get(change.status, change.status)
        entries.append(Entry(change.occurred_at, when(change.occurred_at), label, None, None, None))
    parcels = []
    for number, parcel in enumerate(found.parcels, start=1):
        name = t["parcel"].format(n=number) if several else None
        for checkpoint in parcel.checkpoints:
            entries.append(
                Entry(
                    checkpoint.occurred_at,
                    when(checkpoint.occurred_at),
                    statuses.get(checkpoint.status, checkpoint.status),
                    checkpoint.location,
                    checkpoint.message,
                    name,
                )
            )
        parcels.append(_parcel(parcel, name, t, statuses, problems, fmt))
    # Newest first; at one moment, the later recorded first.
    timeline = [e for _, e in sorted(enumerate(entries), key=lambda p: (p[1].at, p[0]))][::-1]
    step = STEP_OF_STATUS.get(status)
    items = [
        {
            "title": item.title,
            "quantity": t["quantity"].format(n=item.quantity),
            "amount": fmt.money(item.price * item.quantity),
            "url": item.url,
            "image_url": item.image_url,
        }
        for item in found.items
    ]
    order_number = str(order.number or order.order_id).lstrip("#")
    headline = f"headline_{HEADLINE_OF_STATUS.get(status, status)}"
    return {
        "t": t,
        "title": t["order"].format(number=order_number),
        "headline": t[headline] if headline in t else statuses.get(status, status),
        "placed_on": t["placed_on"].format(date=fmt.date(order.placed_at)),
        "ended": t.get(f"{status}_note"),
        "steps": [
            {
                "label": t[f"step_{name}"],
                "state": "done" if i < step else "current" if i == step else "todo",
            }
            for i, name in enumerate(STEPS)
        ]
        if step is not None
        else [],
        "parcels": parcels,
        "timeline": timeline,
        "items": items,
        "total": fmt.money(order.total) if order.total is not None else None,
    }


def _parcel(
    parcel: Parcel,
    name: str | None,
    t: dict[str, str],
    statuses: dict[str, str],
    problems: dict[str, str],
    fmt: Formatter,
) -> dict[str, Any]:
    shipment = parcel.shipment
    estimate = None
    if shipment.estimated_delivery and shipment.status != "delivered":
        try:
            estimate = fmt.date(shipment.estimated_delivery)
        except (ValueError, OverflowError):  # not a date we can show: as the carrier wrote it
            estimate = shipment.estimated_delivery
    problem = None
    if shipment.status in problems:
        problem = {
            "status": statuses[shipment.status],
            "what_to_do": problems[shipment.status],
            "carrier_says": t["carrier_says"].format(message=shipment.message)
            if shipment.message
            else None,
        }
    return {
        "name": name,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": parcel.tracking_url,
        "status": statuses.get(shipment.status, shipment.status),
        "estimate": t["estimated"].format(date=estimate) if estimate else None,
        "problem": problem,
    }

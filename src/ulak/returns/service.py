"""Returns: a store's policy, what an order still allows to return, checking a request
(the page before it sends `return.requested`, the applier again when it applies it), and
the shop's updates (`return.updated`) through a fixed set of transitions."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import VariantOption, exchange_options
from ulak.customers.models import Customer
from ulak.customers.service import surviving_customer
from ulak.errors import Invalid, NotFound
from ulak.events.models import Event
from ulak.messages.rendering import resolve_locale
from ulak.orders.service import order_with_history
from ulak.returns.models import ReturnRequest, ReturnSettings
from ulak.returns.schemas import ReturnLineIn, ReturnRequestedData, ReturnUpdatedData
from ulak.stores.models import Store

RESOLUTIONS = ("refund", "exchange", "store_credit")
STATUSES = ("requested", "approved", "received", "refunded", "rejected")
# Where each status may go next; a refunded or rejected return is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved", "rejected"}),
    "approved": frozenset({"received", "refunded", "rejected"}),
    "received": frozenset({"refunded", "rejected"}),
    "refunded": frozenset(),
    "rejected": frozenset(),
}

# The legal withdrawal period in Turkey (and the EU): 14 days after delivery.
DEFAULT_WINDOW_DAYS = 14
DEFAULT_REASONS: tuple[dict[str, str], ...] = (
    {"code": "wrong_size", "tr": "Beden / ölçü uymadı", "en": "Wrong size"},
    {"code": "damaged", "tr": "Ürün hasarlı geldi", "en": "Arrived damaged"},
    {"code": "not_as_described", "tr": "Ürün açıklamadaki gibi değil", "en": "Not as described"},
    {"code": "wrong_item", "tr": "Yanlış ürün gönderildi", "en": "Wrong item sent"},
    {"code": "changed_mind", "tr": "Vazgeçtim", "en": "Changed my mind"},
    {"code": "other", "tr": "Diğer", "en": "Other"},
)
REASON_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud, typed from mail


def new_reference() -> str:
    """R-XXXX-XXXX from `secrets` (31^8, not a sequence): what customer and shop both quote."""
    draw = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"R-{draw[:4]}-{draw[4:]}"


@dataclass(frozen=True)
class Policy:
    window_days: int = DEFAULT_WINDOW_DAYS
    policy: Mapping[str, str] = field(default_factory=dict)
    offer_exchange: bool = True
    offer_store_credit: bool = False
    credit_bonus_percent: int = 0
    reasons: tuple[Mapping[str, str], ...] = DEFAULT_REASONS

    def text(self, locale: str) -> str | None:
        """The policy in `locale`: its own text, else the one for every language, else any."""
        return (
            self.policy.get(locale)
            or self.policy.get("*")
            or next((t for t in self.policy.values() if t), None)
        )

    def reason_label(self, code: str, locale: str) -> str:
        for reason in self.reasons:
            if reason["code"] == code:
                return reason.get(locale) or reason.get("en") or reason.get("tr") or code
        return code

    @property
    def resolutions(self) -> tuple[str, ...]:
        """Refund always (the law's withdrawal right); exchange and credit as the store offers."""
        return tuple(
            r
            for r in RESOLUTIONS
            if r == "refund"
            or (r == "exchange" and self.offer_exchange)
            or (r == "store_credit" and self.offer_store_credit)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_days": self.window_days,
            "policy": dict(self.policy),
            "offer_exchange": self.offer_exchange,
            "offer_store_credit": self.offer_store_credit,
            "credit_bonus_percent": self.credit_bonus_percent,
            "reasons": [dict(r) for r in self.reasons],
        }


def _policy_of(row: ReturnSettings | None) -> Policy:
    if row is None:
        return Policy()
    return Policy(
        window_days=row.window_days,
        policy=dict(row.policy or {}),
        offer_exchange=row.offer_exchange,
        offer_store_credit=row.offer_store_credit,
        credit_bonus_percent=row.credit_bonus_percent,
        reasons=tuple(row.reasons) or DEFAULT_REASONS,
    )


async def policy_of(session: AsyncSession, *, store_id: int) -> Policy:
    return _policy_of(await session.get(ReturnSettings, store_id))


def parse_reason(text: str) -> dict[str, str]:
    """`code=Türkçe|English` (or `code=One text`) as a reason."""
    code, sep, labels = text.partition("=")
    code = code.strip()
    if not sep or not REASON_CODE.match(code):
        raise Invalid(
            f"a reason is code=Türkçe metin|English text, the code in lowercase letters, "
            f"digits, - and _: {text!r}"
        )
    tr, _, en = labels.partition("|")
    tr, en = tr.strip(), (en.strip() or tr.strip())
    if not tr:
        raise Invalid(f"the reason {code!r} needs a text")
    return {"code": code, "tr": tr, "en": en}


async def set_policy(
    session: AsyncSession,
    *,
    store_id: int,
    now: datetime,
    window_days: int | None = None,
    policy: Mapping[str, str | None] | None = None,
    offer_exchange: bool | None = None,
    offer_store_credit: bool | None = None,
    credit_bonus_percent: int | None = None,
    reasons: list[dict[str, str]] | None = None,
) -> Policy:
    """Change what is given; the rest stays. `policy` maps a language ("tr", "en", or "*"
    for every language) to its text, None to remove it; `reasons=[]` restores the defaults."""
    if await session.get(Store, store_id) is None:
        raise NotFound(f"no store {store_id}")
    if window_days is not None and not 1 <= window_days <= 365:
        raise Invalid("the return window is 1 to 365 days")
    if credit_bonus_percent is not None and not 0 <= credit_bonus_percent <= 100:
        raise Invalid("the store-credit bonus is 0 to 100 percent")
    if reasons is not None and len({r["code"] for r in reasons}) != len(reasons):
        raise Invalid("each reason needs its own code")
    row = await session.get(ReturnSettings, store_id)
    if row is None:
        defaults = Policy()
        row = ReturnSettings(
            store_id=store_id,
            window_days=defaults.window_days,
            policy={},
            offer_exchange=defaults.offer_exchange,
            offer_store_credit=defaults.offer_store_credit,
            credit_bonus_percent=defaults.credit_bonus_percent,
            reasons=[],
        )
        session.add(row)
    if window_days is not None:
        row.window_days = window_days
    if policy is not None:
        texts = dict(row.policy or {})
        for language, text in policy.items():
            if language not in ("tr", "en", "*"):
                raise Invalid(f"a policy text is for tr, en or * (every language), not {language}")
            if text is None or not text.strip():
                texts.pop(language, None)
            elif len(text) > 10_000:
                raise Invalid("a policy text is at most 10,000 characters")
            else:
                texts[language] = text.strip()
        row.policy = texts
    if offer_exchange is not None:
        row.offer_exchange = offer_exchange
    if offer_store_credit is not None:
        row.offer_store_credit = offer_store_credit
    if credit_bonus_percent is not None:
        row.credit_bonus_percent = credit_bonus_percent
    if reasons is not None:
        row.reasons = list(reasons)
    row.updated_at = now
    await session.flush()
    return _policy_of(row)


# ---------------------------------------------------------------------------------------------
# What an order allows


class Refused(Exception):
    """An order the customer cannot return anything of now: `code` says why
    (`not_delivered`, `window_closed`, `cancelled`), `deadline` the last day that was open."""

    def __init__(self, code: str, *, deadline: date | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.deadline = deadline


@dataclass(frozen=True)
class Line:
    line: int
    product_id: str | None
    variant_id: str | None
    sku: str | None
    title: str
    price: Decimal
    image_url: str | None
    bought: int
    left: int
    # Other variants of the same product (exchange and alternatives), in stock first.
    variants: tuple[VariantOption, ...] = ()


@dataclass(frozen=True)
class Returnable:
    order: dict[str, Any]
    customer_id: int
    delivered_at: datetime
    # The last local day a request is taken.
    deadline: date
    currency: str
    lines: tuple[Line, ...]
    earlier: tuple[ReturnRequest, ...]

    @property
    def number(self) -> str:
        return str(self.order.get("number") or self.order["order_id"]).lstrip("#")


def deadline_of(delivered_at: datetime, *, window_days: int, zone: ZoneInfo) -> date:
    """The last day (in the customer's zone) a request is on time: delivery's day + window."""
    return delivered_at.astimezone(zone).date() + timedelta(days=window_days)


def customer_zone(store: Store, customer: Customer) -> ZoneInfo:
    return ZoneInfo(customer.timezone or store.timezone)


async def returnable(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    order_id: str,
    policy: Policy,
    at: datetime,
) -> Returnable:
    """What the customer may still return of an order at `at`: NotFound when the order is
    not theirs, Refused when nothing may be returned now."""
    found = await order_with_history(session, store_id=store.id, order_id=order_id)
    if found is None or found[1] != customer.id:
        raise NotFound(f"order {order_id} is not this customer's")
    order, _, history = found
    if order.get("status") == "cancelled":
        raise Refused("cancelled")
    delivered = next((moment for status, moment in history if status == "delivered"), None)
    if delivered is None:
        raise Refused("not_delivered")
    deadline = deadline_of(
        delivered, window_days=policy.window_days, zone=customer_zone(store, customer)
    )
    if at.astimezone(customer_zone(store, customer)).date() > deadline:
        raise Refused("window_closed", deadline=deadline)
    earlier = tuple(
        (
            await session.execute(
                select(ReturnRequest)
                .where(ReturnRequest.store_id == store.id, ReturnRequest.order_id == order_id)
                .order_by(ReturnRequest.id)
            )
        ).scalars()
    )
    covered: dict[int, int] = {}
    for request in earlier:
        if request.status != "rejected":
            for item in request.items:
                covered[item["line"]] = covered.get(item["line"], 0) + int(item["quantity"])
    items = order.get("items", [])
    options = await exchange_options(
        session,
        store_id=store.id,
        product_ids={i["product_id"] for i in items if i.get("product_id")},
    )
    lines = []
    for index, item in enumerate(items):
        others = [
            v
            for v in options.get(item.get("product_id") or "", [])
            if v.variant_id != item.get("variant_id")
        ]
        others.sort(key=lambda v: not v.in_stock)
        lines.append(
            Line(
                line=index,
                product_id=item.get("product_id"),
                variant_id=item.get("variant_id"),
                sku=item.get("sku"),
                title=item["title"],
                price=Decimal(str(item["price"])),
                image_url=item.get("image_url"),
                bought=int(item["quantity"]),
                left=max(0, int(item["quantity"]) - covered.get(index, 0)),
                variants=tuple(others),
            )
        )
    return Returnable(
        order=order,
        customer_id=customer.id,
        delivered_at=delivered,
        deadline=deadline,
        currency=str(order.get("currency") or store.currency),
        lines=tuple(lines),
        earlier=earlier,
    )


def problem_with(
    request: ReturnRequestedData, returnable: Returnable, policy: Policy
) -> tuple[str, str] | None:
    """What is wrong with a request (a code for the page's text, and a sentence for the
    event's error), or None."""
    if request.resolution not in policy.resolutions:
        return "resolution", f"this store does not offer {request.resolution}"
    if request.reason not in {r["code"] for r in policy.reasons}:
        return "reason", f"unknown reason {request.reason!r}"
    lines = {line.line: line for line in returnable.lines}
    asked: dict[int, int] = {}
    for item in request.items:
        line = lines.get(item.line)
        if line is None:
            return "items", f"the order has no line {item.line}"
        asked[item.line] = asked.get(item.line, 0) + item.quantity
        if request.resolution == "exchange":
            wanted = {v.variant_id: v for v in line.variants}
            choice = wanted.get(item.exchange_variant_id or "")
            if choice is None:
                return "exchange", f"line {item.line} needs another variant of its product"
            if not choice.in_stock:
                return "exchange", f"variant {choice.variant_id} is out of stock"
    for index, quantity in asked.items():
        if quantity > lines[index].left:
            return (
                "quantity",
                f"line {index}: {quantity} asked, {lines[index].left} left to return",
            )
    return None


def amount_of(items: Iterable[ReturnLineIn], returnable: Returnable) -> Decimal:
    lines = {line.line: line for line in returnable.lines}
    return sum((lines[i.line].price * i.quantity for i in items), Decimal(0))


def credit_of(amount: Decimal, bonus_percent: int) -> Decimal:
    """Store credit for returned items worth `amount`: the value plus the store's bonus."""
    return (amount * (100 + bonus_percent) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------
# Applying the events


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.quantize(Decimal("0.01")), "f")


_WEB_LINK = re.compile(r"^https?://\S+$", re.IGNORECASE)


def return_view(row: ReturnRequest, *, policy: Policy, locale: str) -> dict[str, Any]:
    """A return as its emails, the API and the export show it: plain JSON values, money as
    decimal strings. `label_url` only when the label is a web link (never another scheme)."""
    return {
        "reference": row.reference,
        "order_id": row.order_id,
        "status": row.status,
        "resolution": row.resolution,
        "reason": row.reason,
        "reason_text": policy.reason_label(row.reason, locale),
        "comment": row.comment,
        "items": [
            {
                k: item.get(k)
                for k in (
                    "line",
                    "product_id",
                    "variant_id",
                    "sku",
                    "title",
                    "quantity",
                    "price",
                    "exchange_variant_id",
                    "exchange_title",
                )
            }
            for item in row.items
        ],
        "amount": _money(row.amount),
        "currency": row.currency,
        "credit_bonus_percent": row.credit_bonus_percent,
        "credit_amount": (
            _money(credit_of(row.amount, row.credit_bonus_percent))
            if row.resolution == "store_credit"
            else None
        ),
        "instructions": row.instructions,
        "label": row.label,
        "label_url": row.label if row.label and _WEB_LINK.match(row.label) else None,
        "rejection_reason": row.rejection_reason,
        "refunded_amount": _money(row.refunded_amount),
        "history": [dict(h) for h in row.history],
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


async def find_return(session: AsyncSession, *, store_id: int, reference: str) -> ReturnRequest:
    row = (
        await session.execute(
            select(ReturnRequest).where(
                ReturnRequest.store_id == store_id, ReturnRequest.reference == reference
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no return {reference}")
    return row


async def list_returns(
    session: AsyncSession,
    *,
    store_id: int,
    status: str | None = None,
    order_id: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[ReturnRequest]:
    """A store's returns, newest first."""
    query = select(ReturnRequest).where(ReturnRequest.store_id == store_id)
    if status is not None:
        query = query.where(ReturnRequest.status == status)
    if order_id is not None:
        query = query.where(ReturnRequest.order_id == order_id)
    if before is not None:
        query = query.where(ReturnRequest.id < before)
    rows = await session.execute(query.order_by(ReturnRequest.id.desc()).limit(limit))
    return list(rows.scalars())


def _locale_of(store: Store, customer: Customer) -> str:
    return resolve_locale(customer.locale, store.locale)


async def apply_return_event(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    event: Event,
    data: ReturnRequestedData | ReturnUpdatedData,
    now: datetime,
) -> str | None:
    """Apply `return.requested` or `return.updated`: None when applied (the event's data
    then carries the return as `return_request`, for its emails), else why it was refused
    (the event's error; journeys do not hear of it)."""
    policy = await policy_of(session, store_id=store.id)
    if isinstance(data, ReturnRequestedData):
        row_or_error = await _request(
            session, store=store, customer=customer, event=event, data=data, policy=policy, now=now
        )
    else:
        row_or_error = await _update(session, store=store, customer=customer, data=data, now=now)
    if isinstance(row_or_error, str):
        return row_or_error
    view = return_view(row_or_error, policy=policy, locale=_locale_of(store, customer))
    event.data = {**event.data, "reference": row_or_error.reference, "return_request": view}
    return None


async def _request(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    event: Event,
    data: ReturnRequestedData,
    policy: Policy,
    now: datetime,
) -> ReturnRequest | str:
    # The window counts from when the customer asked (a busy worker does not close it).
    try:
        allowed = await returnable(
            session,
            store=store,
            customer=customer,
            order_id=data.order_id,
            policy=policy,
            at=event.occurred_at,
        )
    except NotFound as error:
        return f"return refused: {error}"
    except Refused as refused:
        return f"return refused: {refused.code.replace('_', ' ')}"
    problem = problem_with(data, allowed, policy)
    if problem is not None:
        return f"return refused: {problem[1]}"
    reference = data.reference or new_reference()
    taken = await session.execute(
        select(ReturnRequest.id).where(
            ReturnRequest.store_id == store.id, ReturnRequest.reference == reference
        )
    )
    if taken.first() is not None:
        return f"return refused: reference {reference} is taken"
    lines = {line.line: line for line in allowed.lines}
    items = []
    for item in data.items:
        line = lines[item.line]
        exchange = next(
            (v for v in line.variants if v.variant_id == item.exchange_variant_id), None
        )
        items.append(
            {
                "line": item.line,
                "product_id": line.product_id,
                "variant_id": line.variant_id,
                "sku": line.sku,
                "title": line.title,
                "quantity": item.quantity,
                "price": _money(line.price),
                "exchange_variant_id": exchange.variant_id if exchange else None,
                "exchange_title": exchange.title if exchange else None,
            }
        )
    row = ReturnRequest(
        store_id=store.id,
        customer_id=customer.id,
        reference=reference,
        order_id=data.order_id,
        status="requested",
        resolution=data.resolution,
        reason=data.reason,
        comment=(data.comment or "").strip() or None,
        items=items,
        amount=amount_of(data.items, allowed),
        currency=allowed.currency,
        credit_bonus_percent=(
            policy.credit_bonus_percent if data.resolution == "store_credit" else 0
        ),
        history=[{"status": "requested", "at": event.occurred_at.isoformat(), "note": None}],
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def _update(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    data: ReturnUpdatedData,
    now: datetime,
) -> ReturnRequest | str:
    try:
        row = await find_return(session, store_id=store.id, reference=data.reference)
    except NotFound:
        return f"update refused: no return {data.reference}"
    # The return's customer as she is now (a merge keeps the absorbed profile's id on it).
    owner = await surviving_customer(session, store_id=store.id, customer_id=row.customer_id)
    if owner is None or owner.id != customer.id:
        return f"update refused: return {data.reference} is another customer's"
    if data.status == row.status:
        return f"update refused: return {data.reference} is {row.status} already"
    if data.status not in TRANSITIONS[row.status]:
        return f"update refused: a {row.status} return cannot become {data.status}"
    note: str | None = None
    if data.status == "approved":
        row.instructions = data.instructions
        row.label = data.label
    elif data.status == "rejected":
        row.rejection_reason = note = data.reason
    elif data.status == "refunded":
        if row.resolution == "store_credit":
            row.refunded_amount = data.amount or credit_of(row.amount, row.credit_bonus_percent)
        elif row.resolution == "refund":
            row.refunded_amount = data.amount if data.amount is not None else row.amount
        else:
            row.refunded_amount = data.amount
        if row.refunded_amount is not None:
            note = _money(row.refunded_amount)
    row.status = data.status
    row.history = [*row.history, {"status": data.status, "at": now.isoformat(), "note": note}]
    row.updated_at = now
    await session.flush()
    return row

"""What a journey's `action` and `split` steps do, for the step runner (`jobs._run`). Each
action changes another feature's state through that feature's service functions."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.consent.service import refusal
from ulak.coupons.models import Coupon
from ulak.coupons.service import (
    CouponPoolEmpty,
    coupon_of_enrollment,
    coupon_view,
    issue_coupon,
)
from ulak.customers.models import Customer
from ulak.customers.service import customer_view, set_attribute, tag_customer
from ulak.db import savepoint
from ulak.journeys.definition import (
    ActionOp,
    AlertShopOp,
    IssueCouponOp,
    SetAttributeOp,
    SplitOp,
    TagOp,
    split_branch,
)
from ulak.journeys.models import Enrollment
from ulak.journeys.service import date_rules
from ulak.messages.rendering import SHOP_ALERT_COUPONS, SHOP_ALERT_CUSTOMER, resolve_locale
from ulak.messages.service import SHOP_ALERT_EVERY, Renders, alert_shop
from ulak.preferences.topics import turned_off
from ulak.stores.models import Store
from ulak.timers.service import dates_changed

log = logging.getLogger(__name__)


def take_split(op: SplitOp, *, journey: str, customer_id: int) -> tuple[int, str]:
    """Where a customer goes on at a split, and the trace's note of it."""
    branch = split_branch(op, journey=journey, customer_id=customer_id)
    name = op.names[branch] or f"branch {branch + 1}"
    holdout = " (holdout)" if op.holdouts[branch] else ""
    note = f"{name}{holdout}: weight {op.weights[branch]} of {sum(op.weights)}"
    return op.targets[branch], note


async def run_action(
    session: AsyncSession,
    op: ActionOp,
    *,
    store: Store,
    customer: Customer,
    enrollment: Enrollment,
    journey: str,
    legal_class: str,
    context: dict[str, Any],
    clock: Clock,
    renders: Renders,
    topic: str | None = None,
) -> str:
    """Do one action; returns what the trace notes of it. Expressions and templates of the
    steps after it see what it changed (the customer's tags, the coupon)."""
    now = clock.now()
    # A code for someone the journey may not write to would only use up the store's codes
    # (a pool runs dry on customers who never see them: a special day reaches every
    # customer); the send that would show it is skipped for the same reason.
    if (
        isinstance(op, IssueCouponOp)
        and legal_class == "commercial"
        and (refused := refusal(customer, "email", merchant_opt_out=store.merchant_opt_out))
        is not None
    ):
        return f"no coupon issued ({op.coupon}): {refused}"
    if (
        isinstance(op, IssueCouponOp)
        and (
            off := await turned_off(session, customer_id=customer.id, channel="email", topic=topic)
        )
        is not None
    ):
        return f"no coupon issued ({op.coupon}): {off}"
    if isinstance(op, IssueCouponOp):
        coupon = await issue_coupon(
            session,
            store_id=store.id,
            template_key=op.coupon,
            customer_id=customer.id,
            currency=store.currency,
            now=now,
            enrollment_id=enrollment.id,
            step=enrollment.pc,
            journey_key=journey,
        )
        context["coupon"] = _coupon_view(coupon, store=store, customer=customer)
        return f"issued coupon {coupon.code} ({op.coupon})"
    if isinstance(op, TagOp):
        changed = tag_customer(customer, op.tag, present=op.present, at=now)
        context["customer"] = customer_view(customer)
        verb = "tagged" if op.present else "untagged"
        return f"{verb} {op.tag}" + ("" if changed else " (no change)")
    if isinstance(op, SetAttributeOp):
        set_attribute(customer, op.attribute, op.value, at=now)
        context["customer"] = customer_view(customer)
        # A journey may set a date another journey starts from (`member_since`).
        rules = [
            r for r in await date_rules(session, store_id=store.id) if r.attribute == op.attribute
        ]
        if rules:
            await dates_changed(session, store=store, customer=customer, rules=rules, now=now)
        return f"set attribute {op.attribute} = {op.value!r}"
    assert isinstance(op, AlertShopOp)
    message = await alert_shop(
        session,
        store=store,
        template=SHOP_ALERT_CUSTOMER,
        alert={
            "reason": op.reason,
            "journey": journey,
            "customer": _who(customer),
            "order_id": enrollment.order_id,
        },
        clock=clock,
        renders=renders,
        # One alert per enrollment and step (the messages' unique key): a customer is
        # worth telling the shop about each time a journey says so, so no time limit.
        enrollment_id=enrollment.id,
        step=enrollment.pc,
    )
    assert message is not None
    return f"alerted the shop at {message.to_address}: {op.reason} -> message {message.id}"


def _who(customer: Customer) -> dict[str, Any]:
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    who = {
        "name": name or None,
        "email": customer.email,
        "phone": customer.phone,
        "id": customer.external_id,
        "ref": customer.external_id or customer.email,
    }
    return {k: v for k, v in who.items() if v}


def _coupon_view(coupon: Coupon, *, store: Store, customer: Customer) -> dict[str, Any]:
    # In the language the message will be rendered in (`messages.service.create_email`).
    locale = resolve_locale(customer.locale, store.locale)
    return coupon_view(coupon, locale=locale, timezone=customer.timezone or store.timezone)


async def add_coupon(
    session: AsyncSession,
    context: dict[str, Any],
    *,
    store: Store,
    customer: Customer,
    enrollment: Enrollment,
) -> None:
    """The coupon an earlier run of the enrollment issued, for the sends of this one."""
    coupon = await coupon_of_enrollment(session, enrollment_id=enrollment.id)
    if coupon is not None:
        context["coupon"] = _coupon_view(coupon, store=store, customer=customer)


async def alert_pool_empty(
    session: AsyncSession, *, error: CouponPoolEmpty, clock: Clock, renders: Renders
) -> None:
    """A pool ran dry: the shop hears of it, at most once a day."""
    since: datetime = clock.now() - timedelta(hours=1)
    store = await session.get(Store, error.store_id)
    assert store is not None
    try:
        async with savepoint(session):
            await alert_shop(
                session,
                store=store,
                template=SHOP_ALERT_COUPONS,
                alert={"template": error.template, "since": since.strftime("%Y-%m-%dT%H:%M")},
                once_every=SHOP_ALERT_EVERY,
                clock=clock,
                renders=renders,
            )
    except Exception:  # the alert is ulak's own template: never expected, never fatal
        log.exception("could not alert store %s of its coupon pool %s", store.id, error.template)

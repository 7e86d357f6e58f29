"""KVKK/GDPR requests: everything ulak holds on a customer (export), and its erasure.

Each feature answers for its own tables (`<feature>/privacy.py`); this module puts the
answers together and, for an erasure, runs them in order in the worker's transaction,
as the event applier does for a merge.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog import privacy as catalog_privacy
from ulak.catalog.privacy import SubscriptionExport
from ulak.channels import privacy as channels_privacy
from ulak.consent import privacy as consent_privacy
from ulak.consent.privacy import ConsentChangeExport, IysRegistrationExport
from ulak.coupons import privacy as coupons_privacy
from ulak.coupons.privacy import CouponExport
from ulak.customers import privacy as customers_privacy
from ulak.customers.models import Customer
from ulak.customers.privacy import ProfileExport, erase_profiles, family
from ulak.db import Note, notes
from ulak.events import privacy as events_privacy
from ulak.events.privacy import EventExport
from ulak.journeys import privacy as journeys_privacy
from ulak.journeys.privacy import EnrollmentExport
from ulak.messages import privacy as messages_privacy
from ulak.messages.privacy import MessageExport
from ulak.orders import privacy as orders_privacy
from ulak.orders.privacy import CartExport, OrderExport
from ulak.preferences import privacy as preferences_privacy
from ulak.preferences.privacy import PrivacyRequestExport, TopicExport
from ulak.returns import privacy as returns_privacy
from ulak.returns.privacy import ReturnExport
from ulak.reviews import privacy as reviews_privacy
from ulak.reviews.privacy import ReviewExport
from ulak.sms import privacy as sms_privacy
from ulak.suppressions import privacy as suppressions_privacy
from ulak.suppressions.privacy import SuppressionExport
from ulak.surveys import privacy as surveys_privacy
from ulak.surveys.privacy import SurveyAnswerExport
from ulak.timers import privacy as timers_privacy
from ulak.timers.privacy import TimerExport
from ulak.webhooks import privacy as webhooks_privacy
from ulak.webhooks.privacy import WebhookDeliveryExport

# The event that carries an erasure request from the API to the worker.
ERASURE_REQUESTED = "customer.erasure_requested"


@dataclass(frozen=True)
class CustomerData:
    """Everything ulak holds on one customer: the answer to a KVKK/GDPR access request."""

    profile: ProfileExport
    consent_history: list[ConsentChangeExport]
    # The changes registered (or to register) at İYS, the Turkish consent registry.
    iys_registrations: list[IysRegistrationExport]
    orders: list[OrderExport]
    carts: list[CartExport]
    events: list[EventExport]
    enrollments: list[EnrollmentExport]
    messages: list[MessageExport]
    coupons: list[CouponExport]
    back_in_stock: list[SubscriptionExport]
    timers: list[TimerExport]
    # The store's suppression list entries for her addresses (bounces, complaints).
    suppressions: list[SuppressionExport]
    # Topics turned on or off (preference page), and the requests made there.
    topic_preferences: list[TopicExport]
    privacy_requests: list[PrivacyRequestExport]
    returns: list[ReturnExport]
    survey_answers: list[SurveyAnswerExport]
    reviews: list[ReviewExport]
    # ulak's events about them queued for, or sent to, the store's webhook endpoints.
    webhook_deliveries: list[WebhookDeliveryExport]

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return document


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> CustomerData | None:
    """None when the store has no such customer."""
    profile = await customers_privacy.export_customer(
        session, store_id=store_id, customer_id=customer_id
    )
    if profile is None:
        return None
    mine = {"store_id": store_id, "customer_id": customer_id}
    return CustomerData(
        profile=profile,
        consent_history=await consent_privacy.export_customer(session, **mine),
        iys_registrations=await consent_privacy.export_iys(session, **mine),
        orders=await orders_privacy.export_orders(session, **mine),
        carts=await orders_privacy.export_carts(session, **mine),
        events=await events_privacy.export_customer(session, **mine),
        enrollments=await journeys_privacy.export_customer(session, **mine),
        messages=await messages_privacy.export_customer(session, **mine),
        coupons=await coupons_privacy.export_customer(session, **mine),
        back_in_stock=await catalog_privacy.export_customer(session, **mine),
        timers=await timers_privacy.export_customer(session, **mine),
        suppressions=await suppressions_privacy.export_addresses(
            session, store_id=store_id, email=profile.email, phone=profile.phone
        ),
        topic_preferences=await preferences_privacy.export_topics(session, **mine),
        privacy_requests=await preferences_privacy.export_requests(session, **mine),
        returns=await returns_privacy.export_customer(session, **mine),
        survey_answers=await surveys_privacy.export_customer(session, **mine),
        reviews=await reviews_privacy.export_customer(session, **mine),
        webhook_deliveries=await webhooks_privacy.export_customer(session, **mine),
    )


@dataclass(frozen=True)
class Erased:
    """What an erasure did, table by table (logged, and the CLI shows it)."""

    customer_id: int
    profiles: int
    consent_changes: int
    orders: int
    carts: int
    events: int
    enrollments: int
    messages: int
    cancelled_messages: int
    captured_mails: int
    back_in_stock: int
    timers: int
    suppressions: int
    topic_preferences: int = 0
    returns: int = 0
    survey_comments: int = 0
    reviews: int = 0
    webhook_deliveries: int = 0


# The erasures a transaction made: on SQLite the worker checkpoints the WAL after it
# commits, so the erased bytes leave the `-wal` file too.
ERASURES: Note[list[Erased]] = Note("privacy.erasures", list, void_on_rollback=True)


async def erase_customer(session: AsyncSession, *, customer: Customer, now: datetime) -> Erased:
    """Erase a customer, in the caller's transaction: personal data removed or emptied
    everywhere ulak keeps it; consent proof and the anonymous rows counts need kept."""
    store_id = customer.store_id
    ids = await family(session, customer_id=customer.id)
    personal = await erase_profiles(session, ids=ids, now=now)
    customer_id = customer.id
    consent_changes = await consent_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer_id, personal=personal
    )
    erased_orders = await orders_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer_id, personal=personal
    )
    enrollment_ids = await journeys_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer_id, personal=personal, now=now
    )
    erased_messages = await messages_privacy.erase_customer(
        session,
        store_id=store_id,
        customer_id=customer_id,
        enrollment_ids=enrollment_ids,
        personal=personal,
    )
    captured = await channels_privacy.erase_captured(
        session, message_ids=erased_messages.message_ids
    )
    captured += await sms_privacy.erase_captured(
        session, store_id=store_id, message_ids=erased_messages.ids
    )
    await sms_privacy.erase_links(session, store_id=store_id, texts=erased_messages.sms_texts)
    erased_events = await events_privacy.erase_customer(
        session, store_id=store_id, customer_ids=ids, personal=personal
    )
    subscriptions = await catalog_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer.id
    )
    erased_timers = await timers_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer.id
    )
    erased_reviews = await reviews_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer.id
    )
    suppressions = await suppressions_privacy.erase_addresses(
        session,
        store_id=store_id,
        addresses=sorted(set(personal.addresses) | set(erased_messages.addresses)),
    )
    topic_preferences = await preferences_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer.id
    )
    returns = await returns_privacy.erase_customer(
        session, store_id=store_id, customer_id=customer.id, personal=personal
    )
    surveys = await surveys_privacy.erase_customer(session, store_id=store_id, customer_ids=ids)
    webhook_deliveries = await webhooks_privacy.erase_customer(
        session, store_id=store_id, customer_ids=ids
    )
    request_alerts = await preferences_privacy.alert_ids(
        session, store_id=store_id, customer_ids=ids
    )
    alerts = await messages_privacy.erase_shop_alerts(
        session,
        store_id=store_id,
        message_ids=sorted(set(surveys.alert_ids) | set(request_alerts)),
    )
    captured += await channels_privacy.erase_captured(session, message_ids=alerts)
    done = Erased(
        customer_id=customer.id,
        profiles=len(ids),
        consent_changes=consent_changes,
        orders=erased_orders.orders,
        carts=erased_orders.carts,
        events=erased_events,
        enrollments=len(enrollment_ids),
        messages=erased_messages.emptied,
        cancelled_messages=erased_messages.cancelled,
        captured_mails=captured,
        back_in_stock=subscriptions,
        timers=erased_timers,
        suppressions=suppressions,
        topic_preferences=topic_preferences,
        returns=returns,
        survey_comments=surveys.comments,
        reviews=erased_reviews,
        webhook_deliveries=webhook_deliveries,
    )
    notes(session)(ERASURES).append(done)
    return done

"""What the preference centre changes and reads: topics per customer and channel, and the
KVKK/GDPR requests made from the page (recorded, the shop alerted at once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.messages.models import Message
from ulak.messages.rendering import SHOP_ALERT_PRIVACY
from ulak.messages.service import Renders, alert_shop
from ulak.offload import Offload
from ulak.preferences.models import PrivacyRequest, TopicPreference
from ulak.preferences.schemas import PreferencesData, PrivacyRequestData
from ulak.stores.models import Store


async def topic_choices(session: AsyncSession, *, customer_id: int) -> dict[tuple[str, str], bool]:
    """The customer's choices, by (channel, topic); a topic not named is on."""
    rows = await session.execute(
        select(TopicPreference.channel, TopicPreference.topic, TopicPreference.subscribed).where(
            TopicPreference.customer_id == customer_id
        )
    )
    return {(channel, topic): on for channel, topic, on in rows.all()}


async def apply_preferences(
    session: AsyncSession,
    *,
    store_id: int,
    customer: Customer,
    data: PreferencesData,
    event_id: int | None,
    now: datetime,
) -> None:
    """Keep each topic's choice (the latest applied wins)."""
    current = {
        (row.channel, row.topic): row
        for row in (
            await session.scalars(
                select(TopicPreference).where(TopicPreference.customer_id == customer.id)
            )
        ).all()
    }
    for channel, chosen in data.topics.items():
        for topic, on in chosen.items():
            row = current.get((channel, topic))
            if row is None:
                row = TopicPreference(customer_id=customer.id, channel=channel, topic=topic)
                session.add(row)
            row.store_id = store_id
            row.subscribed = on
            row.source = data.source
            row.event_id = event_id
            row.updated_at = now


async def request_privacy(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    data: PrivacyRequestData,
    event_id: int | None,
    clock: Clock,
) -> Message | None:
    """Record the request and tell the shop at once, at its contact address. Nothing is
    exported or erased here: the shop checks who asks and answers with `ulak customers
    export` / `erase` (see the README)."""
    now = clock.now()
    request = PrivacyRequest(
        store_id=store.id,
        customer_id=customer.id,
        kind=data.kind,
        source=data.source,
        event_id=event_id,
        requested_at=now,
    )
    session.add(request)
    ref = customer.external_id or customer.email
    name = " ".join(p for p in (customer.first_name, customer.last_name) if p)
    who = {"name": name, "email": customer.email, "phone": customer.phone,
           "id": customer.external_id, "ref": ref}  # fmt: skip
    alert: dict[str, Any] = {
        "kind": data.kind,
        "customer": {k: v for k, v in who.items() if v},
        "requested_at": now.strftime("%Y-%m-%d %H:%M UTC"),
    }
    # An alert is ulak's own short email, rendered here rather than in a helper.
    message = await alert_shop(
        session,
        store=store,
        template=SHOP_ALERT_PRIVACY,
        alert=alert,
        clock=clock,
        renders=Renders(Offload(0), deferred=False),
    )
    # It names the customer: kept so that their erasure empties it (KVKK).
    request.alert_id = message.id if message is not None else None
    return message


@dataclass(frozen=True)
class RequestRow:
    id: int
    customer_id: int
    customer: str | None  # the shop's id or the email, while the customer is not erased
    kind: str
    source: str
    requested_at: datetime


async def privacy_requests(
    session: AsyncSession, *, store_id: int, limit: int = 100
) -> list[RequestRow]:
    """The store's requests from the page, newest first."""
    rows = await session.execute(
        select(PrivacyRequest, Customer.external_id, Customer.email)
        .outerjoin(Customer, Customer.id == PrivacyRequest.customer_id)
        .where(PrivacyRequest.store_id == store_id)
        .order_by(PrivacyRequest.requested_at.desc(), PrivacyRequest.id.desc())
        .limit(limit)
    )
    return [
        RequestRow(r.id, r.customer_id, external or email, r.kind, r.source, r.requested_at)
        for r, external, email in rows.all()
    ]


async def move_customer(session: AsyncSession, *, from_id: int, to_id: int) -> None:
    """Two profiles became one: of a topic both chose on a channel, the later choice wins
    (as the latest consent change does in a merge; a tie keeps the survivor's); the
    absorbed one's other choices go to the survivor as they are; its requests name the
    survivor."""
    rows = await session.scalars(
        select(TopicPreference).where(TopicPreference.customer_id.in_((from_id, to_id)))
    )
    theirs: dict[tuple[str, str], TopicPreference] = {}
    ours: dict[tuple[str, str], TopicPreference] = {}
    for row in rows.all():
        (theirs if row.customer_id == from_id else ours)[(row.channel, row.topic)] = row
    for key, their in theirs.items():
        our = ours.get(key)
        if our is None:
            session.add(
                TopicPreference(
                    customer_id=to_id,
                    channel=their.channel,
                    topic=their.topic,
                    store_id=their.store_id,
                    subscribed=their.subscribed,
                    source=their.source,
                    event_id=their.event_id,
                    updated_at=their.updated_at,
                )
            )
        elif their.updated_at > our.updated_at:
            our.subscribed = their.subscribed
            our.source = their.source
            our.event_id = their.event_id
            our.updated_at = their.updated_at
    for their in theirs.values():
        await session.delete(their)
    await session.flush()
    await session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.customer_id == from_id)
        .values(customer_id=to_id)
    )

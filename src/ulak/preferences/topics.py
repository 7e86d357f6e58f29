"""Message topics, and the one lookup the outbox makes of a customer's choices.

Consent (`consent/`) says whether a customer takes commercial messages on a channel at
all; a topic says what a message is about, so a customer can keep the orders' news and
the back-in-stock alerts they asked for while turning the offers off. A journey names its
topic (`topic:`; a commercial one without one is "offers", an informational one is about
the order itself). Order updates are not optional: nobody can turn them off.

This module imports no other feature's service: the outbox (`messages/service.py`) reads
it at a message's creation and at the sender's claim (one query per claim batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.preferences.models import TopicPreference

Topic = Literal["order_updates", "newsletters", "offers", "reviews", "surveys", "back_in_stock"]
TOPICS: tuple[str, ...] = get_args(Topic)
ORDER_UPDATES = "order_updates"
# What a customer may turn off, in the order the page shows them.
OPTIONAL_TOPICS: tuple[str, ...] = tuple(t for t in TOPICS if t != ORDER_UPDATES)
# The channels topics are chosen on (the page shows SMS only where the store sends SMS).
TOPIC_CHANNELS: tuple[str, ...] = ("email", "sms")

LABELS: dict[str, dict[str, str]] = {
    "tr": {
        "order_updates": "Sipariş ve kargo bilgilendirmeleri",
        "newsletters": "Bültenler ve haberler",
        "offers": "Kampanyalar ve indirimler",
        "reviews": "Değerlendirme istekleri",
        "surveys": "Memnuniyet anketleri",
        "back_in_stock": "Stoğa giren ürün haberleri",
    },
    "en": {
        "order_updates": "Order and delivery updates",
        "newsletters": "Newsletters and news",
        "offers": "Offers and discounts",
        "reviews": "Review requests",
        "surveys": "Satisfaction surveys",
        "back_in_stock": "Back-in-stock alerts",
    },
}


def topic_of(*, topic: str | None, legal_class: str) -> str | None:
    """A journey's messages' topic: what it names; else "offers" for a commercial one,
    and none (the order's own news, never stopped) for an informational one."""
    if topic is not None:
        return None if topic == ORDER_UPDATES else topic
    return "offers" if legal_class == "commercial" else None


def turned_off_reason(topic: str, channel: str) -> str:
    return f"turned off {topic} on {channel}"


async def turned_off(
    session: AsyncSession, *, customer_id: int, channel: str, topic: str | None
) -> str | None:
    """Why a message of `topic` may not go to this customer on `channel`; None: it may."""
    if topic is None or topic == ORDER_UPDATES:
        return None
    off = await session.scalar(
        select(TopicPreference.subscribed).where(
            TopicPreference.customer_id == customer_id,
            TopicPreference.channel == channel,
            TopicPreference.topic == topic,
        )
    )
    return turned_off_reason(topic, channel) if off is False else None


async def turned_off_among(
    session: AsyncSession, wanted: Iterable[tuple[int, str, str]]
) -> set[tuple[int, str, str]]:
    """Which of these (customer, channel, topic) the customer turned off: one query for a
    claim batch, none when no message of the batch has a topic."""
    keys = {key for key in wanted if key[2] != ORDER_UPDATES}
    if not keys:
        return set()
    rows = await session.execute(
        select(TopicPreference.customer_id, TopicPreference.channel, TopicPreference.topic).where(
            TopicPreference.customer_id.in_({c for c, _, _ in keys}),
            TopicPreference.subscribed.is_(False),
        )
    )
    return {(c, ch, t) for c, ch, t in rows.all()} & keys

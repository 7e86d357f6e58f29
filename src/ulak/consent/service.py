"""Consent to commercial messages, per customer and channel.

A **commercial** message needs the customer's granted consent for its channel when it
leaves (opt-in, as Turkish law and the GDPR ask); an **informational** one needs none. The
sender checks it as it claims each message (`messages.service.claim_due`), so consent
taken back after a message was made still stops it.

Changes arrive as `consent.updated` events (the shop's sign-up form, checkout box, İYS) and
as `message.unsubscribed` from ulak's own unsubscribe page. Each is kept as a row of
`consent_changes`; the customer's current state per channel is the change that occurred
last (`occurred_at`, not arrival: a grant reported late does not undo a later unsubscribe;
but never later than its arrival), with since when that status has held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent import iys
from ulak.consent.models import ConsentChange
from ulak.customers.models import Customer

ConsentChannel = Literal["email", "sms", "call"]
UNSUBSCRIBE_LINK = "unsubscribe_link"


@dataclass(frozen=True)
class ConsentState:
    """A customer's consent on one channel, as `Customer.consent` keeps it."""

    status: str  # granted, revoked
    source: str
    at: datetime  # when the change that decides occurred
    since: datetime  # when the customer's consent came to this status (the first of a run)
    recipient_type: str = "individual"  # individual, merchant: as the deciding change said

    def stored(self) -> dict[str, str]:
        return {
            "status": self.status,
            "source": self.source,
            "at": self.at.isoformat(),
            "since": self.since.isoformat(),
            "recipient_type": self.recipient_type,
        }


def consent_state(customer: Customer, channel: str) -> ConsentState | None:
    kept = (customer.consent or {}).get(channel)
    if not kept:
        return None
    at = datetime.fromisoformat(kept["at"])
    since = datetime.fromisoformat(kept["since"]) if "since" in kept else at
    return ConsentState(
        kept["status"], kept["source"], at, since, kept.get("recipient_type", "individual")
    )


def recipient_type_of(customer: Customer) -> str:
    """individual or merchant: as the customer's latest consent change on any channel said
    (a merchant known from their SMS consent is a merchant for email too)."""
    states = [s for c in customer.consent or {} if (s := consent_state(customer, c)) is not None]
    return max(states, key=lambda s: s.at).recipient_type if states else "individual"


def refusal(customer: Customer, channel: str, *, merchant_opt_out: bool) -> str | None:
    """Why a commercial message on `channel` may not go to this customer; None: it may.

    With `merchant_opt_out` (a store setting) a merchant recipient needs no recorded grant,
    as the law allows for merchants (İYS: "tacir/esnaf"); a revocation still stops it."""
    state = consent_state(customer, channel)
    # Who the recipient is matters only without a recorded state, under the relaxation.
    kind = recipient_type_of(customer) if state is None and merchant_opt_out else "individual"
    return refusal_of(
        state, channel=channel, recipient_type=kind, merchant_opt_out=merchant_opt_out
    )


def refusal_of(
    state: ConsentState | None, *, channel: str, recipient_type: str, merchant_opt_out: bool
) -> str | None:
    """`refusal` over what it reads of the customer (the sending policy holds these)."""
    if state is None:
        if merchant_opt_out and recipient_type == "merchant":
            return None
        return f"no consent to commercial {channel} on record"
    if state.status != "granted":
        return f"consent to commercial {channel} revoked ({state.source})"
    return None


async def record_change(
    session: AsyncSession,
    *,
    store_id: int,
    customer: Customer,
    channel: str,
    status: str,
    source: str,
    recipient_type: str = "individual",
    proof: Any = None,
    occurred_at: datetime,
    event_id: int | None,
    now: datetime,
) -> None:
    """Keep one change; it decides the state unless a change that occurred later is known.

    A change dated ahead of its arrival (a typo, a skewed clock) counts from its arrival:
    dated a year ahead, a grant would otherwise outrank every unsubscribe until then."""
    session.add(
        ConsentChange(
            store_id=store_id,
            customer_id=customer.id,
            channel=channel,
            recipient_type=recipient_type,
            status=status,
            source=source,
            proof=proof,
            occurred_at=occurred_at,
            event_id=event_id,
            recorded_at=now,
        )
    )
    at = min(occurred_at, now)
    current = consent_state(customer, channel)
    if current is None or at >= current.at:
        # A store registered at İYS tells it too, in this transaction (`consent/iys.py`);
        # not a change that a later one outranks (İYS keeps the last it is told).
        await iys.queue_change(
            session, store_id=store_id, customer=customer, channel=channel, status=status,
            source=source, recipient_type=recipient_type, at=at, now=now,
        )  # fmt: skip
        since = current.since if current is not None and current.status == status else at
        # A new dict: the JSON column notices a replaced value, not one changed in place.
        customer.consent = {
            **(customer.consent or {}),
            channel: ConsentState(status, source, at, since, recipient_type).stored(),
        }


async def merge_consent(session: AsyncSession, *, survivor: Customer, absorbed: Customer) -> None:
    """Two profiles turned out to be one person: the absorbed one's history becomes the
    survivor's, and per channel the change that occurred last decides."""
    await session.execute(
        update(ConsentChange)
        .where(ConsentChange.customer_id == absorbed.id)
        .values(customer_id=survivor.id)
    )
    merged = dict(survivor.consent or {})
    for channel in absorbed.consent or {}:
        theirs = consent_state(absorbed, channel)
        ours = consent_state(survivor, channel)
        if theirs is not None and (ours is None or theirs.at > ours.at):
            merged[channel] = theirs.stored()
    survivor.consent = merged
    absorbed.consent = {}

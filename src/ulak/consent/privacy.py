"""KVKK/GDPR: a customer's consent history, exported and (on erasure) kept as proof
without what identifies them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.models import ConsentChange, IysPush, IysRecipient
from ulak.customers.privacy import Personal


@dataclass(frozen=True)
class ConsentChangeExport:
    channel: str
    recipient_type: str
    status: str
    source: str
    proof: Any
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class IysRegistrationExport:
    """A change ulak registered (or is to register) at İYS for the customer."""

    type: str  # EPOSTA, MESAJ, ARAMA
    recipient: str
    recipient_type: str
    status: str  # ONAY, RET
    source: str
    consent_date: datetime
    state: str  # pending, sent, skipped, failed
    transaction_id: str | None
    done_at: datetime | None


async def export_iys(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[IysRegistrationExport]:
    rows = await session.execute(
        select(IysPush)
        .where(IysPush.store_id == store_id, IysPush.customer_id == customer_id)
        .order_by(IysPush.id)
    )
    return [
        IysRegistrationExport(
            p.type,
            p.recipient,
            p.recipient_type,
            p.status,
            p.source,
            p.consent_date,
            p.state,
            p.transaction_id,
            p.done_at,
        )
        for p in rows.scalars()
    ]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _changes(session: AsyncSession, store_id: int, customer_id: int) -> list[ConsentChange]:
    return list(
        (
            await session.execute(
                select(ConsentChange)
                .where(ConsentChange.store_id == store_id, ConsentChange.customer_id == customer_id)
                .order_by(ConsentChange.occurred_at, ConsentChange.id)
            )
        ).scalars()
    )


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[ConsentChangeExport]:
    return [
        ConsentChangeExport(
            channel=c.channel,
            recipient_type=c.recipient_type,
            status=c.status,
            source=c.source,
            proof=c.proof,
            occurred_at=c.occurred_at,
            recorded_at=c.recorded_at,
        )
        for c in await _changes(session, store_id, customer_id)
    ]


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_id: int, personal: Personal
) -> int:
    """Keep each change (the law asks for the proof of consent) without personal data:
    channel, status, source and times stay; the proof becomes SHA-256 digests of the
    recipient (the normalised address or E.164 number) and of the proof as it was, so a
    later dispute that brings the address and the original proof can be matched."""
    changes = await _changes(session, store_id, customer_id)
    for change in changes:
        recipient = personal.email if change.channel == "email" else personal.phone
        canonical = json.dumps(change.proof, sort_keys=True, ensure_ascii=False)
        change.proof = {
            "erased": True,
            "recipient_sha256": sha256(recipient) if recipient else None,
            "proof_sha256": sha256(canonical) if change.proof is not None else None,
        }
        change.source = personal.redact(change.source) or ""
    await _erase_iys(session, store_id=store_id, customer_id=customer_id, personal=personal)
    return len(changes)


async def _erase_iys(
    session: AsyncSession, *, store_id: int, customer_id: int, personal: Personal
) -> None:
    """What ulak keeps of İYS: the changes it registered there keep a digest of the
    recipient (İYS itself holds the registration, as the law asks); the changes still
    waiting to be registered keep theirs until they are, since the law obliges the shop to
    register them (KVKK art. 28, GDPR art. 17(3)(b)); ulak's copy of İYS's state for the
    address and number goes (a later change asks İYS again)."""
    pushes = await session.execute(
        select(IysPush).where(
            IysPush.store_id == store_id,
            IysPush.customer_id == customer_id,
            IysPush.state != "pending",
        )
    )
    for push in pushes.scalars():
        if not push.recipient.startswith("sha256:"):
            push.recipient = "sha256:" + sha256(push.recipient)
        push.error = personal.redact(push.error)
    recipients = list(personal.addresses)
    if recipients:
        await session.execute(
            delete(IysRecipient).where(
                IysRecipient.store_id == store_id, IysRecipient.recipient.in_(recipients)
            )
        )

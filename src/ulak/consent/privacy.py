"""KVKK/GDPR: a customer's consent history, exported and (on erasure) kept as proof
without what identifies them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.models import ConsentChange
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
    return len(changes)

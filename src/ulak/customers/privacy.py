"""KVKK/GDPR: what ulak holds on a customer's profile, and its erasure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.models import Customer

ERASED = "[erased]"


@dataclass(frozen=True)
class ProfileExport:
    id: int
    external_id: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None
    birthday: date | None
    attributes: dict[str, Any]
    tags: list[str]
    # The state per channel that decides a commercial send (the changes are `consent`).
    consent: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    # Profiles found to be the same person and merged into this one.
    merged_profiles: list[int]


async def family(session: AsyncSession, *, customer_id: int) -> list[int]:
    """The customer and every profile merged into it (at any depth): an absorbed profile
    keeps the names it came with."""
    ids, frontier = [customer_id], [customer_id]
    while frontier:
        frontier = list(
            (
                await session.execute(
                    select(Customer.id).where(Customer.merged_into_id.in_(frontier))
                )
            ).scalars()
        )
        ids += frontier
    return ids


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> ProfileExport | None:
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.store_id != store_id:
        return None
    return ProfileExport(
        id=customer.id,
        external_id=customer.external_id,
        email=customer.email,
        phone=customer.phone,
        first_name=customer.first_name,
        last_name=customer.last_name,
        locale=customer.locale,
        timezone=customer.timezone,
        birthday=customer.birthday,
        attributes=customer.attributes or {},
        tags=customer.tags or [],
        consent=customer.consent or {},
        created_at=customer.created_at,
        updated_at=customer.updated_at,
        merged_profiles=(await family(session, customer_id=customer.id))[1:],
    )


@dataclass(frozen=True)
class Personal:
    """What identifies an erased customer, gathered before the erasure empties the rows:
    the other features look for it in the free text they keep."""

    email: str | None
    phone: str | None
    external_ids: tuple[str, ...]
    # Every email and phone of the profiles erased (the customer's and those merged into
    # it): tables keyed by an address (suppressions, İYS's state) are cleared of all.
    addresses: tuple[str, ...]
    strings: tuple[str, ...]

    def redact(self, text: str | None) -> str | None:
        if not text or not self.strings:
            return text
        return _pattern(self.strings).sub(ERASED, text)

    def redact_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_json(v) for v in value]
        return value


def _pattern(strings: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so "Ayşe Yılmaz" goes as one; case-insensitive (a subject may
    # upper-case a name).
    ordered = sorted(strings, key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE)


def _phone_forms(phone: str) -> set[str]:
    """The forms a phone number is written in: +905321234567, 905321234567, 05321234567,
    5321234567 (what a shop, a template or a gateway may have kept)."""
    digits = phone.lstrip("+")
    forms = {phone, digits}
    if digits.startswith("90") and len(digits) == 12:
        forms |= {"0" + digits[2:], digits[2:]}
    return forms


async def erase_profiles(session: AsyncSession, *, ids: list[int], now: datetime) -> Personal:
    """Empty the profiles (the customer and those merged into it): identifiers, names,
    birthday, attributes, tags. The rows stay (orders keep their customer; counts hold),
    marked `erased_at`. Returns what identified them, for the other features' free text."""
    rows = list((await session.execute(select(Customer).where(Customer.id.in_(ids)))).scalars())
    strings: set[str] = set()
    external_ids = tuple(row.external_id for row in rows if row.external_id)
    email = phone = None
    addresses = {a for row in rows for a in (row.email, row.phone) if a}
    for row in rows:
        if row.id == ids[0]:
            email, phone = row.email, row.phone
        for value in (row.external_id, row.email, row.first_name, row.last_name):
            if value and len(value) >= 3:  # two letters would blank out common words
                strings.add(value)
        if row.first_name and row.last_name:
            strings.add(f"{row.first_name} {row.last_name}")
        if row.phone:
            strings |= _phone_forms(row.phone)
        row.external_id = row.email = row.phone = None
        row.first_name = row.last_name = row.timezone = row.birthday = None
        row.attributes = {}
        row.tags = []
        row.erased_at = now
        row.updated_at = now
    await session.flush()
    return Personal(
        email=email,
        phone=phone,
        external_ids=external_ids,
        addresses=tuple(sorted(addresses)),
        strings=tuple(sorted(strings)),
    )

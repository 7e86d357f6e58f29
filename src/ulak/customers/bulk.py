"""Customers in bulk, for `ulak import`: a batch's profiles resolved in a few set queries
instead of `resolve_customer` per row (which merges, and updates profiles from newer
events; an export is older than what the shop sent since, so it only adds)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.models import Customer
from ulak.db import insert_ignoring_conflicts, table_of

# Identifiers per query: well under SQLite's 32,766 bound parameters.
CHUNK = 5000


@dataclass(frozen=True)
class Profile:
    """A customer as an export names them, identifiers already normalised."""

    external_id: str | None
    email: str | None
    phone: str | None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    birthday: date | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def identifiers(self) -> list[tuple[str, str]]:
        """Its identifiers, the strongest first (the shop's id, the email, the phone)."""
        return [
            (name, value)
            for name, value in (
                ("id", self.external_id),
                ("email", self.email),
                ("phone", self.phone),
            )
            if value
        ]


@dataclass(frozen=True)
class Resolved:
    """What a batch of profiles came to: each one's customer (None if none could be had),
    and how many customers were new."""

    ids: list[int | None]
    created: int


async def import_profiles(
    session: AsyncSession, *, store_id: int, profiles: Sequence[Profile], now: datetime
) -> Resolved:
    """The customer of each profile: the one the store has under its strongest identifier,
    else a new one. A customer the store knows keeps its profile as it is; profiles of the
    batch that share an identifier are one new customer. Nothing is merged: two known
    profiles an export row links stay apart (the first identifier wins), as an export
    cannot say which is right."""
    known = await _known(session, store_id, (key for p in profiles for key in p.identifiers()))
    new: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for profile in profiles:
        keys = profile.identifiers()
        if any(key in known for key in keys) or any(key in new for key in keys):
            continue
        row: dict[str, Any] = {
            "store_id": store_id,
            "external_id": profile.external_id,
            "email": profile.email,
            "phone": profile.phone,
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "locale": profile.locale,
            "timezone": profile.timezone,
            "birthday": profile.birthday,
            "attributes": profile.attributes,
            "tags": [],
            "consent": {},
            "created_at": now,
            "updated_at": now,
        }
        rows.append(row)
        for key in keys:
            new[key] = row
    if rows:
        # ON CONFLICT DO NOTHING: a row the batch could not see (a worker's customer made
        # between the lookup and here) loses to the existing one, found just below.
        await session.execute(insert_ignoring_conflicts(session, table_of(Customer)), rows)
        known |= await _known(session, store_id, new.keys())
    ids: list[int | None] = []
    for profile in profiles:
        ids.append(next((known[k] for k in profile.identifiers() if k in known), None))
    return Resolved(ids, len(rows))


async def _known(
    session: AsyncSession, store_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    wanted: dict[str, set[str]] = {"id": set(), "email": set(), "phone": set()}
    for name, value in keys:
        wanted[name].add(value)
    table = table_of(Customer)
    columns = {"id": table.c.external_id, "email": table.c.email, "phone": table.c.phone}
    found: dict[tuple[str, str], int] = {}
    for name, values in wanted.items():
        ordered = sorted(values)
        for at in range(0, len(ordered), CHUNK):
            chunk = ordered[at : at + CHUNK]
            column = columns[name]
            rows = await session.execute(
                select(column, table.c.id).where(
                    table.c.store_id == store_id,
                    or_(column.in_(chunk)),
                    table.c.merged_into_id.is_(None),
                )
            )
            for value, id_ in rows:
                found[name, value] = id_
    return found

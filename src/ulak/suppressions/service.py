"""The suppression list: addresses a store no longer sends to, and why.

Which mail a suppression stops (industry practice, and what keeps a shop's reputation):
a hard bounce, soft bounces past the store's limit, and an address added by hand stop
every email, order confirmations included (a mailbox that does not exist receives nothing);
a complaint ("this is spam") stops commercial email only: the customer still gets the
receipts and shipping notices of what she bought, which she did not complain about, and
her email consent is revoked besides (`reports.apply_report`).

The sender checks the list as it claims a batch, in one query for the whole batch
(`suppressed_among`), and a message is also skipped when it is made (`suppression_of`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.errors import Invalid, NotFound
from ulak.suppressions.models import SoftBounce, Suppression

REASONS = ("hard_bounce", "complaint", "soft_bounces", "manual")
# A complaint stops commercial mail only; every other reason stops all of it.
COMMERCIAL_ONLY = frozenset({"complaint"})
# Soft bounces further apart than this do not add up (a mailbox full in spring and a
# server down in autumn say nothing about the address).
SOFT_BOUNCE_WINDOW = timedelta(days=30)
# Messages that soft-bounce before the address is suppressed (ULAK_SOFT_BOUNCE_LIMIT).
SOFT_BOUNCE_LIMIT = 3
_SAYS = {
    "hard_bounce": "hard bounce",
    "complaint": "spam complaint",
    "soft_bounces": "repeated soft bounces",
    "manual": "added by hand",
}


def normalise(address: str) -> str:
    return address.strip().lower()


@dataclass(frozen=True)
class Suppressed:
    """An address on the list, as `ulak suppressions list` and the sender see it."""

    channel: str
    address: str
    reason: str
    detail: str
    message_id: int | None
    at: datetime

    def stops(self, legal_class: str) -> bool:
        return legal_class == "commercial" or self.reason not in COMMERCIAL_ONLY

    def says(self) -> str:
        """Why a message was skipped, as the outbox and `ulak status` show it."""
        detail = f": {self.detail}" if self.detail else ""
        return f"address suppressed ({_SAYS.get(self.reason, self.reason)}{detail})"


def _of(row: Suppression) -> Suppressed:
    return Suppressed(row.channel, row.address, row.reason, row.detail, row.message_id, row.at)


async def suppressed_among(
    session: AsyncSession, wanted: Iterable[tuple[int, str, str]]
) -> dict[tuple[int, str, str], Suppressed]:
    """The suppressions of these (store, channel, address) triples: one query for a batch
    (uq_suppressions_store_id_channel_address)."""
    keys = {(store, channel, normalise(address)) for store, channel, address in wanted if address}
    if not keys:
        return {}
    # Without autoflush: the step runner asks this for each email it makes, and its batch
    # is meant to flush once (see create_email). Measured with `bench/stages.py --orders
    # 400`, "run steps": 3.6 CPU ms an order without autoflush, 4.1 with (5.3 statements
    # either way; one run each, within noise).
    with session.no_autoflush:
        if len(keys) == 1:
            ((store, channel, address),) = keys
            params: dict[str, object] = {"store_id": store, "channel": channel, "address": address}
            rows = await session.execute(_ONE_SUPPRESSION, params)
        else:
            rows = await session.execute(_SUPPRESSIONS, {"keys": list(keys)})
    return {(r.store_id, r.channel, r.address): _of(r) for r in rows.scalars()}


# Built once. The step runner asks for one address per email it makes: building the tuple
# IN for it cost ~0.5 ms of CPU per email (bench/stages.py --profile steps, suppressed_among
# 0.65 s of 6.1 s), against ~0.1 ms for the prebuilt equality (bench/RESULTS.md).
_ONE_SUPPRESSION = select(Suppression).where(
    Suppression.store_id == bindparam("store_id"),
    Suppression.channel == bindparam("channel"),
    Suppression.address == bindparam("address"),
)
_SUPPRESSIONS = select(Suppression).where(
    tuple_(Suppression.store_id, Suppression.channel, Suppression.address).in_(
        bindparam("keys", expanding=True)
    )
)


async def suppression_of(
    session: AsyncSession, *, store_id: int, channel: str, address: str
) -> Suppressed | None:
    found = await suppressed_among(session, [(store_id, channel, address)])
    return next(iter(found.values()), None)


async def suppress(
    session: AsyncSession,
    *,
    store_id: int,
    channel: str,
    address: str,
    reason: str,
    detail: str,
    message_id: int | None,
    now: datetime,
) -> Suppressed:
    """Put an address on the store's list; an address already there keeps its first
    reason, except that a hard bounce or complaint replaces a weaker one (soft bounces,
    or a complaint's commercial-only stop by a hard bounce's)."""
    if reason not in REASONS:
        raise Invalid(f"unknown suppression reason {reason!r}: one of {', '.join(REASONS)}")
    address = normalise(address)
    if not address:
        raise Invalid("an address to suppress is needed")
    row = (
        await session.execute(
            select(Suppression).where(
                Suppression.store_id == store_id,
                Suppression.channel == channel,
                Suppression.address == address,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = Suppression(store_id=store_id, channel=channel, address=address)
        session.add(row)
    elif not (
        (reason == "hard_bounce" and row.reason in ("soft_bounces", "complaint"))
        or (reason == "complaint" and row.reason == "soft_bounces")
    ):
        return _of(row)
    row.reason, row.detail, row.message_id, row.at = reason, detail[:2000], message_id, now
    await session.flush()
    return _of(row)


async def soft_bounced(
    session: AsyncSession,
    *,
    store_id: int,
    channel: str,
    address: str,
    detail: str,
    message_id: int | None,
    limit: int,
    now: datetime,
    delivered_since: Callable[[datetime], Awaitable[bool]],
) -> Suppressed | None:
    """Count one message that soft-bounced; the `limit`-th in a row within
    SOFT_BOUNCE_WINDOW suppresses the address (returned). `delivered_since(t)` says whether
    a message reached the address after t, which starts the count again (asked only when
    there is a count: soft bounces are rare, deliveries are not)."""
    address = normalise(address)
    row = (
        await session.execute(
            select(SoftBounce).where(
                SoftBounce.store_id == store_id,
                SoftBounce.channel == channel,
                SoftBounce.address == address,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = SoftBounce(
            store_id=store_id, channel=channel, address=address, count=0, first_at=now, last_at=now
        )
        session.add(row)
    elif now - row.first_at > SOFT_BOUNCE_WINDOW or await delivered_since(row.last_at):
        row.count, row.first_at = 0, now
    row.count += 1
    row.last_at = now
    row.last_detail = detail[:2000]
    await session.flush()
    if row.count < limit:
        return None
    return await suppress(
        session,
        store_id=store_id,
        channel=channel,
        address=address,
        reason="soft_bounces",
        detail=f"{row.count} soft bounces; last: {detail}",
        message_id=message_id,
        now=now,
    )


async def list_suppressions(session: AsyncSession, *, store_id: int) -> list[Suppressed]:
    rows = await session.execute(
        select(Suppression)
        .where(Suppression.store_id == store_id)
        .order_by(Suppression.channel, Suppression.address)
    )
    return [_of(r) for r in rows.scalars()]


async def unsuppress(session: AsyncSession, *, store_id: int, channel: str, address: str) -> None:
    """Take an address off the list (and forget its soft bounces): the shop knows the
    mailbox works again."""
    address = normalise(address)
    removed = await session.execute(
        delete(Suppression).where(
            Suppression.store_id == store_id,
            Suppression.channel == channel,
            Suppression.address == address,
        )
    )
    await session.execute(
        delete(SoftBounce).where(
            SoftBounce.store_id == store_id,
            SoftBounce.channel == channel,
            SoftBounce.address == address,
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotFound(f"{address} is not on store {store_id}'s {channel} suppression list")

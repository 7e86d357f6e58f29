"""Coupons: a store's templates, codes issued inside journeys (made here, or taken from a
pool the shop imported), and their redemption by orders."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.coupons.models import IS_AVAILABLE, Coupon, CouponTemplate
from ulak.coupons.schemas import (
    CouponCustomer,
    CouponOut,
    ImportReport,
    TemplateChange,
    TemplateOut,
)
from ulak.customers.service import surviving_customer
from ulak.db import INSERTED, attach_row, insert_rows, is_postgres, notes, table_of
from ulak.errors import Invalid, NotFound
from ulak.messages.formatting import Formatter
from ulak.messages.service import first_message_after


class CouponPoolEmpty(Invalid):
    """A pool template has no code left to issue: the step fails and the shop is told."""

    code = "coupon_pool_empty"

    def __init__(self, *, store_id: int, template: str) -> None:
        super().__init__(
            f"the pool of coupon template {template!r} has no codes left: import more with "
            f"`ulak coupons import FILE --store {store_id} --template {template}`, then "
            f"`ulak steps retry --store {store_id}`",
            details={"template": template},
        )
        self.store_id = store_id
        self.template = template


@dataclass(frozen=True)
class Default:
    key: str
    kind: str
    amount: Decimal
    validity_days: int
    prefixes: dict[str, str]  # by the store's language; English otherwise


# Every store starts with these; `ulak coupons set-template` changes them.
DEFAULTS = (
    Default("welcome", "percent", Decimal(10), 30, {"tr": "HOSGELDIN", "en": "WELCOME"}),
    Default("cart", "percent", Decimal(10), 7, {"tr": "SEPET", "en": "CART"}),
    # Valid for the week of the birthday.
    Default("birthday", "percent", Decimal(15), 7, {"tr": "DOGUMGUNU", "en": "BIRTHDAY"}),
    Default("win-back", "percent", Decimal(15), 30, {"tr": "OZLEDIK", "en": "COMEBACK"}),
    # The `thank-you` journey's incentive for a customer's next order.
    Default("next-order", "percent", Decimal(10), 30, {"tr": "TESEKKURLER", "en": "THANKYOU"}),
    # Valid for the week of one of the store's special days (Anneler Günü, ...).
    Default("special-day", "percent", Decimal(10), 7, {"tr": "OZELGUN", "en": "SPECIALDAY"}),
    # The `satisfaction-make-good` journey's apology to an unhappy customer.
    Default("make-good", "percent", Decimal(15), 30, {"tr": "OZUR", "en": "SORRY"}),
)

# Codes are read from an email and typed at a checkout: no 0/O, 1/I/L to confuse.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# Two groups of four: 31^8, about 8.5e11 codes per prefix.
GROUPS, GROUP_SIZE = 2, 4
# A collision of random codes is already unlikely once; this many in a row is a bug.
MAX_TRIES = 8
# A code the shop imports: what checkouts accept, without spaces.
_POOL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def new_code(prefix: str) -> str:
    """A fresh random code, like HOSGELDIN-7KQ2-9XMD (from `secrets`: not guessable)."""
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP_SIZE)) for _ in range(GROUPS)]
    return "-".join([prefix, *groups] if prefix else groups)


def code_key(code: str) -> str:
    """How codes are compared: orders report them as the customer typed them."""
    return code.strip().upper()


async def install_default_templates(
    session: AsyncSession,
    *,
    store_id: int,
    locale: str,
    now: datetime,
    keys: set[str] | None = None,
) -> list[str]:
    """Give a store the default templates (of these keys; None: all) it does not have yet;
    returns their keys."""
    have = set(
        (
            await session.execute(
                select(CouponTemplate.key).where(CouponTemplate.store_id == store_id)
            )
        ).scalars()
    )
    language = locale.replace("_", "-").split("-")[0].lower()
    added = []
    for default in DEFAULTS:
        if default.key in have or (keys is not None and default.key not in keys):
            continue
        session.add(
            CouponTemplate(
                store_id=store_id,
                key=default.key,
                kind=default.kind,
                amount=default.amount,
                minimum_order=None,
                validity_days=default.validity_days,
                source="generated",
                prefix=default.prefixes.get(language, default.prefixes["en"]),
                created_at=now,
                updated_at=now,
            )
        )
        added.append(default.key)
    await session.flush()
    return added


async def _template(session: AsyncSession, store_id: int, key: str) -> CouponTemplate | None:
    return (
        await session.execute(
            select(CouponTemplate).where(
                CouponTemplate.store_id == store_id, CouponTemplate.key == key
            )
        )
    ).scalar_one_or_none()


async def get_template(session: AsyncSession, *, store_id: int, key: str) -> CouponTemplate:
    template = await _template(session, store_id, key)
    if template is None:
        raise NotFound(
            f"store {store_id} has no coupon template {key!r} "
            f"(see `ulak coupons templates --store {store_id}`)"
        )
    return template


async def missing_templates(session: AsyncSession, *, store_id: int, keys: set[str]) -> list[str]:
    """The keys among `keys` that are no coupon template of the store."""
    if not keys:
        return []
    found = await session.execute(
        select(CouponTemplate.key).where(
            CouponTemplate.store_id == store_id, CouponTemplate.key.in_(keys)
        )
    )
    return sorted(keys - set(found.scalars()))


async def list_templates(session: AsyncSession, *, store_id: int) -> list[TemplateOut]:
    available = dict(
        (
            await session.execute(
                select(Coupon.template_id, func.count())
                .where(Coupon.store_id == store_id, IS_AVAILABLE)
                .group_by(Coupon.template_id)
            )
        ).all()
    )
    templates = (
        await session.execute(
            select(CouponTemplate)
            .where(CouponTemplate.store_id == store_id)
            .order_by(CouponTemplate.key)
        )
    ).scalars()
    return [_template_out(t, int(available.get(t.id, 0))) for t in templates]


def _template_out(template: CouponTemplate, available: int) -> TemplateOut:
    return TemplateOut.model_validate(
        {
            "key": template.key,
            "kind": template.kind,
            "amount": template.amount,
            "minimum_order": template.minimum_order,
            "validity_days": template.validity_days,
            "prefix": template.prefix,
            "source": template.source,
            "available": available,
        }
    )


async def set_template(
    session: AsyncSession, *, store_id: int, key: str, change: TemplateChange, now: datetime
) -> TemplateOut:
    """Create a coupon template or change what `change` gives. Codes already issued keep
    the value they were issued with."""
    template = await _template(session, store_id, key)
    if template is None:
        if change.kind is None or change.amount is None:
            raise Invalid(f"a new coupon template needs a kind and an amount ({key!r})")
        template = CouponTemplate(
            store_id=store_id,
            key=key,
            validity_days=30,
            source="generated",
            prefix="",
            minimum_order=None,
            created_at=now,
        )
        session.add(template)
    for field, value in change.model_dump(exclude_none=True).items():
        setattr(template, field, value)
    if change.minimum_order is not None and change.minimum_order == 0:
        template.minimum_order = None
    if template.kind == "percent" and template.amount > 100:
        raise Invalid(f"a percent coupon takes at most 100 % off, not {template.amount}")
    template.updated_at = now
    await session.flush()
    available = await session.scalar(
        select(func.count()).where(Coupon.template_id == template.id, IS_AVAILABLE)
    )
    return _template_out(template, int(available or 0))


async def issue_coupon(
    session: AsyncSession,
    *,
    store_id: int,
    template_key: str,
    customer_id: int,
    currency: str,
    now: datetime,
    enrollment_id: int | None = None,
    step: int | None = None,
    journey_key: str | None = None,
) -> Coupon:
    """Issue a single-use code of the template to the customer: a new random one, or the
    oldest code of the shop's pool. A code is never issued twice: a made code is new by
    the store's unique constraint (a collision draws again), and a pool code is taken
    under a row lock (PostgreSQL: SKIP LOCKED, so issuers never wait for each other)."""
    template = await get_template(session, store_id=store_id, key=template_key)
    issued: dict[str, Any] = {
        "status": "issued",
        "kind": template.kind,
        "amount": template.amount,
        "currency": currency,
        "minimum_order": template.minimum_order,
        "customer_id": customer_id,
        "enrollment_id": enrollment_id,
        "step": step,
        "journey_key": journey_key,
        "issued_at": now,
        "expires_at": now + timedelta(days=template.validity_days),
    }
    if template.source == "pool":
        query = (
            select(Coupon)
            .where(IS_AVAILABLE, Coupon.template_id == template.id)
            .order_by(Coupon.id)
            .limit(1)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        coupon = (await session.execute(query)).scalar_one_or_none()
        if coupon is None:
            raise CouponPoolEmpty(store_id=store_id, template=template.key)
        for field, value in issued.items():
            setattr(coupon, field, value)
        await session.flush()
        return coupon
    for _ in range(MAX_TRIES):
        code = new_code(template.prefix)
        values = {
            "store_id": store_id,
            "template_id": template.id,
            "code": code,
            "code_key": code_key(code),
            **issued,
            "order_id": None,
            "redeemed_at": None,
            "created_at": now,
        }
        id_ = (await session.execute(_insert_new_code(session), values)).scalar_one_or_none()
        if id_ is not None:
            notes(session)(INSERTED).append((Coupon, id_))
            return attach_row(session, Coupon, id_, values)
    raise RuntimeError(f"{MAX_TRIES} random codes in a row were taken: is the alphabet broken?")


def _insert_new_code(session: AsyncSession) -> Any:
    # Only a taken code is passed over; a second coupon for the same step still fails.
    table = table_of(Coupon)
    if is_postgres(session):
        return (
            postgresql.insert(table)
            .on_conflict_do_nothing(index_elements=["store_id", "code_key"])
            .returning(table.c.id)
        )
    return (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["store_id", "code_key"])
        .returning(table.c.id)
    )


async def coupon_of_enrollment(session: AsyncSession, *, enrollment_id: int) -> Coupon | None:
    """The coupon an enrollment was issued last, for its later messages."""
    # Without autoflush: the step runner asks this at the start of an enrollment's run, and
    # it flushed the previous enrollment's message and changes each time, where the batch
    # is meant to flush once (see `messages.service.create_email`); a coupon is flushed as
    # it is issued, so none is pending here. `bench/stages.py --profile steps`: this query
    # was a quarter of the step runner's own time, most of it that flush.
    with session.no_autoflush:
        found = await session.execute(_ENROLLMENT_COUPON, {"enrollment_id": enrollment_id})
    return found.scalar_one_or_none()


# Built once: asked for each email a journey with a coupon step sends, and building it
# each time cost ~0.25 ms of CPU more than running it (bench/RESULTS.md).
_ENROLLMENT_COUPON = (
    select(Coupon)
    .where(Coupon.enrollment_id == bindparam("enrollment_id"))
    .order_by(Coupon.step.desc())
    .limit(1)
)


def coupon_view(coupon: Coupon, *, locale: str, timezone: str) -> dict[str, Any]:
    """The coupon as templates see it: `value` is written for the message's language
    (%10 in Turkish, 10% in English, 50,00 ₺); the amounts and dates take the filters
    every template uses (`money`, `date`)."""
    currency = coupon.currency or "TRY"
    fmt = Formatter(locale=locale, timezone=timezone, currency=currency)
    value = fmt.percent(coupon.amount) if coupon.kind == "percent" else fmt.money(coupon.amount)
    view = {
        "code": coupon.code,
        "value": value,
        "kind": coupon.kind,
        "amount": coupon.amount,
        "currency": currency,
        "minimum_order": coupon.minimum_order,
        "expires_at": coupon.expires_at,
    }
    return {k: v for k, v in view.items() if v is not None}


async def redeem_codes(
    session: AsyncSession, *, store_id: int, codes: Iterable[str], order_id: str, at: datetime
) -> list[Coupon]:
    """An order used these codes: each of the store's coupons among them is redeemed by it
    (the first order that used a code keeps it). A pool code the shop gave out itself is
    redeemed too, so ulak never issues it afterwards."""
    keys = {code_key(code) for code in codes if code.strip()}
    if not keys:
        return []
    coupons = list(
        (
            await session.execute(
                select(Coupon).where(
                    Coupon.store_id == store_id,
                    Coupon.code_key.in_(keys),
                    Coupon.status != "redeemed",
                )
            )
        ).scalars()
    )
    for coupon in coupons:
        coupon.status = "redeemed"
        coupon.order_id = order_id
        coupon.redeemed_at = at
    await session.flush()
    return coupons


async def find_coupon(
    session: AsyncSession, *, store_id: int, code: str, now: datetime
) -> CouponOut:
    """One of the store's codes, for the shop's checkout; another store's is not found."""
    row = (
        await session.execute(
            select(Coupon, CouponTemplate.key)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
            .where(Coupon.store_id == store_id, Coupon.code_key == code_key(code))
        )
    ).first()
    if row is None:
        raise NotFound(f"no coupon {code!r} in this store")
    coupon, template = row
    message_id = None
    if coupon.enrollment_id is not None and coupon.step is not None:
        message_id = await first_message_after(
            session, enrollment_id=coupon.enrollment_id, step=coupon.step
        )
    customer = None
    if coupon.customer_id is not None:
        found = await surviving_customer(session, store_id=store_id, customer_id=coupon.customer_id)
        if found is not None:
            customer = CouponCustomer(id=found.external_id, email=found.email)
    return CouponOut.model_validate(
        {
            "code": coupon.code,
            "status": coupon.status,
            "template": template,
            "kind": coupon.kind,
            "amount": coupon.amount,
            "currency": coupon.currency,
            "minimum_order": coupon.minimum_order,
            "issued_at": coupon.issued_at,
            "expires_at": coupon.expires_at,
            "expired": coupon.expires_at is not None and coupon.expires_at <= now,
            "customer": customer,
            "journey": coupon.journey_key,
            "message_id": message_id,
            "order_id": coupon.order_id,
            "redeemed_at": coupon.redeemed_at,
        }
    )


def parse_codes(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The codes of a pool file, with their line numbers, and the problems found: one code
    a line, or CSV with a `code` column (other columns are ignored)."""
    text = text.removeprefix("\ufeff")  # spreadsheets save a byte-order mark
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    header = [cell.strip().lower() for cell in re.split(r"[,;\t]", first)]
    rows: list[tuple[int, str]] = []
    if "code" in header or len(header) > 1:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t") if len(header) > 1 else csv.excel
        reader = csv.reader(io.StringIO(text), dialect)
        columns = [cell.strip().lower() for cell in next(reader, [])]
        if "code" not in columns:
            return [], [(1, 'a CSV file needs a column named "code"')]
        at = columns.index("code")
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((reader.line_num, cells[at].strip() if at < len(cells) else ""))
    else:
        rows = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    codes: list[tuple[int, str]] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, code in rows:
        if not _POOL_CODE.match(code):
            problems.append(
                (line, f"invalid code {code!r}: use up to 64 letters, digits, '-', '_' or '.'")
            )
        elif code_key(code) in seen:
            problems.append((line, f"duplicate of line {seen[code_key(code)]}: {code}"))
        else:
            seen[code_key(code)] = line
            codes.append((line, code))
    return codes, problems


async def import_pool(
    session: AsyncSession, *, store_id: int, template_key: str, text: str, now: datetime
) -> ImportReport:
    """Add a file's codes to a pool template. All or nothing: a file with any bad line
    imports nothing, and the report names each line. Codes the pool already has are
    passed over, so importing the same file twice adds nothing."""
    template = await get_template(session, store_id=store_id, key=template_key)
    if template.source != "pool":
        raise Invalid(
            f"coupon template {template_key!r} makes its own codes; to issue codes from a "
            f"pool, first run `ulak coupons set-template {template_key} --store {store_id} "
            "--source pool`"
        )
    codes, problems = parse_codes(text)
    known: dict[str, tuple[int, str]] = {}
    keys = [code_key(code) for _, code in codes]
    for start in range(0, len(keys), 500):
        rows = await session.execute(
            select(Coupon.code_key, Coupon.template_id, CouponTemplate.key)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
            .where(Coupon.store_id == store_id, Coupon.code_key.in_(keys[start : start + 500]))
        )
        known.update({key: (template_id, owner) for key, template_id, owner in rows.all()})
    new, already = [], 0
    for line, code in codes:
        found = known.get(code_key(code))
        if found is None:
            new.append(code)
        elif found[0] == template.id:
            already += 1
        else:
            problems.append((line, f"{code} is already a code of coupon template {found[1]!r}"))
    if problems:
        return ImportReport(added=0, already=already, problems=sorted(problems))
    await insert_rows(
        session,
        Coupon,
        [
            {
                "store_id": store_id,
                "template_id": template.id,
                "code": code,
                "code_key": code_key(code),
                "status": "available",
                "created_at": now,
            }
            for code in new
        ],
    )
    return ImportReport(added=len(new), already=already, problems=[])


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    """On a customer merge: the absorbed profile's coupons become the survivor's."""
    await session.execute(
        update(Coupon).where(Coupon.customer_id == from_customer).values(customer_id=to_customer)
    )

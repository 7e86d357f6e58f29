"""The outbox: messages are rendered when a journey's send step runs, and leave later."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Integer,
    Select,
    Text,
    TextClause,
    Update,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.consent.service import recipient_type_of, refusal
from ulak.customers.models import Customer
from ulak.customers.privacy import ERASED
from ulak.db import Note, UTCDateTime, is_postgres, new_object, notes, table_of
from ulak.errors import Invalid, NotFound
from ulak.events.inbox import inserting_events_about
from ulak.journeys.switch import DISABLED, sending_ranks
from ulak.messages import policing
from ulak.messages.models import IS_QUEUED, IS_SENDING, Message, TemplateOverride
from ulak.messages.rendering import (
    SHOP_ALERT,
    SHOP_ALERTS,
    TEMPLATE_NAME,
    Brand,
    RenderedEmail,
    check_template_source,
    render_email,
    resolve_locale,
    sample_context,
    shipped_reads,
    shipped_templates,
    source_reads,
    template_variables,
)
from ulak.messages.sms import check_sms_source, is_sms_template, shipped_sms_templates
from ulak.offload import Offload
from ulak.policy.service import Postpone, Skip
from ulak.preferences.topics import turned_off, turned_off_among, turned_off_reason
from ulak.stores.models import Store
from ulak.suppressions.reports import ENHANCED_STATUS, classify
from ulak.suppressions.service import suppressed_among, suppression_of
from ulak.suppressions.verp import tag_of
from ulak.web.links import page_links
from ulak.webhooks.queue import enqueuing


def brand_of(store: Store) -> Brand:
    return Brand(
        store_name=store.name,
        locale=store.locale,
        timezone=store.timezone,
        currency=store.currency,
        logo_url=store.logo_url,
        brand_color=store.brand_color,
        postal_address=store.postal_address,
        contact_email=store.contact_email,
        contact_phone=store.contact_phone,
        website_url=store.website_url,
    )


def _unsubscribe_signer(store: Store) -> URLSafeSerializer:
    return URLSafeSerializer(store.link_secret, salt="unsubscribe")


def unsubscribe_url(base_url: str, store: Store, customer_id: int) -> str:
    token = _unsubscribe_signer(store).dumps({"s": store.id, "c": customer_id})
    return f"{base_url}/u/{store.id}/{token}"


# The subject of an unsubscribe request by mail: this word, then the link's token.
UNSUBSCRIBE_SUBJECT = "unsubscribe"


def unsubscribe_mailto(store: Store, customer_id: int) -> str:
    """RFC 2369's mailto for List-Unsubscribe: the store's sender address (a mailbox the
    shop owns and reads, since customers answer it), the subject naming the customer by
    the same signed token as the link. Whoever reads that mailbox, the shop or ulak's
    inbound listener, acts on it through `customer_of_unsubscribe_subject`. The token's
    alphabet (URL-safe base64 and dots) needs no escaping in a mailto URL."""
    token = _unsubscribe_signer(store).dumps({"s": store.id, "c": customer_id})
    return f"mailto:{store.sender_email}?subject={UNSUBSCRIBE_SUBJECT}%20{token}"


def customer_of_unsubscribe_subject(store: Store, subject: str) -> int:
    """The customer an unsubscribe request by mail names ("unsubscribe <token>", maybe
    behind a reply's "Re: "); NotFound for any other subject or a forged token."""
    word, _, token = subject.strip().rpartition(" ")
    if not word.lower().endswith(UNSUBSCRIBE_SUBJECT) or not token:
        raise NotFound("this is not an unsubscribe request")
    return customer_of_unsubscribe_token(store, token)


def customer_of_unsubscribe_token(store: Store, token: str) -> int:
    try:
        payload = _unsubscribe_signer(store).loads(token)
    except BadSignature as error:
        raise NotFound("this unsubscribe link is not valid") from error
    if not isinstance(payload, dict) or payload.get("s") != store.id:
        raise NotFound("this unsubscribe link is not valid")
    return int(payload["c"])


# A store's template overrides, asked once per message.
OVERRIDES: Note[dict[tuple[int, str, tuple[str, ...]], dict[str, str]]] = Note(
    "messages.overrides", dict
)


async def overrides_for(
    session: AsyncSession, *, store_id: int, locale: str, names: tuple[str, ...]
) -> dict[str, str]:
    # Asked once per message: remembered for the rest of the transaction.
    memo = notes(session)(OVERRIDES)
    key = (store_id, locale, names)
    if key not in memo:
        memo[key] = await _overrides(session, store_id=store_id, locale=locale, names=names)
    return memo[key]


async def _overrides(
    session: AsyncSession, *, store_id: int, locale: str, names: tuple[str, ...]
) -> dict[str, str]:
    rows = await session.execute(
        select(TemplateOverride.name, TemplateOverride.source).where(
            TemplateOverride.store_id == store_id,
            TemplateOverride.locale == locale,
            TemplateOverride.name.in_(names),
        )
    )
    return {name: source for name, source in rows.all()}


async def missing_templates(
    session: AsyncSession, *, store_id: int, names: Iterable[str]
) -> list[str]:
    """Which of these templates the store cannot send in its own language: neither shipped
    nor a template of the store's own (`ulak journeys validate --store` and `apply` refuse a
    journey that names one, rather than failing each customer's message at run time)."""
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    wanted = sorted(set(names) - set(shipped_templates()) - set(shipped_sms_templates()))
    if not wanted:
        return []
    own = await _overrides(
        session,
        store_id=store_id,
        locale=resolve_locale(store.locale, store.locale),
        names=tuple(wanted),
    )
    return [name for name in wanted if name not in own]


async def templates_reading(
    session: AsyncSession, *, store_id: int | None, templates: Iterable[str], names: Collection[str]
) -> dict[str, frozenset[str]]:
    """The templates among `templates` that read any of `names` (a coupon, products to
    buy), with those they read: shipped in any language, or the store's own version in any
    language (either may be the one a customer gets)."""
    wanted = sorted(set(templates))
    found = {name: shipped_reads(name, names) for name in wanted}
    if store_id is not None and wanted:
        rows = await session.execute(
            select(TemplateOverride.name, TemplateOverride.source).where(
                TemplateOverride.store_id == store_id, TemplateOverride.name.in_(wanted)
            )
        )
        for name, source in rows.all():
            found[name] |= source_reads(source, names)
    return {name: reads for name, reads in found.items() if reads}


async def store_templates(session: AsyncSession, *, store_id: int) -> list[tuple[str, str]]:
    """The store's own templates (new ones and its versions of shipped ones): (name, locale)."""
    rows = await session.execute(
        select(TemplateOverride.name, TemplateOverride.locale)
        .where(TemplateOverride.store_id == store_id)
        .order_by(TemplateOverride.name, TemplateOverride.locale)
    )
    return [(name, locale) for name, locale in rows.all()]


async def store_sms_sources(
    session: AsyncSession, *, store_id: int, names: Iterable[str]
) -> dict[str, dict[str, str]]:
    """The store's own versions of these SMS templates, by language."""
    wanted = sorted(n for n in set(names) if is_sms_template(n))
    rows = await session.execute(
        select(TemplateOverride.locale, TemplateOverride.name, TemplateOverride.source).where(
            TemplateOverride.store_id == store_id, TemplateOverride.name.in_(wanted)
        )
    )
    found: dict[str, dict[str, str]] = {}
    for locale, name, source in rows.all():
        found.setdefault(locale, {})[name] = source
    return found


async def set_template_override(
    session: AsyncSession, *, store_id: int, name: str, locale: str, source: str, clock: Clock
) -> None:
    """Save a store's own version of a template, or a template of its own under a new name,
    once it compiled and rendered a sample order within the same bounds every email has: a
    template that fails, loops or grows without end is refused here rather than at each
    customer's email."""
    if not TEMPLATE_NAME.match(name) or name in SHOP_ALERTS:
        raise Invalid(
            f"invalid template name {name!r}: use lowercase letters, digits and _"
            + (f" ({name} is ulak's own)" if name in SHOP_ALERTS else "")
        )
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    if is_sms_template(name):
        check_sms_source(source, name=name, brand=brand_of(store))
    else:
        check_template_source(source, name=name)
        _check_email_sample(store, name, locale, source)
    row = (
        await session.execute(
            select(TemplateOverride).where(
                TemplateOverride.store_id == store_id,
                TemplateOverride.name == name,
                TemplateOverride.locale == locale,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = TemplateOverride(store_id=store_id, name=name, locale=locale)
        session.add(row)
    row.source = source
    row.updated_at = clock.now()
    await session.flush()


def _check_email_sample(store: Store, name: str, locale: str, source: str) -> None:
    render_email(
        "order_confirmation" if name == "layout" else name,
        locale=locale,
        brand=brand_of(store),
        context={**sample_context(name), "store": brand_of(store).__dict__},
        overrides={name: source},
        unsubscribe_url="https://example.com/u/sample",
    )


async def reset_template_override(
    session: AsyncSession, *, store_id: int, name: str, locale: str | None
) -> int:
    """Remove a store's own version of a template (in one locale, or all); the shipped one
    is used again from the next message on. Returns how many were removed."""
    query = delete(TemplateOverride).where(
        TemplateOverride.store_id == store_id, TemplateOverride.name == name
    )
    if locale is not None:
        query = query.where(TemplateOverride.locale == locale)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0))


class Renders:
    """The emails a batch renders, in a helper process (`ulak.offload`).

    Deferred (a batch's fast path), a render starts when the send step runs and the batch
    goes on; `finish` fills the messages in before the batch commits, so rendering one
    email overlaps the database work of the next. Otherwise (a batch re-run row by row,
    where a failure must land on its own row) each render is awaited where it starts.
    """

    def __init__(self, offload: Offload, *, deferred: bool) -> None:
        self.offload = offload
        self.deferred = deferred
        self._pending: list[tuple[Message, asyncio.Future[RenderedEmail]]] = []

    async def render(self, message: Message, work: Callable[[], RenderedEmail]) -> None:
        if not self.deferred:
            _fill(message, await self.offload.run(work))
            return
        self._pending.append((message, asyncio.ensure_future(self.offload.run(work))))

    async def finish(self) -> None:
        """Wait for every render started, and fill its message in."""
        pending, self._pending = self._pending, []
        try:
            for message, rendered in pending:
                _fill(message, await rendered)
        finally:
            for _, rendered in pending:
                rendered.cancel()
            # Collect what the cancelled or failed renders raised, so nothing is left
            # unretrieved.
            await asyncio.gather(*(r for _, r in pending), return_exceptions=True)


def _fill(message: Message, rendered: RenderedEmail) -> None:
    message.subject = rendered.subject
    message.preheader = rendered.preheader
    message.html = rendered.html
    message.text = rendered.text


async def template_sources(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    template: str,
    channel: str = "email",
) -> tuple[str, dict[str, str]]:
    """The language a customer's message is rendered in and the store's own sources of it
    (an email's with its layout)."""
    locale = resolve_locale(customer.locale, store.locale)
    names = (template, "layout") if channel == "email" else (template,)
    shipped = shipped_templates() if channel == "email" else shipped_sms_templates()
    overrides = await overrides_for(session, store_id=store.id, locale=locale, names=names)
    if template not in overrides and template not in shipped:
        # A template of the store's own that exists only in the store's language: the
        # message goes out in that language rather than not at all.
        locale = resolve_locale(store.locale, store.locale)
        overrides = await overrides_for(session, store_id=store.id, locale=locale, names=names)
    return locale, overrides


async def variables_of(
    session: AsyncSession, *, store: Store, customer: Customer, template: str
) -> frozenset[str]:
    """What the template this customer's email would be rendered from reads (the store's
    version when it has one), for values computed only when read."""
    locale, overrides = await template_sources(
        session, store=store, customer=customer, template=template
    )
    return template_variables(template, locale, overrides)


async def create_email(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    enrollment_id: int | None,
    step: int,
    template: str,
    legal_class: str,
    context: dict[str, Any],
    base_url: str,
    clock: Clock,
    renders: Renders,
    skip: str | None = None,
    topic: str | None = None,
) -> Message:
    """Queue one email, rendered by `renders` before the caller's transaction commits; with
    `skip`, keep it as skipped for that reason instead (so the outbox shows what was not
    sent, and why)."""
    now = clock.now()
    brand = brand_of(store)
    locale, overrides = await template_sources(
        session, store=store, customer=customer, template=template
    )
    unsubscribe = (
        unsubscribe_url(base_url, store, customer.id) if legal_class == "commercial" else None
    )
    message = _queued(
        store,
        customer_id=customer.id,
        to=customer.email or "",
        enrollment_id=enrollment_id,
        step=step,
        template=template,
        locale=locale,
        legal_class=legal_class,
        now=now,
    )
    message.topic = topic
    refused = (
        refusal(customer, "email", merchant_opt_out=store.merchant_opt_out)
        if legal_class == "commercial"
        else None
    )
    if refused is None and topic is not None:
        refused = await turned_off(session, customer_id=customer.id, channel="email", topic=topic)
    if refused is None and customer.email:
        found = await suppression_of(
            session, store_id=store.id, channel="email", address=customer.email
        )
        refused = found.says() if found is not None and found.stops(legal_class) else None
    if not customer.email:
        message.status = "skipped"
        message.last_error = "the customer has no email address"
    elif refused is not None:
        # Kept, to say why she got nothing, but not rendered: a special day or a win-back
        # reaches every customer, and most may not have consented.
        message.status = "skipped"
        message.last_error = refused
        session.add(message)
        return message
    elif skip is not None:
        message.status = "skipped"
        message.last_error = skip
    session.add(message)
    await renders.render(
        message,
        partial(
            render_email,
            template,
            locale=locale,
            brand=brand,
            context={
                **context,
                "store": brand.__dict__,
                "links": page_links(
                    base_url,
                    store,
                    customer_id=customer.id,
                    order_id=_order_id(context),
                    at=now,
                ),
            },
            overrides=overrides,
            unsubscribe_url=unsubscribe,
            preferences_url=(
                page_links(
                    base_url, store, customer_id=customer.id, order_id=None, at=now
                ).preferences
                if unsubscribe is not None
                else None
            ),
        ),
    )
    # Not flushed here: the batch's one flush inserts its messages together, rendered
    # (a flush per message was 60 % of the step runner's own CPU, measured with
    # `bench/stages.py --profile "run steps"`). The unique (enrollment, step) is checked
    # then, or at the end of the enrollment's savepoint when the batch runs row by row.
    return message


def _order_id(context: Mapping[str, Any]) -> str | None:
    order = context.get("order")
    value = order.get("order_id") if isinstance(order, Mapping) else None
    return str(value) if value is not None else None


def _queued(
    store: Store,
    *,
    customer_id: int | None,
    to: str,
    enrollment_id: int | None,
    step: int,
    template: str,
    locale: str,
    legal_class: str,
    now: datetime,
) -> Message:
    """A message due now, its content filled in by its render."""
    domain = store.sender_email.rpartition("@")[2] or "ulak.invalid"
    return new_object(
        Message,
        {
            "store_id": store.id,
            "customer_id": customer_id,
            "enrollment_id": enrollment_id,
            "step": step,
            "channel": "email",
            "template": template,
            "locale": locale,
            "legal_class": legal_class,
            "to_address": to,
            "subject": "",
            "preheader": "",
            "html": "",
            "text": "",
            "message_id_header": f"<{secrets.token_hex(12)}.{store.id}@{domain}>",
            "status": "queued",
            "send_after": now,
            "attempts": 0,
            "created_at": now,
        },
    )


# A shop hears of a template of its own that stops its emails, or of a coupon pool that ran
# dry, at most this often.
SHOP_ALERT_EVERY = timedelta(days=1)
SHOP_ALERT_LOCKS = 0x616C7274  # the advisory-lock space of alerts, per store


async def alert_shop_of_template(
    session: AsyncSession,
    *,
    store: Store,
    template: str,
    reason: str,
    clock: Clock,
    renders: Renders,
) -> Message | None:
    """Tell the shop, at its contact address, that its own version of a template fails on
    customers' emails, and how to fix it; at most once per SHOP_ALERT_EVERY."""
    now = clock.now()
    alert = {
        "template": template,
        "reason": reason,
        "store_id": store.id,
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    return await alert_shop(
        session,
        store=store,
        template=SHOP_ALERT,
        alert=alert,
        once_every=SHOP_ALERT_EVERY,
        clock=clock,
        renders=renders,
    )


async def alert_shop(
    session: AsyncSession,
    *,
    store: Store,
    template: str,
    alert: dict[str, Any],
    clock: Clock,
    renders: Renders,
    once_every: timedelta | None = None,
    enrollment_id: int | None = None,
    step: int = 0,
) -> Message | None:
    """Queue one of ulak's own emails to the shop's contact address (`template`, one of
    SHOP_ALERTS, shows `alert`). With `once_every`, none is queued when the store had one
    of this template within that time. The alert is ulak's own email: no override of the
    store's changes it, so a broken layout cannot stop it too."""
    now = clock.now()
    if once_every is not None:
        if is_postgres(session):
            # Workers failing the same store's emails at once would each find no alert yet.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:kind, :store)"),
                {"kind": SHOP_ALERT_LOCKS, "store": store.id},
            )
        recent = await session.scalar(
            select(Message.id)
            .where(
                Message.customer_id.is_(None),  # ix_messages_customer
                Message.store_id == store.id,
                Message.template == template,
                Message.created_at > now - once_every,
            )
            .limit(1)
        )
        if recent is not None:
            return None
    locale = resolve_locale(store.locale, store.locale)
    brand = brand_of(store)
    message = _queued(
        store,
        customer_id=None,
        to=store.contact_email or store.sender_email,
        enrollment_id=enrollment_id,
        step=step,
        template=template,
        locale=locale,
        legal_class="informational",
        now=now,
    )
    session.add(message)
    await renders.render(
        message,
        partial(
            render_email,
            template,
            locale=locale,
            brand=brand,
            context={"alert": {**alert, "store_id": store.id}, "store": brand.__dict__},
        ),
    )
    await session.flush()
    return message


@dataclass(frozen=True)
class Claimed:
    """A message taken for delivery, with what the channel needs and nothing lazy."""

    id: int
    attempts: int
    to_address: str
    subject: str
    html: str
    text: str
    message_id_header: str
    created_at: datetime
    from_name: str
    from_address: str
    reply_to: str | None
    unsubscribe_url: str | None
    # The channel delivers it: "email", or "sms" (to_address an E.164 number, text the SMS).
    channel: str = "email"
    store_id: int = 0
    commercial: bool = False
    # individual | merchant: a gateway that filters commercial SMS through İYS asks which.
    recipient_type: str = "individual"
    unsubscribe_mailto: str | None = None
    auto_submitted: bool = False
    # The message's signed tag (`suppressions.verp`): in its X-Ulak-Message header, and in
    # its envelope sender when a bounce domain is set.
    tag: str = ""
    return_path: str | None = None


def reply_address(store: Store) -> str | None:
    """Where the customer's answer goes: the store's reply-to, else its contact address
    (the one the emails' footer shows); none when that is the sender itself."""
    address = store.reply_to or store.contact_email
    return address if address and address != store.sender_email else None


def _claimable(
    *where: ColumnElement[bool] | TextClause, postgres: bool
) -> Select[Message, Store, Customer | None]:
    """Claimable messages with their store and customer, oldest due first, `:limit` of them
    (locked, skipping those another worker holds, on PostgreSQL)."""
    query = (
        select(Message, Store, Customer)
        .join(Store, Store.id == Message.store_id)
        # Outer: a message to the shop itself has no customer.
        .outerjoin(Customer, Customer.id == Message.customer_id)
        .where(*where)
        .order_by(Message.send_after)
        .limit(bindparam("limit", type_=Integer()))
    )
    return query.with_for_update(skip_locked=True, of=Message) if postgres else query


# The due messages' query, built once: building it on every claim was a sixth of the
# claim's CPU (`bench/stages.py --profile "send messages"`).
_DUE = _claimable(IS_QUEUED, Message.send_after <= bindparam("now"), postgres=False)
_DUE_POSTGRES = _claimable(IS_QUEUED, Message.send_after <= bindparam("now"), postgres=True)


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    base_url: str,
    max_attempts: int,
    claimer: int,
    taken_back: ColumnElement[bool],
) -> list[Claimed]:
    """Take up to `limit` due messages for the sender `claimer`, under a lease.

    Also taken: the `sending` messages the caller says are no longer in anyone's hands
    (`taken_back`: their sender is gone, or their claim was lost; see `Sender`). Their
    earlier delivery may have reached the customer: it is counted (`interrupted_attempts`).

    The sending policy decides here, at send time (`policy/`): a commercial message without
    consent for its channel (never given, or taken back since) or to a marketplace relay
    address is skipped with the reason; one over a frequency cap or outside its channel's
    sending hours goes back to the queue until its moment (`held_reason`, `held_until`).
    A message to an address the store's suppression list stops is skipped too (one query
    for the batch).
    """

    postgres = is_postgres(session)
    # Two queries, each answered from its partial index: as one OR, SQLite scanned the
    # whole table once the orphan condition was added (measured: a third of the capacity).
    stale = _claimable(IS_SENDING, taken_back, postgres=postgres)
    rows: list[tuple[Message, Store, Customer | None]] = [
        (m, s, c) for m, s, c in (await session.execute(stale, {"limit": limit})).all()
    ]
    if len(rows) < limit:
        due = _DUE_POSTGRES if postgres else _DUE
        taken = await session.execute(due, {"now": now, "limit": limit - len(rows)})
        rows += [(m, s, c) for m, s, c in taken.all()]
    # A journey switched off since its message was queued sends nothing more (the switch-off
    # skips the queued ones too; this catches a message queued by a step that ran while it
    # was being switched off, and a journey applied with `enabled: false`).
    # One read of the batch's journeys serves that and the policy's priorities.
    ranks = await sending_ranks(
        session, enrollment_ids={m.enrollment_id for m, _, _ in rows if m.enrollment_id}
    )
    stopped = {enrollment for enrollment, rank in ranks.items() if not rank.enabled}
    # The sending policy: consent, relay addresses, frequency caps, quiet hours.
    verdicts, competitors = await policing.decisions(
        session, [r for r in rows if r[0].enrollment_id not in stopped], ranks=ranks, now=now
    )
    rows += competitors
    suppressed = await suppressed_among(
        session, ((m.store_id, m.channel, m.to_address) for m, _, _ in rows)
    )
    # Topics the customers turned off (`preferences/`): one query, none without topics.
    topics_off = await turned_off_among(
        session,
        (
            (m.customer_id, m.channel, m.topic)
            for m, _, _ in rows
            if m.topic is not None and m.customer_id is not None
        ),
    )
    claimed = []
    for message, store, customer in rows:
        found = suppressed.get((message.store_id, message.channel, message.to_address.lower()))
        if found is not None and found.stops(message.legal_class):
            message.status = "skipped"
            message.lease_until = None
            message.claimed_by = None
            message.last_error = found.says()
            continue
        if message.topic is not None and (
            (message.customer_id, message.channel, message.topic) in topics_off
        ):
            message.status = "skipped"
            message.lease_until = None
            message.claimed_by = None
            message.last_error = turned_off_reason(message.topic, message.channel)
            continue
        if message.enrollment_id in stopped:
            message.status = "skipped"
            message.lease_until = None
            message.claimed_by = None
            message.last_error = DISABLED
            continue
        if message.status == "sending":
            message.interrupted_attempts += 1
            if message.attempts >= max_attempts:
                # Its sender stopped during delivery every time: give up.
                message.status = "failed"
                message.lease_until = None
                message.claimed_by = None
                message.last_error = (
                    f"gave up after {message.attempts} attempt(s): "
                    "the sender stopped during delivery"
                )
                continue
        verdict = verdicts.get(message.id)
        if isinstance(verdict, Skip):
            message.status = "skipped"
            message.lease_until = None
            message.claimed_by = None
            message.last_error = verdict.reason
            continue
        if isinstance(verdict, Postpone):
            policing.hold(message, verdict)
            continue
        if message.legal_class == "commercial" and message.released_at is None:
            message.released_at = now  # what the frequency caps count
        # No longer held (a reason is kept only while the message waits).
        message.held_reason = message.held_until = None
        # The customer a commercial message can be unsubscribed from.
        subscriber = customer if message.legal_class == "commercial" else None
        message.status = "sending"
        message.lease_until = now + lease
        message.claimed_by = claimer
        message.attempts += 1
        claimed.append(
            Claimed(
                id=message.id,
                attempts=message.attempts,
                to_address=message.to_address,
                subject=message.subject,
                html=message.html,
                text=message.text,
                message_id_header=message.message_id_header,
                created_at=message.created_at,
                from_name=store.sender_name,
                from_address=store.sender_email,
                reply_to=reply_address(store),
                unsubscribe_url=(
                    unsubscribe_url(base_url, store, subscriber.id) if subscriber else None
                ),
                channel=message.channel,
                store_id=message.store_id,
                commercial=message.legal_class == "commercial",
                recipient_type=recipient_type_of(customer) if customer else "individual",
                unsubscribe_mailto=(
                    unsubscribe_mailto(store, subscriber.id) if subscriber else None
                ),
                auto_submitted=message.legal_class != "commercial",
                tag=tag_of(message.id, store.link_secret),
            )
        )
    await session.flush()
    return claimed


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at 1 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class Delivered:
    """The outcome of one delivery attempt: `error` None is success; a permanent error is
    not retried."""

    message_id: int
    attempt: int
    error: str | None
    permanent: bool
    at: datetime
    # The SMTP reply code of a refusal at RCPT or DATA (a bounce).
    bounce_code: int | None = None
    # An SMS gateway's id of the message; not before this many seconds (throttling).
    provider_id: str | None = None
    retry_after: float | None = None


def recording_outcomes() -> Update:
    """The one statement that applies a delivery outcome to its message, for many rows at
    once (`outcome_rows`). It only counts for the attempt it belongs to, while that attempt
    is `sending`: applied again it changes nothing, and a sender whose lease ran out while
    it worked no longer decides the message's state (a later claim does)."""
    table = table_of(Message)
    return (
        update(table)
        .where(
            table.c.id == bindparam("message"),
            IS_SENDING,
            table.c.attempts == bindparam("attempt"),
        )
        .values(
            status=bindparam("status"),
            # An erased customer's message keeps no SMTP reply: it may name the address.
            last_error=case(
                # A literal, not a parameter: the sender runs this compiled, with its own.
                (table.c.to_address == literal_column(f"'{ERASED}'"), null()),
                else_=bindparam("error"),
            ),
            sent_at=func.coalesce(bindparam("sent_at", type_=UTCDateTime()), table.c.sent_at),
            send_after=func.coalesce(
                bindparam("send_after", type_=UTCDateTime()), table.c.send_after
            ),
            provider_id=func.coalesce(bindparam("provider_id"), table.c.provider_id),
            lease_until=null(),
            claimed_by=null(),
        )
    )


def outcome_rows(outcomes: Sequence[Delivered], *, max_attempts: int) -> list[dict[str, Any]]:
    """Parameters of `recording_outcomes`: under its guard the message's attempts equal the
    outcome's, so the new state follows from the outcome alone, without reading the row."""
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {
            "message": o.message_id,
            "attempt": o.attempt,
            "status": "sent",
            "error": None,
            "sent_at": None,
            "send_after": None,
            "provider_id": o.provider_id,
        }
        if o.error is None:
            row["sent_at"] = o.at
        elif o.permanent or o.attempt >= max_attempts:
            row.update(status="failed", error=f"gave up after {o.attempt} attempt(s): {o.error}")
        else:
            wait = max(backoff(o.attempt), timedelta(seconds=o.retry_after or 0))
            row.update(status="queued", error=o.error, send_after=o.at + wait)
        rows.append(row)
    return rows


async def record_outcomes(
    session: AsyncSession, outcomes: Sequence[Delivered], *, max_attempts: int
) -> None:
    """Apply delivery outcomes to their messages, in the caller's transaction, and report
    the bounces among them (`recording_bounces`) and the sent ones to the stores'
    webhooks (`sent_webhooks`)."""
    if outcomes:
        await session.execute(
            recording_outcomes(), outcome_rows(outcomes, max_attempts=max_attempts)
        )
        postgres = is_postgres(session)
        if bounces := bounce_rows(outcomes, max_attempts=max_attempts):
            await session.execute(recording_bounces(postgres=postgres), bounces)
        if sent := sent_ids(outcomes):
            await session.execute(sent_webhooks(postgres=postgres), {"ids": sent})


def sent_ids(outcomes: Sequence[Delivered]) -> list[int]:
    """The messages these outcomes sent (`sent_webhooks`' parameter)."""
    return [o.message_id for o in outcomes if o.error is None]


@functools.cache
def sent_webhooks(*, postgres: bool) -> Insert:
    """`message.sent` for the stores' subscribed webhook endpoints: one statement for the
    outcomes of a batch (`:ids`), written with them, whatever the number of messages or
    endpoints (none for a store without endpoints: the join finds nothing). Only a message
    this batch moved to `sent` is reported; one folded again after a crash is not
    reported twice (the event id is the message's). Messages to the shop are not
    reported. The payload is built by the database from the row: the sender does not
    hold it."""
    messages, customers = table_of(Message), table_of(Customer)
    ids = (
        messages.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger())))
        if postgres
        else messages.c.id.in_(bindparam("ids", expanding=True))
    )
    build = func.jsonb_build_object if postgres else func.json_object
    payload = build(
        literal_column("'message_id'"),
        messages.c.id,
        literal_column("'channel'"),
        messages.c.channel,
        literal_column("'template'"),
        messages.c.template,
        literal_column("'to'"),
        messages.c.to_address,
        literal_column("'customer'"),
        build(
            literal_column("'id'"),
            customers.c.external_id,
            literal_column("'email'"),
            customers.c.email,
            literal_column("'phone'"),
            customers.c.phone,
        ),
    )
    about = (
        select(
            messages.c.store_id.label("store_id"),
            messages.c.customer_id.label("customer_id"),
            literal_column("'msg_'").concat(cast(messages.c.id, Text)).label("event_id"),
            messages.c.sent_at.label("occurred_at"),
            payload.label("payload"),
        )
        .join(customers, customers.c.id == messages.c.customer_id)
        .where(ids, text("messages.status = 'sent'"))
    )
    return enqueuing(about, event_type="message.sent", postgres=postgres)


def recording_bounces(*, postgres: bool) -> Insert:
    """A `message.bounced` event for a delivery the SMTP server refused (`bounce_rows`),
    written with the outcome: the worker applies it like a DSN's (suppressions.apply).
    The message's store and customer come from its row, which the sender does not hold.
    Keyed by the message: one bounce per message, however many attempts it took."""
    messages = table_of(Message)
    about = select(messages.c.store_id, messages.c.customer_id).where(
        messages.c.id == bindparam("message")
    )
    return inserting_events_about(about, postgres=postgres)


def bounce_rows(outcomes: Sequence[Delivered], *, max_attempts: int) -> list[dict[str, Any]]:
    """Parameters of `recording_bounces`: a refusal at RCPT or DATA that ends the message,
    a 5xx at once, a 4xx once its retries ran out (a soft bounce); a policy refusal (5.7.x:
    spam filters, our own reputation) says nothing about the address and is left out."""
    rows = []
    for o in outcomes:
        if o.bounce_code is None or o.error is None:
            continue
        if not (o.permanent or o.attempt >= max_attempts):
            continue
        kind = classify(o.error, o.bounce_code)
        if kind not in ("hard", "soft"):
            continue
        found = ENHANCED_STATUS.search(o.error)
        rows.append(
            {
                "message": o.message_id,
                "key": f"derived:bounce:{o.message_id}",
                "type": "message.bounced",
                "source": "smtp",
                "at": o.at,
                "lane": o.message_id,  # only for a message to no customer (the shop)
                "customer": {},
                "data": {
                    "message_id": o.message_id,
                    "kind": kind,
                    "status": ".".join(found.groups()) if found else "",
                    "diagnostic": o.error[:1000],
                    "source": "smtp",
                },
            }
        )
    return rows


@dataclass(frozen=True)
class ReportedMessage:
    """A message a bounce or complaint names, as the suppression list needs it."""

    id: int
    store_id: int
    customer_id: int | None
    channel: str
    to_address: str
    link_secret: str  # its store's, which signs its tag


async def reported_message(
    session: AsyncSession, *, message_id: int, store_id: int | None = None
) -> ReportedMessage | None:
    """The message with this id (of this store, when given); None when there is none."""
    if not 0 < message_id < 2**63:
        return None
    query = (
        select(Message, Store.link_secret)
        .join(Store, Store.id == Message.store_id)
        .where(Message.id == message_id)
    )
    if store_id is not None:
        query = query.where(Message.store_id == store_id)
    row = (await session.execute(query)).first()
    if row is None:
        return None
    m, secret = row
    return ReportedMessage(m.id, m.store_id, m.customer_id, m.channel, m.to_address, secret)


async def delivered_since(
    session: AsyncSession, since: datetime, *, message: int, customer_id: int | None
) -> bool:
    """Whether another message to this message's customer, at the same address, was sent
    after `since` (ix_messages_customer: a customer has few messages)."""
    if customer_id is None:
        return False
    bounced = select(Message.to_address).where(Message.id == message).scalar_subquery()
    found = await session.scalar(
        select(Message.id)
        .where(
            Message.customer_id == customer_id,
            Message.status == "sent",
            Message.sent_at > since,
            Message.to_address == bounced,
        )
        .limit(1)
    )
    return found is not None


# What a report makes of a message that left: bounced (not delivered after all) or
# complained (delivered, and reported as spam).
_REPORTABLE = ("sent", "failed", "bounced")


async def mark_reported(
    session: AsyncSession, *, message_id: int, status: str, reason: str
) -> None:
    """Record on the message what a bounce or complaint said about it."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status.in_(_REPORTABLE))
        .values(status=status, last_error=reason[:2000])
    )


async def first_message_after(
    session: AsyncSession, *, enrollment_id: int, step: int
) -> int | None:
    """The id of an enrollment's first message to its customer after a step (a journey never
    jumps backwards, so the first one written after it); None when there is none yet."""
    return await session.scalar(
        select(Message.id)
        .where(
            Message.enrollment_id == enrollment_id,  # uq_messages_enrollment_id_step
            Message.step > step,
            Message.customer_id.is_not(None),  # not an alert to the shop
        )
        .order_by(Message.step)
        .limit(1)
    )


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    """On a customer merge: the absorbed profile's messages become the survivor's."""
    await session.execute(
        update(Message).where(Message.customer_id == from_customer).values(customer_id=to_customer)
    )


async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest queued message is due (ix_messages_due); None when none is."""
    due: datetime | None = await session.scalar(
        select(func.min(Message.send_after)).where(IS_QUEUED)
    )
    return due


@dataclass(frozen=True)
class OutboxEntry:
    """A message as a timeline shows it."""

    message_id_header: str
    enrollment_id: int | None
    customer_id: int | None
    channel: str
    template: str
    to: str
    subject: str
    status: str
    last_error: str | None
    created_at: datetime
    id: int = 0
    # An SMS: its text.
    text: str = ""


async def outbox_of(session: AsyncSession, *, store_id: int) -> list[OutboxEntry]:
    """Every message of a store, oldest first: for a small database (a simulation's)."""
    rows = await session.execute(
        select(Message).where(Message.store_id == store_id).order_by(Message.id)
    )
    return [
        OutboxEntry(
            message_id_header=m.message_id_header,
            enrollment_id=m.enrollment_id,
            customer_id=m.customer_id,
            channel=m.channel,
            template=m.template,
            to=m.to_address,
            subject=m.subject,
            status=m.status,
            last_error=m.last_error,
            created_at=m.created_at,
            id=m.id,
            text=m.text if m.channel == "sms" else "",
        )
        for m in rows.scalars()
    ]

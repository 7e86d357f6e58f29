"""SMS templates and the SMS a send step queues.

An SMS template is plain text (`templates/sms/{name}.{tr,en}.txt`), rendered by the same
sandboxed Jinja2 as an email's text part, under the same bounds (2 s of CPU, 1,000,000
characters). Its name ends in `_sms`: templates share one namespace with emails (a store's
own versions are `template_overrides` rows, set with `ulak templates set`), and the suffix
says which channel a name is for.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from ulak.messages.service import Renders

from ulak.clock import Clock
from ulak.consent.service import refusal
from ulak.customers.models import Customer
from ulak.messages.formatting import SHIPPED_LANGUAGES, Formatter
from ulak.messages.models import Message
from ulak.messages.rendering import (
    _FORMATTER_VAR,
    RENDER_CPU_SECONDS,
    TEMPLATE_NAME,
    Brand,
    TemplateError,
    _bounded,
    _compile,
    _cpu,
    _guard,
    _missing,
    _tidy_text,
    resolve_locale,
    sample_context,
)
from ulak.preferences.topics import turned_off
from ulak.sms.length import SmsLength, sms_length
from ulak.sms.service import LINK, TOKEN_LENGTH, shorten_links
from ulak.stores.models import Store

SMS_DIR = Path(__file__).parent / "templates" / "sms"
SMS_SUFFIX = "_sms"


def is_sms_template(name: str) -> bool:
    return name.endswith(SMS_SUFFIX)


@functools.cache
def shipped_sms_templates() -> tuple[str, ...]:
    return tuple(sorted({p.name.split(".")[0] for p in SMS_DIR.glob("*.*.txt")}))


@lru_cache(maxsize=64)
def _shipped(filename: str) -> str | None:
    path = SMS_DIR / filename
    return path.read_text(encoding="utf-8") if path.is_file() else None


def shipped_sms_source(name: str, locale: str) -> str | None:
    return _shipped(f"{name}.{resolve_locale(locale, locale)}.txt")


def _source(name: str, lang: str, overrides: Mapping[str, str]) -> tuple[str, str]:
    if not TEMPLATE_NAME.match(name) or not is_sms_template(name):
        raise TemplateError(f"unknown SMS template {name!r}", details={"template": name})
    if name in overrides:
        return overrides[name], f"{name} ({lang}, store override)"
    source = _shipped(f"{name}.{lang}.txt")
    if source is None:
        raise TemplateError(f"unknown SMS template {name!r}", details={"template": name})
    return source, f"{name}.{lang}.txt"


def render_sms(
    template: str,
    *,
    locale: str,
    brand: Brand,
    context: Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
) -> str:
    """One SMS text (its links not yet shortened), within the bounds of an email."""
    lang = resolve_locale(locale, brand.locale)
    source, label = _source(template, lang, overrides or {})
    variables: dict[str, Any] = {
        "store": dataclasses.asdict(brand),
        **context,
        **_missing(context),
        "locale": lang,
        _FORMATTER_VAR: Formatter(locale=lang, timezone=brand.timezone, currency=brand.currency),
    }
    compiled = _compile(source, label, "text")
    with _cpu.bound(RENDER_CPU_SECONDS):
        text = _guard(
            label, lambda: _bounded(compiled.root_render_func(compiled.new_context(variables)))
        )
    return _tidy_text(text)


# What an SMS template's sample shows beyond an email's (`sample_context`): a coupon the
# journey issued, and the special day it greets.
SAMPLE_COUPON = {"code": "DOGUMGUNU-AB3D-EF6H", "value": "%15", "expires_at": "2026-12-08"}
SAMPLE_DAY = {
    "type": "customer.special_day",
    "data": {"name_tr": "Anneler Günü", "name_en": "Mother's Day"},
}
SAMPLE_BRAND = Brand(
    store_name="Ayşe'nin Dükkanı",
    locale="tr",
    timezone="Europe/Istanbul",
    currency="TRY",
    logo_url=None,
    brand_color="#1f6feb",
    postal_address=None,
    contact_email="destek@aysenin.example",
    contact_phone="+90 212 555 00 00",
    website_url="https://aysenin.example",
)


def with_opt_out(text: str, *, locale: str, url: str) -> str:
    """A commercial SMS carries a free way to refuse more (Turkish law), whatever the
    template says: its last line links to the unsubscribe page for SMS."""
    from ulak.web.pages import texts_for

    return f"{text}\n{texts_for(locale)['sms_opt_out']}: {url}"


def sms_sample(
    name: str,
    *,
    locale: str,
    brand: Brand,
    overrides: Mapping[str, str],
    base_url: str,
    commercial: bool = False,
) -> tuple[str, SmsLength]:
    """A template's SMS on a sample customer, with its links as long as their short links
    will be (and the opt-out line a commercial one ends with), and its length."""
    context = {**sample_context(name), "coupon": SAMPLE_COUPON, "event": SAMPLE_DAY}
    context["store"] = dataclasses.asdict(brand)
    text = render_sms(name, locale=locale, brand=brand, context=context, overrides=overrides)
    if commercial:
        text = with_opt_out(text, locale=locale, url=f"{base_url}/u/sample")
    text = LINK.sub(f"{base_url}/s/{'x' * TOKEN_LENGTH}", text)
    return text, sms_length(text)


def check_sms_source(source: str, *, name: str, brand: Brand) -> None:
    """Render a store's SMS template on a sample in each language, as `ulak templates set`
    does before it saves one (with the bounds every SMS has)."""
    for lang in SHIPPED_LANGUAGES:
        sms_sample(name, locale=lang, brand=brand, overrides={name: source}, base_url="")


def length_warnings(
    names: Iterable[str],
    *,
    brand: Brand,
    overrides: Mapping[str, Mapping[str, str]],
    limit: int,
    base_url: str,
    commercial: Collection[str] = (),
) -> list[str]:
    """For `ulak journeys validate`: each SMS template whose sample takes more than `limit`
    segments, per language (`overrides`: the store's own sources by language), counting
    the opt-out line for the templates sent by commercial journeys (`commercial`)."""
    warnings = []
    for name in sorted(n for n in set(names) if is_sms_template(n)):
        for lang in SHIPPED_LANGUAGES:
            try:
                _, length = sms_sample(
                    name,
                    locale=lang,
                    brand=brand,
                    overrides=overrides.get(lang, {}),
                    base_url=base_url,
                    commercial=name in commercial,
                )
            except TemplateError:
                continue  # not in this language (`missing_templates` says so where it matters)
            if length.segments > limit:
                unit = "UCS-2 units" if length.encoding == "ucs2" else "septets"
                warnings.append(
                    f"template {name} ({lang}) takes {length.segments} SMS segments on a sample"
                    f" ({length.units} {unit}, {length.encoding}), over the limit of {limit}"
                )
    return warnings


async def create_sms(
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
    """Queue one SMS to the customer's phone (E.164), its links made short; with `skip`, or
    without a phone, or a commercial one without SMS consent, keep it as skipped with why."""
    from ulak.messages.service import brand_of, template_sources, unsubscribe_url

    now = clock.now()
    brand = brand_of(store)
    locale, overrides = await template_sources(
        session, store=store, customer=customer, template=template, channel="sms"
    )
    message = Message(
        store_id=store.id,
        customer_id=customer.id,
        enrollment_id=enrollment_id,
        step=step,
        channel="sms",
        template=template,
        locale=locale,
        legal_class=legal_class,
        to_address=customer.phone or "",
        subject="",
        preheader="",
        html="",
        text="",
        message_id_header=f"<{secrets.token_hex(12)}.{store.id}@sms.ulak.invalid>",
        status="queued",
        send_after=now,
        attempts=0,
        created_at=now,
        topic=topic,
    )
    session.add(message)
    refused = (
        refusal(customer, "sms", merchant_opt_out=store.merchant_opt_out)
        if legal_class == "commercial"
        else None
    )
    if refused is None and topic is not None:
        refused = await turned_off(session, customer_id=customer.id, channel="sms", topic=topic)
    reason = ("the customer has no phone number" if not customer.phone else refused) or skip
    if reason is not None:
        message.status = "skipped"
        message.last_error = reason
        if refused is not None or not customer.phone:
            return message  # kept, to say why, but not rendered
    # Rendered here, within the same bounds as in a helper: an SMS is a few hundred
    # characters (~0.1 ms), less than the round trip to a helper process, and its links
    # are made short in this transaction.
    text = render_sms(
        template,
        locale=locale,
        brand=brand,
        context={**context, "store": brand.__dict__},
        overrides=overrides,
    )
    if legal_class == "commercial":
        # Its opt-out link is made short below, like every link.
        opt_out = unsubscribe_url(base_url, store, customer.id) + "?c=sms"
        text = with_opt_out(text, locale=locale, url=opt_out)
    message.text = await shorten_links(
        session, store_id=store.id, text=text, base_url=base_url, clock=clock
    )
    return message

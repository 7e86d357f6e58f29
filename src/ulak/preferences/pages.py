"""The preference centre: `GET/POST /p/{store_id}/preferences/{token}`.

The customer's channels (email; SMS where the store sends SMS and the customer has a
phone) × topics, as checkboxes; order updates shown, never changeable. Saving sends
events through the inbox (the API process writes no table of the main database):
`consent.updated` for a channel turned on or off (a re-subscribe after an unsubscribe is a
grant), `preferences.updated` for topics. The two KVKK/GDPR buttons send
`privacy.requested`, which the worker records and tells the shop about.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from ulak.consent.service import consent_state
from ulak.customers.models import Customer
from ulak.customers.service import surviving_customer
from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.rendering import resolve_locale
from ulak.messages.service import unsubscribe_url
from ulak.preferences.service import topic_choices
from ulak.preferences.topics import LABELS, OPTIONAL_TOPICS, ORDER_UPDATES
from ulak.sms.service import sms_setup
from ulak.web.deps import AppClock, AppDatabase
from ulak.web.links import (
    BadLink,
    Link,
    RateLimit,
    csrf_ok,
    csrf_value,
    open_link,
)
from ulak.web.pages import error_page, render_page, store_page

router = APIRouter(include_in_schema=False)

SOURCE = "preferences_page"
# Requests to the shop from one link: a few an hour (each one emails the shop).
privacy_limit = RateLimit(3, 3600)

TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "İletişim tercihleriniz",
        "intro": (
            "{store} size hangi kanaldan, hangi konularda yazsın? Dilediğiniz zaman "
            "değiştirebilirsiniz."
        ),
        "email": "E-posta",
        "sms": "SMS",
        "channel_on": "{channel} ile kampanya ve haber almak istiyorum",
        "topics": "Konular",
        "always": "her zaman gönderilir",
        "save": "Tercihlerimi kaydet",
        "saved": "Tercihleriniz kaydedildi. Değişiklik birkaç saniye içinde geçerli olur.",
        "unsubscribe": "Tüm kampanya e-postalarından tek tıkla çıkmak için",
        "unsubscribe_link": "abonelikten çıkın",
        "privacy_title": "Kişisel verileriniz",
        "privacy_intro": (
            "KVKK ve GDPR kapsamında verilerinizin bir kopyasını ya da silinmesini "
            "isteyebilirsiniz. Başvurunuz mağazaya iletilir; mağaza size 30 gün içinde yanıt "
            "verir."
        ),
        "export": "Verilerimi gönderin",
        "erase": "Verilerimi silin",
        "requested_export": (
            "Başvurunuz mağazaya iletildi: verilerinizin bir kopyası size gönderilecek."
        ),
        "requested_erase": (
            "Başvurunuz mağazaya iletildi: mağaza kimliğinizi doğruladıktan sonra "
            "verilerinizi silecek."
        ),
        "forbidden": "Bu form gönderilemedi. Lütfen sayfayı e-postadaki bağlantıdan yeniden açın.",
        "too_many": "Çok fazla başvuru yapıldı. Lütfen daha sonra yeniden deneyin.",
        "no_channel": "Bu mağazada size ulaşabileceğimiz bir kanal kayıtlı değil.",
    },
    "en": {
        "title": "Your communication preferences",
        "intro": "How and about what should {store} write to you? You can change this at any time.",
        "email": "Email",
        "sms": "Text messages (SMS)",
        "channel_on": "Send me offers and news by {channel}",
        "topics": "Topics",
        "always": "always sent",
        "save": "Save my preferences",
        "saved": "Your preferences are saved. The change takes effect within seconds.",
        "unsubscribe": "To stop all marketing email in one click,",
        "unsubscribe_link": "unsubscribe",
        "privacy_title": "Your personal data",
        "privacy_intro": (
            "Under KVKK and the GDPR you can ask for a copy of your data or for its erasure. "
            "Your request goes to the shop, which answers you within 30 days."
        ),
        "export": "Send me my data",
        "erase": "Erase my data",
        "requested_export": (
            "Your request has reached the shop: a copy of your data will be sent to you."
        ),
        "requested_erase": (
            "Your request has reached the shop: it will erase your data once it has confirmed"
            " it is you."
        ),
        "forbidden": (
            "This form could not be sent. Please open the page again from the link in the email."
        ),
        "too_many": "Too many requests. Please try again later.",
        "no_channel": "The shop has no way to reach you on record.",
    },
}


def _texts(locale: str) -> dict[str, str]:
    return TEXTS.get(locale, TEXTS["en"])


async def _open(
    request: Request, database: Database, store_id: int, token: str, now: Any
) -> tuple[Link, Customer, dict[str, Any]]:
    """The link, its customer, and what the page shows of them (read in one snapshot)."""
    async with database.read() as session:
        link = await open_link(session, store_id=store_id, kind="preferences", token=token, now=now)
        subject = link.subject.get("c")
        customer = (
            await surviving_customer(session, store_id=link.store.id, customer_id=subject)
            if isinstance(subject, int)
            else None
        )
        if customer is None or customer.erased_at is not None:
            raise BadLink(expired=False, store=link.store)
        choices = await topic_choices(session, customer_id=customer.id)
        sms = await sms_setup(session, store_id=link.store.id)
        session.expunge(customer)
    channels = []
    if customer.email:
        channels.append("email")
    if customer.phone and sms.provider is not None:
        channels.append("sms")
    state = {
        channel: {
            "consent": (s := consent_state(customer, channel)) is not None
            and s.status == "granted",
            "topics": {t: choices.get((channel, t), True) for t in OPTIONAL_TOPICS},
        }
        for channel in channels
    }
    return link, customer, state


def _render(
    request: Request,
    link: Link,
    customer: Customer,
    state: dict[str, Any],
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    store = link.store
    locale = resolve_locale(customer.locale, store.locale)
    t = _texts(locale)
    labels = LABELS[locale] if locale in LABELS else LABELS["en"]
    base_url = request.app.state.settings.base_url
    context = store_page(store, locale) | {
        "t": t,
        "title": t["title"],
        "intro": t["intro"].format(store=store.name),
        "order_updates": labels[ORDER_UPDATES],
        "channels": [
            {
                "key": channel,
                "label": t[channel],
                "consent_label": t["channel_on"].format(channel=t[channel]),
                "consent": chosen["consent"],
                "topics": [
                    {"key": topic, "label": labels[topic], "on": on}
                    for topic, on in chosen["topics"].items()
                ],
            }
            for channel, chosen in state.items()
        ],
        "unsubscribe_url": (
            unsubscribe_url(base_url, store, customer.id) if customer.email else None
        ),
        "csrf": csrf_value(link),
        "notice": notice,
    }
    return render_page(request, "preferences/preferences.html", context, status_code=status_code)


@router.get("/p/{store_id}/preferences/{token}", response_class=HTMLResponse)
async def preferences_page(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    link, customer, state = await _open(request, database, store_id, token, clock.now())
    return _render(request, link, customer, state)


@router.post("/p/{store_id}/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    link, customer, state = await _open(request, database, store_id, token, clock.now())
    form = await request.form()
    locale = resolve_locale(customer.locale, link.store.locale)
    t = _texts(locale)
    csrf = form.get("csrf")
    if not csrf_ok(request, link, csrf if isinstance(csrf, str) else None):
        return error_page(
            request, locale=locale, message=t["forbidden"], status_code=403, brand=link.store.name
        )
    inbox: Inbox = request.app.state.inbox
    action = form.get("action")
    if action in ("export", "erase"):
        if not privacy_limit.allow(link.store.id, link.token):
            return error_page(
                request, locale=locale, message=t["too_many"], status_code=429,
                brand=link.store.name,
            )  # fmt: skip
        event = EventIn(type="privacy.requested", data={"kind": action, "source": SOURCE})
        await inbox.accept(link.store.id, [(0, event)], source="page", customer_id=customer.id)
        return _render(request, link, customer, state, notice=t[f"requested_{action}"])
    events, state = _changes(form, state, proof={"page": "preferences"})
    if events:
        await inbox.accept(
            link.store.id, list(enumerate(events)), source="page", customer_id=customer.id
        )
    return _render(request, link, customer, state, notice=t["saved"])


def _changes(
    form: FormData, state: dict[str, Any], *, proof: dict[str, str]
) -> tuple[list[EventIn], dict[str, Any]]:
    """The events that turn `state` into what the form says, and the state they make.
    Only the channels and topics the page showed count; an unchecked box is absent."""
    events: list[EventIn] = []
    topics: dict[str, dict[str, bool]] = {}
    wanted: dict[str, Any] = {}
    for channel, shown in state.items():
        consent = form.get(f"channel:{channel}") == "on"
        if consent != shown["consent"]:
            events.append(
                EventIn(
                    type="consent.updated",
                    data={
                        "channel": channel,
                        "status": "granted" if consent else "revoked",
                        "source": SOURCE,
                        "proof": proof,
                    },
                )
            )
        chosen = {t: form.get(f"topic:{channel}:{t}") == "on" for t in shown["topics"]}
        changed = {t: on for t, on in chosen.items() if on != shown["topics"][t]}
        if changed:
            topics[channel] = changed
        wanted[channel] = {"consent": consent, "topics": chosen}
    if topics:
        events.append(
            EventIn(type="preferences.updated", data={"topics": topics, "source": SOURCE})
        )
    return events, wanted

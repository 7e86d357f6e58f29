"""The survey page: `GET/POST /p/{store_id}/survey/{token}`.

The email's scale links here with `?score=N`. The GET only shows that score, chosen, with
a comment box and one button; nothing is recorded until the customer presses it (a POST).
Link scanners (Microsoft Safe Links, corporate gateways) open every link of an email,
and since a second answer replaces the first, a GET that recorded would keep the scanner's
last click (often the scale's top or bottom) instead of the customer's score.

The POST writes no table: it sends `survey.answered` through the inbox, and the worker
stores it (`surveys.service.record_answer`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.customers.service import surviving_customer
from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.rendering import resolve_locale
from ulak.surveys.schemas import ANSWERED, COMMENT_LIMIT, SCALES
from ulak.surveys.service import answer_of, asked_kind, survey_setup
from ulak.web.deps import AppClock, AppDatabase
from ulak.web.links import BadLink, Link, RateLimit, csrf_ok, csrf_value, open_link
from ulak.web.pages import render_page, store_page

router = APIRouter(include_in_schema=False)

# Answers per link and hour: a person changes their mind a few times; a leaked link
# posted in a loop would flood the inbox and, with unhappy scores, the shop's alerts.
ANSWERS_PER_HOUR = 10


def _answers_limit(request: Request) -> RateLimit:
    """The app's own limit (one per app, so two apps in a process do not share it)."""
    state = request.app.state
    limit: RateLimit | None = getattr(state, "survey_answers_limit", None)
    if limit is None:
        limit = state.survey_answers_limit = RateLimit(ANSWERS_PER_HOUR, 3600)
    return limit


TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "Siparişiniz nasıldı?",
        "question_csat": "{store} siparişinizden ne kadar memnun kaldınız?",
        "question_nps": "{store} mağazasını bir arkadaşınıza tavsiye etme olasılığınız nedir?",
        "low_csat": "1 = Hiç memnun değilim",
        "high_csat": "5 = Çok memnunum",
        "low_nps": "0 = Hiç olası değil",
        "high_nps": "10 = Kesinlikle tavsiye ederim",
        "score": "Puanınız",
        "comment": "Eklemek istedikleriniz (isteğe bağlı)",
        "comment_hint": "En fazla 2000 karakter. Mağaza yorumunuzu okuyacak.",
        "send": "Yanıtımı gönder",
        "previous": (
            "Bu sipariş için daha önce {score} puan verdiniz. "
            "Yeni yanıtınız öncekinin yerine geçer."
        ),
        "thanks_title": "Teşekkür ederiz!",
        "thanks_body": "Yanıtınızı aldık: {score} / {top}.",
        "thanks_change": "Fikrinizi değiştirirseniz bu sayfadan yeniden yanıtlayabilirsiniz.",
        "change": "Yanıtımı değiştir",
        "bad_score": "Lütfen {low} ile {top} arasında bir puan seçin.",
        "long_comment": "Yorumunuz en fazla 2000 karakter olabilir.",
        "bad_form": (
            "Bu form gönderilemedi. Lütfen e-postadaki bağlantıyı yeniden açıp tekrar deneyin."
        ),
        "order": "Sipariş",
        "too_many": "Çok fazla yanıt gönderildi. Lütfen bir süre sonra yeniden deneyin.",
    },
    "en": {
        "title": "How was your order?",
        "question_csat": "How satisfied are you with your order from {store}?",
        "question_nps": "How likely are you to recommend {store} to a friend?",
        "low_csat": "1 = Very dissatisfied",
        "high_csat": "5 = Very satisfied",
        "low_nps": "0 = Not at all likely",
        "high_nps": "10 = Extremely likely",
        "score": "Your score",
        "comment": "Anything you would like to add (optional)",
        "comment_hint": "Up to 2000 characters. The shop will read it.",
        "send": "Send my answer",
        "previous": "You gave this order {score} before. A new answer replaces it.",
        "thanks_title": "Thank you!",
        "thanks_body": "We have your answer: {score} / {top}.",
        "thanks_change": "If you change your mind, you can answer again on this page.",
        "change": "Change my answer",
        "bad_score": "Please choose a score from {low} to {top}.",
        "long_comment": "Your comment can be at most 2000 characters.",
        "bad_form": "This form could not be sent. Please open the link in the email and try again.",
        "order": "Order",
        "too_many": "Too many answers were sent. Please try again later.",
    },
}


def texts(locale: str) -> dict[str, str]:
    return TEXTS.get(locale, TEXTS["en"])


def _score(value: Any, kind: str) -> int | None:
    """The score `value` names on the scale of `kind`, else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    # ASCII digits only: "²" is a digit to `str.isdigit` but not to `int`.
    if not (value.isascii() and value.isdigit()) or len(value) > 2:
        return None
    score = int(value)
    return score if score in SCALES[kind] else None


async def _open(
    database: Database, clock: Clock, store_id: int, token: str
) -> tuple[Link, Customer, str, int | None]:
    """The link, its customer, the scale the order's survey asks on and the order's
    earlier score.

    The scale is the one the email asked on (recorded when its `survey.due` was applied;
    the link signs only the customer and the order): a store that switches from CSAT to
    NPS while emails are out must not take an old email's "5, very satisfied" for an NPS
    5, a detractor. An order asked before that record existed takes its earlier answer's
    scale, else the store's setting now."""
    async with database.read() as session:
        link = await open_link(
            session, store_id=store_id, kind="survey", token=token, now=clock.now()
        )
        customer_id, order_id = link.subject.get("c"), link.subject.get("o")
        if not isinstance(customer_id, int) or not isinstance(order_id, str):
            raise BadLink(expired=False, store=link.store)
        customer = await surviving_customer(session, store_id=store_id, customer_id=customer_id)
        if customer is None or customer.erased_at is not None:
            raise BadLink(expired=False, store=link.store)
        session.expunge(customer)
        previous = await answer_of(session, store_id=store_id, order_id=order_id)
        kind = await asked_kind(session, store_id=store_id, order_id=order_id)
        if kind is None:
            kind = (
                previous.kind
                if previous is not None
                else (await survey_setup(session, store_id=store_id)).kind
            )
        return link, customer, kind, previous.score if previous is not None else None


def _page(
    request: Request,
    link: Link,
    customer: Customer,
    kind: str,
    *,
    chosen: int | None,
    comment: str,
    previous: int | None,
    done: bool = False,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    store = link.store
    locale = resolve_locale(customer.locale, store.locale)
    t = texts(locale)
    scale = SCALES[kind]
    context = store_page(store, locale) | {
        "t": t,
        "kind": kind,
        "scale": list(scale),
        "question": t[f"question_{kind}"].format(store=store.name),
        "low": t[f"low_{kind}"],
        "high": t[f"high_{kind}"],
        "chosen": chosen,
        "comment": comment,
        "comment_limit": COMMENT_LIMIT,
        "previous": previous,
        "order_id": link.subject["o"],
        "csrf": csrf_value(link),
        "done": done,
        "problem": problem,
        "thanks": t["thanks_body"].format(score=chosen, top=scale.stop - 1) if done else "",
    }
    return render_page(request, "surveys/survey.html", context, status_code=status_code)


@router.get("/p/{store_id}/survey/{token}", response_class=HTMLResponse)
async def survey_page(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    """The scale, with the score the email's link chose (`?score=N`) already picked."""
    link, customer, kind, previous = await _open(database, clock, store_id, token)
    given = request.query_params.get("score")
    chosen = _score(given, kind) if given is not None else None
    problem = None
    if given is not None and chosen is None:
        scale = SCALES[kind]
        problem = texts(resolve_locale(customer.locale, link.store.locale))["bad_score"].format(
            low=scale.start, top=scale.stop - 1
        )
    return _page(
        request,
        link,
        customer,
        kind,
        chosen=chosen if chosen is not None else previous,
        comment="",
        previous=previous,
        problem=problem,
        status_code=422 if problem else 200,
    )


@router.post("/p/{store_id}/survey/{token}", response_class=HTMLResponse)
async def answer_survey(
    request: Request, store_id: int, token: str, database: AppDatabase, clock: AppClock
) -> HTMLResponse:
    """Record the answer: `survey.answered` through the inbox."""
    link, customer, kind, previous = await _open(database, clock, store_id, token)
    form = await request.form()
    t = texts(resolve_locale(customer.locale, link.store.locale))
    submitted = form.get("csrf")
    if not csrf_ok(request, link, submitted if isinstance(submitted, str) else None):
        return _page(
            request,
            link,
            customer,
            kind,
            chosen=previous,
            comment="",
            previous=previous,
            problem=t["bad_form"],
            status_code=403,
        )
    chosen = _score(form.get("score"), kind)
    raw_comment = form.get("comment")
    comment = raw_comment.strip() if isinstance(raw_comment, str) else ""
    problem = None
    if chosen is None:
        scale = SCALES[kind]
        problem = t["bad_score"].format(low=scale.start, top=scale.stop - 1)
    elif len(comment) > COMMENT_LIMIT or "\x00" in comment:
        problem = t["long_comment"]
    if problem is not None:
        return _page(
            request,
            link,
            customer,
            kind,
            chosen=chosen,
            comment=comment[: COMMENT_LIMIT * 2],
            previous=previous,
            problem=problem,
            status_code=422,
        )
    if not _answers_limit(request).allow(link.store.id, token):
        return _page(
            request,
            link,
            customer,
            kind,
            chosen=chosen,
            comment=comment,
            previous=previous,
            problem=t["too_many"],
            status_code=429,
        )
    inbox: Inbox = request.app.state.inbox
    event = EventIn(
        type=ANSWERED,
        data={
            "order_id": link.subject["o"],
            "kind": kind,
            "score": chosen,
            "comment": comment or None,
        },
    )
    await inbox.accept(link.store.id, [(0, event)], source="page", customer_id=customer.id)
    return _page(request, link, customer, kind, chosen=chosen, comment="", previous=None, done=True)

"""Satisfaction surveys: a store's settings, the survey an order's delivery schedules,
answers (a second one replaces the first), what a detractor's answer sets off, and the
NPS/CSAT scores over time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.coupons.service import install_default_templates, missing_templates
from ulak.customers.models import Customer
from ulak.errors import Invalid
from ulak.events.inbox import event_rows, insert_events
from ulak.events.schemas import EventIn
from ulak.messages.service import Renders, alert_shop
from ulak.offload import Offload
from ulak.stores.models import Store
from ulak.stores.service import get_store
from ulak.surveys.models import SurveyAnswer, SurveyRequest, SurveySettings
from ulak.surveys.schemas import (
    DUE,
    MAKE_GOOD,
    SCALES,
    SurveyAnsweredData,
    detractor,
    promoter,
)
from ulak.timers import service as timers

DEFAULT_KIND = "csat"
DEFAULT_DELAY_DAYS = 2
# The coupon template a detractor's make-good code comes from (a default of every store).
MAKE_GOOD_COUPON = "make-good"
# ulak's own email to the shop about an unhappy answer (one of `SHOP_ALERTS`).
SHOP_ALERT_SURVEY = "shop_alert_survey"
# A survey is asked in the customer's daytime: a moment outside [10:00, 20:00) local time
# moves to the next 10:00.
ASK_FROM, ASK_UNTIL = time(10), time(20)


@dataclass(frozen=True)
class SurveySetup:
    store_id: int
    kind: str
    delay_days: int
    make_good: bool


async def survey_setup(session: AsyncSession, *, store_id: int) -> SurveySetup:
    row = await session.get(SurveySettings, store_id)
    if row is None:
        return SurveySetup(store_id, DEFAULT_KIND, DEFAULT_DELAY_DAYS, False)
    return SurveySetup(store_id, row.kind, row.delay_days, row.make_good)


async def set_survey_setup(
    session: AsyncSession,
    *,
    store_id: int,
    clock: Clock,
    kind: str | None = None,
    delay_days: int | None = None,
    make_good: bool | None = None,
) -> SurveySetup:
    """Change what is given; the rest stays."""
    store = await get_store(session, store_id)
    if kind is not None and kind not in SCALES:
        raise Invalid(f"a survey's kind is csat (1-5) or nps (0-10), not {kind!r}")
    if delay_days is not None and not 0 <= delay_days <= 60:
        raise Invalid("the delay after delivery is 0 to 60 days")
    now = clock.now()
    row = await session.get(SurveySettings, store_id)
    if row is None:
        row = SurveySettings(
            store_id=store_id,
            kind=DEFAULT_KIND,
            delay_days=DEFAULT_DELAY_DAYS,
            make_good=False,
            updated_at=now,
        )
        session.add(row)
    if kind is not None:
        row.kind = kind
    if delay_days is not None:
        row.delay_days = delay_days
    if make_good is not None:
        row.make_good = make_good
        if make_good and await missing_templates(
            session, store_id=store_id, keys={MAKE_GOOD_COUPON}
        ):
            # A store made before the template shipped.
            await install_default_templates(
                session, store_id=store_id, locale=store.locale, now=now, keys={MAKE_GOOD_COUPON}
            )
    row.updated_at = now
    await session.flush()
    return await survey_setup(session, store_id=store_id)


# ---------------------------------------------------------------------------------------------
# Asking


def ask_at(delivered_at: datetime, *, delay_days: int, zone: ZoneInfo) -> datetime:
    """When to ask about an order delivered at `delivered_at`: `delay_days` later, moved
    to the next 10:00 when that falls outside 10:00-20:00 in `zone`."""
    moment = (delivered_at + timedelta(days=delay_days)).astimezone(zone)
    if ASK_FROM <= moment.time() < ASK_UNTIL:
        return moment.astimezone(UTC)
    day = moment.date() if moment.time() < ASK_FROM else moment.date() + timedelta(days=1)
    return datetime.combine(day, ASK_FROM, tzinfo=zone).astimezone(UTC)


async def order_delivered(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    order_id: str,
    delivered_at: datetime,
) -> None:
    """An order was delivered: a `survey.due` timer (`timers.fire_due` derives the event
    the `satisfaction-survey` journey starts on) at the store's delay, in the customer's
    daytime. A second delivery report of the order moves it; the journey asks once per
    order."""
    setup = await survey_setup(session, store_id=store.id)
    zone = ZoneInfo(customer.timezone or store.timezone)
    await timers.set_timer(
        session,
        store_id=store.id,
        kind=DUE,
        subject=order_id,
        customer_id=customer.id,
        due_at=ask_at(delivered_at, delay_days=setup.delay_days, zone=zone),
        data={"order_id": order_id, "kind": setup.kind},
    )


async def survey_asked(
    session: AsyncSession, *, store_id: int, data: dict[str, Any], asked_at: datetime
) -> None:
    """A `survey.due` was applied: keep the scale its email asks on (`data["kind"]`; the
    email shows CSAT when it names none). The first one of an order stays: the journey
    asks once per order, so a later `survey.due` (a second delivery report) sends
    nothing."""
    order_id = data.get("order_id")
    if not isinstance(order_id, str) or not 0 < len(order_id) <= 200:
        return
    if await session.get(SurveyRequest, (store_id, order_id)) is not None:
        return
    kind = data.get("kind")
    session.add(
        SurveyRequest(
            store_id=store_id,
            order_id=order_id,
            kind=kind if isinstance(kind, str) and kind in SCALES else DEFAULT_KIND,
            asked_at=asked_at,
        )
    )
    await session.flush()


async def asked_kind(session: AsyncSession, *, store_id: int, order_id: str) -> str | None:
    """The scale the order's survey was asked on, None when none was recorded."""
    request = await session.get(SurveyRequest, (store_id, order_id))
    return request.kind if request is not None else None


# ---------------------------------------------------------------------------------------------
# Answers


async def answer_of(session: AsyncSession, *, store_id: int, order_id: str) -> SurveyAnswer | None:
    answer: SurveyAnswer | None = await session.scalar(
        select(SurveyAnswer).where(
            SurveyAnswer.store_id == store_id, SurveyAnswer.order_id == order_id
        )
    )
    return answer


async def record_answer(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    data: SurveyAnsweredData,
    answered_at: datetime,
    clock: Clock,
) -> SurveyAnswer:
    """Store a `survey.answered` (replacing the order's earlier answer). A detractor's
    answer alerts the shop at once with the score and comment, and, when the store gives
    make-good codes, derives `survey.make_good` (once per order)."""
    answer = await answer_of(session, store_id=store.id, order_id=data.order_id)
    if answer is None:
        answer = SurveyAnswer(store_id=store.id, order_id=data.order_id, replaced=0, alerts=[])
        session.add(answer)
    else:
        answer.replaced += 1
    answer.customer_id = customer.id
    answer.kind = data.kind
    answer.score = data.score
    answer.comment = data.comment
    answer.answered_at = answered_at
    await session.flush()
    if detractor(data.kind, data.score):
        alert = await _alert_shop(
            session, store=store, customer=customer, answer=answer, clock=clock
        )
        answer.alerts = [*answer.alerts, alert]
        setup = await survey_setup(session, store_id=store.id)
        if setup.make_good:
            derived = EventIn(
                id=f"derived:{MAKE_GOOD}:{data.order_id}",
                type=MAKE_GOOD,
                occurred_at=answered_at,
                data={"order_id": data.order_id, "kind": data.kind, "score": data.score},
            )
            await insert_events(
                session,
                event_rows(
                    store.id, [derived], source="derived", now=clock.now(), customer_id=customer.id
                ),
            )
    return answer


async def _alert_shop(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    answer: SurveyAnswer,
    clock: Clock,
) -> int:
    """Queue the shop's alert; returns its outbox id."""
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    who = {
        "name": name or None,
        "email": customer.email,
        "phone": customer.phone,
        "id": customer.external_id,
        "ref": customer.external_id or customer.email,
    }
    scale = SCALES[answer.kind]
    # ulak's own short template, rendered here in the worker (a helper's round trip would
    # cost more than the render); one alert per answer, no time limit.
    message = await alert_shop(
        session,
        store=store,
        template=SHOP_ALERT_SURVEY,
        alert={
            "kind": answer.kind,
            "score": answer.score,
            "top": scale.stop - 1,
            "comment": answer.comment,
            "order_id": answer.order_id,
            "customer": {k: v for k, v in who.items() if v},
            "replaced": answer.replaced,
        },
        clock=clock,
        renders=Renders(Offload(0), deferred=False),
    )
    assert message is not None  # no time limit: always queued
    return message.id


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    await session.execute(
        update(SurveyAnswer)
        .where(SurveyAnswer.customer_id == from_customer)
        .values(customer_id=to_customer)
    )


# ---------------------------------------------------------------------------------------------
# Scores

Period = Literal["day", "week", "month"]

# The days scores are asked about: far enough for any shop's answers, near enough that a
# day's arithmetic (30 days before, the next day, a moment in a time zone) cannot leave
# the calendar (`date(1, 1, 5) - 29 days` raises OverflowError).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def check_day(day: date, name: str) -> date:
    """`day`, when scores can be asked about it; else `Invalid` naming the option."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise Invalid(
            f"{name} is a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}, "
            f"not {day.isoformat()}"
        )
    return day


def period_start(day: date, by: Period) -> date:
    if by == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if by == "month":
        return day.replace(day=1)
    return day


@dataclass
class _Tally:
    answers: int = 0
    total: int = 0
    detractors: int = 0
    passives: int = 0
    promoters: int = 0
    satisfied: int = 0

    def add(self, kind: str, score: int) -> None:
        self.answers += 1
        self.total += score
        if kind == "nps":
            if detractor(kind, score):
                self.detractors += 1
            elif promoter(kind, score):
                self.promoters += 1
            else:
                self.passives += 1
        elif score >= 4:
            self.satisfied += 1

    def nps(self) -> dict[str, Any]:
        share = (self.promoters - self.detractors) / self.answers if self.answers else None
        return {
            "answers": self.answers,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "nps": None if share is None else round(share * 100, 1),
        }

    def csat(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "satisfied": self.satisfied,
            "average": round(self.total / self.answers, 2) if self.answers else None,
            "satisfied_percent": (
                round(self.satisfied * 100 / self.answers, 1) if self.answers else None
            ),
        }


def _tallies(
    rows: Iterable[tuple[str, int, datetime]], *, by: Period, zone: ZoneInfo
) -> dict[str, tuple[_Tally, dict[date, _Tally]]]:
    tallies: dict[str, tuple[_Tally, dict[date, _Tally]]] = {
        "nps": (_Tally(), {}),
        "csat": (_Tally(), {}),
    }
    for kind, score, answered_at in rows:
        overall, periods = tallies[kind]
        overall.add(kind, score)
        start = period_start(answered_at.astimezone(zone).date(), by)
        periods.setdefault(start, _Tally()).add(kind, score)
    return tallies


async def scores(
    session: AsyncSession, *, store: Store, start: date, end: date, by: Period
) -> dict[str, Any]:
    """NPS (promoters % - detractors %, with the counts) and CSAT (the average, and the
    share satisfied: 4 or 5) of the answers given from `start` to `end` (both days
    included, in the store's time zone), in total and per day, week (from Monday) or
    month. An answer counts where it was last given (a replaced one is not counted)."""
    check_day(start, "from")
    check_day(end, "to")
    if end < start:
        raise Invalid("the end is before the start")
    if (end - start).days > 3660:
        raise Invalid("at most ten years at a time")
    zone = ZoneInfo(store.timezone)
    since = datetime.combine(start, time(), tzinfo=zone).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    rows = await session.execute(
        select(SurveyAnswer.kind, SurveyAnswer.score, SurveyAnswer.answered_at).where(
            SurveyAnswer.store_id == store.id,
            SurveyAnswer.answered_at >= since,
            SurveyAnswer.answered_at < until,
        )
    )
    tallies = _tallies(((k, s, a) for k, s, a in rows), by=by, zone=zone)
    nps_total, nps_periods = tallies["nps"]
    csat_total, csat_periods = tallies["csat"]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "by": by,
        "timezone": store.timezone,
        "nps": {
            **nps_total.nps(),
            "periods": [
                {"start": day.isoformat(), **tally.nps()}
                for day, tally in sorted(nps_periods.items())
            ],
        },
        "csat": {
            **csat_total.csat(),
            "periods": [
                {"start": day.isoformat(), **tally.csat()}
                for day, tally in sorted(csat_periods.items())
            ],
        },
    }

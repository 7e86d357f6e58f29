"""Satisfaction surveys through the app as a shopper and a shop meet them: the survey email
two days after delivery, its score links, the page that confirms, the answer stored (and
replaced), the shop's alert, the scores API; and the page's refusals (bad scores, CSRF,
forged, expired and other stores' links), with every comment escaped."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.support import StoreKey, dev_inbox, make_store, order_placed, text_of
from ulak.clock import FrozenClock
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.stores.service import get_store
from ulak.surveys.models import SurveyAnswer
from ulak.surveys.service import set_survey_setup
from ulak.web.links import page_url
from ulak.worker import Workers

DELIVERED_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the clock's start: 12:00 in Istanbul


def delivered(order_id: str = "1001") -> dict[str, Any]:
    return {
        "id": f"evt-delivered-{order_id}",
        "type": "order.delivered",
        "customer": {"id": "c-1042"},
        "data": {"order_id": order_id},
    }


async def post_events(client: httpx.AsyncClient, store: StoreKey, *events: Any) -> None:
    answer = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert answer.status_code == 202, answer.text


async def answers(db: Database) -> list[tuple[Any, ...]]:
    async with db.read() as session:
        rows = await session.execute(
            select(
                SurveyAnswer.store_id,
                SurveyAnswer.order_id,
                SurveyAnswer.kind,
                SurveyAnswer.score,
                SurveyAnswer.comment,
                SurveyAnswer.answered_at,
                SurveyAnswer.replaced,
            ).order_by(SurveyAnswer.id)
        )
        return [tuple(row) for row in rows]


async def answered_events(db: Database) -> int:
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "survey.answered")
        )
        return int(count or 0)


def survey_links(message: EmailMessage) -> dict[int, str]:
    """Each score's link in the email's plain text, as a mail client shows it."""
    text = text_of(message).replace("\r\n", "\n")
    found = re.findall(r"^(\d+): (http\S+\?score=\d+)$", text, re.M)
    return {int(n): url for n, url in found}


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match is not None, page
    return match[1]


async def survey_email(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    clock: FrozenClock,
) -> EmailMessage:
    """An order delivered, two days on: the survey email (the only one sent then)."""
    await post_events(client, store, order_placed(), delivered())
    await workers.drain()
    before = len(await dev_inbox(db))
    clock.set(DELIVERED_AT + timedelta(days=2) - timedelta(seconds=1))
    await workers.drain()
    assert len(await dev_inbox(db)) == before  # not a second early
    clock.set(DELIVERED_AT + timedelta(days=2))
    await workers.drain()
    mail = (await dev_inbox(db))[before:]
    assert [m["Subject"] for m in mail] == ["#1001 numaralı siparişiniz nasıldı?"]
    return mail[0]


def path_of(url: str) -> str:
    return url.split("ulak.test", 1)[1]


async def test_a_click_shows_the_score_and_the_confirmed_answer_is_stored_then_replaced(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    clock: FrozenClock,
) -> None:
    message = await survey_email(client, store, db, workers, clock)
    links = survey_links(message)
    assert sorted(links) == [1, 2, 3, 4, 5]  # CSAT, the store's default
    assert message["Auto-Submitted"] == "auto-generated"  # informational
    # The HTML carries the same links, as buttons.
    body = text_of(message, "html")
    for url in links.values():
        assert f'href="{html.escape(url)}"' in body

    # A click (or a link scanner's) shows the score chosen; nothing is recorded.
    page = await client.get(path_of(links[2]))
    assert page.status_code == 200
    assert re.search(r'value="2" required checked', page.text)
    assert len(re.findall(r" checked>", page.text)) == 1
    assert "Siparişiniz nasıldı?" in page.text
    for n in (1, 3, 4, 5):
        await client.get(path_of(links[n]))
    await workers.drain()
    assert await answered_events(db) == 0
    assert await answers(db) == []

    clock.travel(timedelta(minutes=5))
    answered_at = clock.now()
    sent = await client.post(
        path_of(links[2]),
        data={"csrf": csrf_of(page.text), "score": "2", "comment": "Kupa kırık geldi."},
    )
    assert sent.status_code == 200
    assert "Teşekkür ederiz!" in sent.text
    assert "Yanıtınızı aldık: 2 / 5." in sent.text
    # "Change my answer" opens the page without a score: the stored one is shown.
    change = re.search(r'<a href="([^"]+)">Yanıtımı değiştir</a>', sent.text)
    assert change is not None
    assert change[1] == path_of(links[2]).split("?")[0]
    await workers.drain()
    assert await answers(db) == [(store.id, "1001", "csat", 2, "Kupa kırık geldi.", answered_at, 0)]
    # A detractor: the shop is told at once, with the score and the comment.
    mail = await dev_inbox(db)
    alert = mail[-1]
    assert alert["Subject"] == "ulak: memnun olmayan bir anket yanıtı, 2/5 (Ayşe Yılmaz)"
    assert alert["To"] == "merhaba@dukkan.example"
    assert "Kupa kırık geldi." in text_of(alert)
    assert "Sipariş: 1001" in text_of(alert)

    # The page remembers the answer; a second one replaces it.
    clock.travel(timedelta(hours=1))
    remembered = await client.get(change[1])
    assert re.search(r'value="2" required checked', remembered.text)
    again = await client.get(path_of(links[5]))
    assert "Bu sipariş için daha önce 2 puan verdiniz." in again.text
    sent = await client.post(
        path_of(links[5]), data={"csrf": csrf_of(again.text), "score": "5", "comment": "  "}
    )
    assert sent.status_code == 200
    await workers.drain()
    assert await answers(db) == [(store.id, "1001", "csat", 5, None, clock.now(), 1)]
    # The journey had taken the first answer: the apology an hour after it, and no alert
    # for the happy second one.
    assert [m["Subject"] for m in (await dev_inbox(db))[len(mail) :]] == [
        "#1001 numaralı siparişiniz için özür dileriz"
    ]


async def test_the_page_keeps_the_emails_scale_after_the_store_switches(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    clock: FrozenClock,
) -> None:
    """A CSAT email out, then the store switches to NPS: the old email's "5, very
    satisfied" is a CSAT 5 (happy), not an NPS 5 (a detractor: an alert, an apology)."""
    message = await survey_email(client, store, db, workers, clock)
    links = survey_links(message)
    assert sorted(links) == [1, 2, 3, 4, 5]
    async with db.transaction() as session:
        await set_survey_setup(session, store_id=store.id, clock=clock, kind="nps")
    sent_before = len(await dev_inbox(db))

    page = await client.get(path_of(links[5]))
    assert page.status_code == 200
    assert re.search(r'value="5" required checked', page.text)
    # The CSAT question and its five scores, as in the email.
    assert "siparişinizden ne kadar memnun kaldınız?" in page.text
    assert re.findall(r'name="score" value="(\d+)"', page.text) == ["1", "2", "3", "4", "5"]
    # NPS scores are not on this survey's scale.
    assert (await client.get(f"{path_of(links[5]).split('?')[0]}?score=9")).status_code == 422

    clock.travel(timedelta(minutes=5))
    sent = await client.post(path_of(links[5]), data={"csrf": csrf_of(page.text), "score": "5"})
    assert sent.status_code == 200
    assert "Yanıtınızı aldık: 5 / 5." in sent.text
    await workers.drain()
    assert await answers(db) == [(store.id, "1001", "csat", 5, None, clock.now(), 0)]
    # A happy answer: no shop alert, no apology (the review request comes an hour later).
    assert (await dev_inbox(db))[sent_before:] == []


async def test_nps_stores_ask_on_0_to_10_and_refuse_other_scores(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    clock: FrozenClock,
) -> None:
    async with db.transaction() as session:
        await set_survey_setup(session, store_id=store.id, clock=clock, kind="nps")
    message = await survey_email(client, store, db, workers, clock)
    links = survey_links(message)
    assert sorted(links) == list(range(11))
    page = await client.get(path_of(links[0]))
    assert re.search(r'value="0" required checked', page.text)
    # A score off the scale: a friendly 422 that says which scores there are.
    base = path_of(links[0]).split("?")[0]
    for wrong in ("11", "-1", "abc", "7.5", ""):
        shown = await client.get(f"{base}?score={wrong}")
        assert shown.status_code == 422, wrong
        assert "Lütfen 0 ile 10 arasında bir puan seçin." in shown.text
        posted = await client.post(base, data={"csrf": csrf_of(page.text), "score": wrong})
        assert posted.status_code == 422
        assert "Lütfen 0 ile 10 arasında bir puan seçin." in posted.text
    # Digits that are not ASCII ("²" is a digit to Python's `isdigit`, "٣" an Arabic 3):
    # the same friendly 422, not a server error.
    for wrong in ("%C2%B2", "%D9%A3"):
        shown = await client.get(f"{base}?score={wrong}")
        assert shown.status_code == 422, wrong
        assert "Lütfen 0 ile 10 arasında bir puan seçin." in shown.text
    for wrong in ("²", "٣", "1²"):
        posted = await client.post(base, data={"csrf": csrf_of(page.text), "score": wrong})
        assert posted.status_code == 422, wrong
        assert "Lütfen 0 ile 10 arasında bir puan seçin." in posted.text
    posted = await client.post(
        base, data={"csrf": csrf_of(page.text), "score": "8", "comment": "x" * 2001}
    )
    assert posted.status_code == 422
    assert "en fazla 2000 karakter" in posted.text
    await workers.drain()
    assert await answered_events(db) == 0
    posted = await client.post(base, data={"csrf": csrf_of(page.text), "score": "10"})
    assert posted.status_code == 200
    await workers.drain()
    assert [(a[2], a[3]) for a in await answers(db)] == [("nps", 10)]


async def test_csat_refuses_a_7(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    url = await link_for(client, store, db, workers, clock)
    shown = await client.get(f"{url}?score=7")
    assert shown.status_code == 422
    assert "Lütfen 1 ile 5 arasında bir puan seçin." in shown.text
    # The shop's API refuses it too.
    answer = await client.post(
        "/v1/events",
        json={
            "type": "survey.answered",
            "customer": {"id": "c-1042"},
            "data": {"order_id": "1001", "kind": "csat", "score": 7},
        },
        headers=store.auth,
    )
    assert answer.status_code == 422
    assert "a csat score is 1 to 5, not 7" in answer.text


async def link_for(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    clock: FrozenClock,
    *,
    kind: Any = "survey",
) -> str:
    """A link (by default the survey's) to c-1042's order 1001, made now."""
    await post_events(client, store, order_placed())
    await workers.drain()
    async with db.read() as session:
        store_row = await get_store(session, store.id)
        customer = await find_customer(session, store_id=store.id, ref="c-1042")
        url = page_url(
            "http://ulak.test", store_row, kind, {"c": customer.id, "o": "1001"}, at=clock.now()
        )
    return path_of(url)


async def test_csrf_is_checked_on_every_answer(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    url = await link_for(client, store, db, workers, clock)
    page = await client.get(url)
    csrf = csrf_of(page.text)
    for data, headers in [
        ({"score": "3"}, {}),
        ({"score": "3", "csrf": "0" * 64}, {}),
        ({"score": "3", "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ({"score": "3", "csrf": csrf}, {"Origin": "https://evil.example"}),
    ]:
        refused = await client.post(url, data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        assert "Bu form gönderilemedi." in refused.text
    # Another link's field does not fit this one.
    clock.travel(timedelta(seconds=1))
    other = await link_for(client, store, db, workers, clock)
    assert other != url
    refused = await client.post(
        url, data={"score": "3", "csrf": csrf_of((await client.get(other)).text)}
    )
    assert refused.status_code == 403
    await workers.drain()
    assert await answered_events(db) == 0
    accepted = await client.post(
        url, data={"score": "3", "csrf": csrf}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert accepted.status_code == 200


async def test_forged_expired_other_kind_and_other_store_links_are_friendly_errors(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    url = await link_for(client, store, db, workers, clock)
    prefix, token = url.rsplit("/", 1)
    other = await make_store(db, clock, name="Başka Dükkan")
    cases = {
        "forged": f"{prefix}/{token[:-2]}xx",
        # Another customer's id in the payload, under the original signature.
        "altered payload": f"{prefix}/{altered(token)}",
        "another store's path": url.replace(f"/p/{store.id}/", f"/p/{other.id}/"),
        "no such store": url.replace(f"/p/{store.id}/", "/p/999999/"),
        "a review link": (await link_for(client, store, db, workers, clock, kind="review")).replace(
            "/review/", "/survey/"
        ),
    }
    for what, path in cases.items():
        tr = {"Accept-Language": "tr"}  # what a path naming no store is answered in
        for answer in (
            await client.get(f"{path}?score=3", headers=tr),
            await client.post(path, data={}, headers=tr),
        ):
            assert answer.status_code == 404, what
            assert "Bu bağlantı geçerli değil." in answer.text, what
            assert "Siparişiniz nasıldı?" not in answer.text
    clock.travel(timedelta(days=91))
    for answer in (await client.get(f"{url}?score=3"), await client.post(url, data={})):
        assert answer.status_code == 410
        assert "Bu bağlantının süresi doldu." in answer.text
    await workers.drain()
    assert await answered_events(db) == 0


def altered(token: str) -> str:
    payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["c"] += 1
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{encoded}.{signature}"


XSS = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quoted\""


async def test_a_comment_is_escaped_on_the_page_and_in_the_shops_alert(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    url = await link_for(client, store, db, workers, clock)
    page = await client.get(url)
    # The page shows a comment again when it refuses the form.
    refused = await client.post(
        url, data={"csrf": csrf_of(page.text), "score": "9", "comment": XSS}
    )
    assert refused.status_code == 422
    assert "<script>alert" not in refused.text
    assert "<img src=x" not in refused.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in refused.text
    posted = await client.post(url, data={"csrf": csrf_of(page.text), "score": "1", "comment": XSS})
    assert posted.status_code == 200
    await workers.drain()
    assert [a[4] for a in await answers(db)] == [XSS]
    (alert,) = [m for m in await dev_inbox(db) if m["Subject"].startswith("ulak:")]
    body = text_of(alert, "html")
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(" in body
    assert XSS in text_of(alert)  # the plain text part is text


async def test_scores_per_day_week_and_month(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    def answered(order: str, kind: str, score: int, at: str) -> dict[str, Any]:
        return {
            "id": f"a-{order}-{at}",
            "type": "survey.answered",
            "occurred_at": at,
            "customer": {"id": "c-1042"},
            "data": {"order_id": order, "kind": kind, "score": score},
        }

    await post_events(
        client,
        store,
        # Week of Monday 2 March (Istanbul, UTC+3).
        answered("n1", "nps", 10, "2026-03-02T08:00:00Z"),
        answered("n2", "nps", 9, "2026-03-03T08:00:00Z"),
        answered("n3", "nps", 8, "2026-03-03T09:00:00Z"),
        answered("n4", "nps", 3, "2026-03-04T08:00:00Z"),
        # Sunday 22:30 UTC is already Monday 9 March in Istanbul: the next week.
        answered("n5", "nps", 6, "2026-03-08T22:30:00Z"),
        answered("n6", "nps", 0, "2026-03-10T08:00:00Z"),
        # Answered 10, then 2: counts once, as its latest.
        answered("n7", "nps", 10, "2026-03-11T08:00:00Z"),
        answered("n7", "nps", 2, "2026-03-12T08:00:00Z"),
        # April: outside March.
        answered("n8", "nps", 10, "2026-04-01T08:00:00Z"),
        answered("c1", "csat", 5, "2026-03-02T08:00:00Z"),
        answered("c2", "csat", 4, "2026-03-02T09:00:00Z"),
        answered("c3", "csat", 3, "2026-03-02T10:00:00Z"),
        answered("c4", "csat", 1, "2026-03-09T08:00:00Z"),
        answered("c5", "csat", 2, "2026-03-09T09:00:00Z"),
    )
    await workers.drain()

    weekly = await client.get(
        "/v1/surveys/scores?from=2026-03-01&to=2026-03-31&by=week", headers=store.auth
    )
    assert weekly.status_code == 200, weekly.text
    assert weekly.json() == {
        "from": "2026-03-01",
        "to": "2026-03-31",
        "by": "week",
        "timezone": "Europe/Istanbul",
        "nps": {
            "answers": 7,
            "promoters": 2,
            "passives": 1,
            "detractors": 4,
            "nps": -28.6,
            "periods": [
                {
                    "start": "2026-03-02",
                    "answers": 4,
                    "promoters": 2,
                    "passives": 1,
                    "detractors": 1,
                    "nps": 25.0,
                },
                {
                    "start": "2026-03-09",
                    "answers": 3,
                    "promoters": 0,
                    "passives": 0,
                    "detractors": 3,
                    "nps": -100.0,
                },
            ],
        },
        "csat": {
            "answers": 5,
            "satisfied": 2,
            "average": 3.0,
            "satisfied_percent": 40.0,
            "periods": [
                {
                    "start": "2026-03-02",
                    "answers": 3,
                    "satisfied": 2,
                    "average": 4.0,
                    "satisfied_percent": 66.7,
                },
                {
                    "start": "2026-03-09",
                    "answers": 2,
                    "satisfied": 0,
                    "average": 1.5,
                    "satisfied_percent": 0.0,
                },
            ],
        },
    }
    daily = (
        await client.get(
            "/v1/surveys/scores?from=2026-03-03&to=2026-03-03&by=day", headers=store.auth
        )
    ).json()
    assert daily["nps"]["periods"] == [
        {
            "start": "2026-03-03",
            "answers": 2,
            "promoters": 1,
            "passives": 1,
            "detractors": 0,
            "nps": 50.0,
        }
    ]
    assert daily["csat"] == {
        "answers": 0,
        "satisfied": 0,
        "average": None,
        "satisfied_percent": None,
        "periods": [],
    }
    monthly = (
        await client.get(
            "/v1/surveys/scores?from=2026-03-01&to=2026-04-30&by=month", headers=store.auth
        )
    ).json()
    assert [(p["start"], p["answers"], p["nps"]) for p in monthly["nps"]["periods"]] == [
        ("2026-03-01", 7, -28.6),
        ("2026-04-01", 1, 100.0),
    ]
    # Only the store's own answers, only with its key.
    other = await make_store(db, FrozenClock())
    mine = await client.get("/v1/surveys/scores?from=2026-03-01&to=2026-03-31", headers=other.auth)
    assert mine.json()["nps"]["answers"] == 0
    assert (await client.get("/v1/surveys/scores")).status_code == 401
    bad = await client.get("/v1/surveys/scores?from=2026-03-31&to=2026-03-01", headers=store.auth)
    assert bad.status_code == 422
    assert (await client.get("/v1/surveys/scores?by=year", headers=store.auth)).status_code == 422
    # Days beyond 2000-2100 (whose arithmetic could leave the calendar): a clear 422.
    for query, message in (
        ("to=0001-01-05", "to is a day from 2000-01-01 to 2100-12-31, not 0001-01-05"),
        (
            "from=9999-12-31&to=9999-12-31",
            "to is a day from 2000-01-01 to 2100-12-31, not 9999-12-31",
        ),
        ("from=1999-12-31", "from is a day from 2000-01-01 to 2100-12-31, not 1999-12-31"),
    ):
        far = await client.get(f"/v1/surveys/scores?{query}", headers=store.auth)
        assert far.status_code == 422, query
        assert far.json() == {"error": {"code": "invalid", "message": message}}
    # The edges themselves are days to ask about (up to ten years at a time).
    for query in ("from=2000-01-01&to=2000-01-01", "from=2100-12-31&to=2100-12-31"):
        edge = await client.get(f"/v1/surveys/scores?{query}", headers=store.auth)
        assert edge.status_code == 200, edge.text
        assert edge.json()["nps"]["answers"] == 0


async def test_one_link_answers_at_most_ten_times_an_hour(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    url = await link_for(client, store, db, workers, clock)
    csrf = csrf_of((await client.get(url)).text)
    codes = [
        (await client.post(url, data={"csrf": csrf, "score": "1"})).status_code for _ in range(11)
    ]
    assert codes == [200] * 10 + [429]
    refused = await client.post(url, data={"csrf": csrf, "score": "1"})
    assert "Çok fazla yanıt gönderildi." in refused.text
    await workers.drain()
    assert await answered_events(db) == 10

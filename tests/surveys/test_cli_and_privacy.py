"""`ulak surveys settings` and `ulak surveys scores`, and what a KVKK/GDPR export and
erasure do with a customer's answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, order_placed, text_of, ulak_cli
from ulak.coupons.service import list_templates
from ulak.db import Database
from ulak.messages.models import Message
from ulak.surveys.models import SurveyAnswer
from ulak.worker import Workers


def answered(order: str, score: int, at: str, comment: str | None = None) -> dict[str, Any]:
    return {
        "id": f"a-{order}-{at}",
        "type": "survey.answered",
        "occurred_at": at,
        "customer": {"id": "c-1042", "email": "ayse@example.com"},
        "data": {"order_id": order, "kind": "nps", "score": score, "comment": comment},
    }


async def post(client: httpx.AsyncClient, store: StoreKey, *events: Any) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def test_settings_and_scores_commands(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, database_url: str
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}

    def cli(*args: str) -> Any:
        return asyncio.to_thread(ulak_cli, "surveys", *args, env=env)

    shown = await cli("settings", "--store", str(store.id), "--json")
    assert (shown.returncode, json.loads(shown.stdout)) == (
        0,
        {"store_id": store.id, "kind": "csat", "delay_days": 2, "make_good": False},
    )
    changed = await cli(
        "settings", "--store", str(store.id), "--kind", "nps", "--delay-days", "3", "--json"
    )
    assert json.loads(changed.stdout) == {
        "store_id": store.id,
        "kind": "nps",
        "delay_days": 3,
        "make_good": False,
    }
    made_good = await cli("settings", "--store", str(store.id), "--make-good")
    assert made_good.stdout.splitlines() == [
        f"store_id: {store.id}",
        "kind: nps",
        "delay_days: 3",
        "make_good: True",
    ]
    async with db.read() as session:
        keys = [t.key for t in await list_templates(session, store_id=store.id)]
    assert "make-good" in keys
    for bad, message in [
        (("--kind", "ces"), "a survey's kind is csat (1-5) or nps (0-10), not 'ces'"),
        (("--delay-days", "61"), "the delay after delivery is 0 to 60 days"),
    ]:
        refused = await cli("settings", "--store", str(store.id), *bad)
        assert refused.returncode == 2
        assert message in refused.stderr
    missing = await cli("settings", "--store", "999")
    assert (missing.returncode, "store 999 does not exist" in missing.stderr) == (2, True)

    await post(
        client,
        store,
        answered("1", 10, "2026-03-02T08:00:00Z"),
        answered("2", 7, "2026-03-02T09:00:00Z"),
        answered("3", 2, "2026-03-10T09:00:00Z"),
    )
    await workers.drain()
    scores = await cli(
        "scores", "--store", str(store.id), "--from", "2026-03-01", "--to", "2026-03-31", "--json"
    )
    data = json.loads(scores.stdout)
    assert [(p["start"], p["nps"]) for p in data["nps"]["periods"]] == [
        ("2026-03-02", 50.0),
        ("2026-03-09", -100.0),
    ]
    assert data["nps"]["nps"] == 0.0
    table = await cli(
        "scores", "--store", str(store.id), "--from", "2026-03-01", "--to", "2026-03-31"
    )
    assert table.returncode == 0
    assert "2026-03-01 – 2026-03-31 (Europe/Istanbul)" in table.stdout
    assert "+50.0" in table.stdout
    assert "-100.0" in table.stdout
    daily = await cli(
        "scores", "--store", str(store.id), "--from", "2026-03-05", "--to", "2026-03-06"
    )
    assert "no answers in this time" in daily.stdout
    wrong = await cli("scores", "--store", str(store.id), "--by", "year")
    assert wrong.returncode == 2
    # Days beyond 2000-2100: a clear error, not a traceback.
    for days in (("--to", "0001-01-05"), ("--from", "9999-12-31", "--to", "9999-12-31")):
        far = await cli("scores", "--store", str(store.id), *days)
        assert far.returncode == 2, far.stderr
        assert "is a day from 2000-01-01 to 2100-12-31" in " ".join(far.stderr.split())
        assert "Traceback" not in far.stderr
        assert far.stdout == ""


async def test_export_shows_the_answers_and_erasure_empties_their_comments(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await post(
        client,
        store,
        order_placed("1"),
        answered("1", 3, "2026-11-23T08:00:00Z", "Ayşe Yılmaz, Moda Cad. 12: kutu ezikti."),
    )
    await workers.drain()
    export = await client.get("/v1/customers/c-1042/export", headers=store.auth)
    assert export.json()["survey_answers"] == [
        {
            "order_id": "1",
            "kind": "nps",
            "score": 3,
            "comment": "Ayşe Yılmaz, Moda Cad. 12: kutu ezikti.",
            "answered_at": "2026-11-23T08:00:00+00:00",
        }
    ]
    # The shop's alert quotes her, and names her.
    alerts = [m for m in await dev_inbox(db) if m["Subject"].startswith("ulak:")]
    assert [m["Subject"] for m in alerts] == ["ulak: memnun olmayan bir anket yanıtı, 3/10"]
    assert "kutu ezikti" in text_of(alerts[0])
    assert "E-posta: ayse@example.com" in text_of(alerts[0])
    erased = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert erased.status_code == 202, erased.text
    await workers.drain()
    async with db.read() as session:
        rows = (await session.execute(select(SurveyAnswer.score, SurveyAnswer.comment))).all()
    # The score stays in the store's figures, anonymous; the words are gone.
    assert [tuple(row) for row in rows] == [(3, None)]
    # So is the alert that quoted her: the outbox row and the dev inbox's copy.
    async with db.read() as session:
        alert = (
            await session.execute(
                select(Message.status, Message.subject, Message.html, Message.text).where(
                    Message.template == "shop_alert_survey"
                )
            )
        ).all()
    assert [tuple(row) for row in alert] == [("sent", "", "", "")]
    assert [m for m in await dev_inbox(db) if str(m["Subject"]).startswith("ulak:")] == []

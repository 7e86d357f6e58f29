from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, free_port, make_store, opened_app, order_placed, stored_keys
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database, inbox_path
from ulak.events import inbox
from ulak.events.models import Event
from ulak.worker import Workers


async def count_events(db: Database) -> int:
    """Events stored: in `events`, or on SQLite still in the API's inbox file."""
    return len(await stored_keys(db))


async def test_an_event_is_stored_and_acknowledged(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    response = await client.post("/v1/events", json=order_placed(), headers=store.auth)
    assert response.status_code == 202
    body = response.json()
    assert body["rejected"] == []
    assert [(a["index"], a["key"], a["duplicate"]) for a in body["accepted"]] == [
        (0, "evt-order-1001", False)
    ]
    assert await count_events(db) == 1


async def test_missing_or_wrong_key_is_401_and_stores_nothing(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    missing = await client.post("/v1/events", json=order_placed())
    wrong = await client.post(
        "/v1/events", json=order_placed(), headers={"Authorization": "Bearer ulak_sk_nope"}
    )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "invalid API key"
    assert await count_events(db) == 0


async def test_malformed_json_is_400(client: httpx.AsyncClient, store: StoreKey) -> None:
    response = await client.post(
        "/v1/events",
        content=b'{"type": "order.placed",',
        headers={**store.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


async def test_a_body_that_is_not_a_batch_gets_a_clear_answer(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    not_a_list = await client.post("/v1/events", json={"events": "x"}, headers=store.auth)
    assert not_a_list.status_code == 422
    assert not_a_list.json()["error"] == {
        "code": "invalid",
        "message": "events must be a list",
        "details": [{"path": "events", "message": "must be a list"}],
    }
    empty = await client.post("/v1/events", json={"events": []}, headers=store.auth)
    assert empty.status_code == 422
    assert empty.json()["error"] == {
        "code": "invalid",
        "message": "the batch has no events",
        "details": [{"path": "events", "message": "must hold at least one event"}],
    }
    deep = await client.post(
        "/v1/events",
        content=b"[" * 5000 + b"]" * 5000,
        headers={**store.auth, "Content-Type": "application/json"},
    )
    assert deep.status_code == 400
    assert deep.json()["error"]["message"] == "the body is not valid JSON: it is nested too deeply"
    assert await count_events(db) == 0


async def test_wrong_types_are_422_with_field_paths(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    event = order_placed()
    event["data"]["total"] = 1249.9
    event["data"]["items"][1]["quantity"] = "two"
    del event["data"]["order_id"]
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    paths = {d["path"]: d["message"] for d in response.json()["error"]["details"]}
    assert set(paths) == {"data.total", "data.items[1].quantity", "data.order_id"}
    assert "decimal string" in paths["data.total"]
    assert await count_events(db) == 0


async def test_naive_timestamp_and_missing_customer_are_rejected(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    event = order_placed(occurred_at="2026-11-23T10:00:00")
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "occurred_at"
    event = order_placed()
    del event["customer"]
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "customer"


async def test_body_over_one_megabyte_is_413(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    event = order_placed()
    event["data"]["note"] = "x" * 1_100_000
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 413
    assert await count_events(db) == 0


async def test_same_id_twice_stores_one_event(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    first = await client.post("/v1/events", json=order_placed(), headers=store.auth)
    again = await client.post("/v1/events", json=order_placed(), headers=store.auth)
    assert first.json()["accepted"][0]["duplicate"] is False
    assert again.json()["accepted"][0]["duplicate"] is True
    assert await count_events(db) == 1


async def test_the_same_id_with_a_different_body_is_a_conflict_and_stores_nothing(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stripe's rule for idempotency keys: a retry is answered as a duplicate, another
    event under a used id is refused, before and after the worker took the first one."""
    monkeypatch.setattr(inbox, "PRUNE_SECONDS", 0.0)  # each write prunes what was copied
    placed = order_placed(occurred_at="2026-11-23T12:00:00+03:00")
    first = await client.post("/v1/events", json=placed, headers=store.auth)
    assert first.status_code == 202
    for drained in (False, True):
        if drained:
            await workers.drain()
        changed = await client.post(
            "/v1/events",
            json={**placed, "data": {**placed["data"], "total": "1.00"}},
            headers=store.auth,
        )
        assert changed.status_code == 409, drained
        error = changed.json()["error"]
        assert error["code"] == "conflict"
        assert error["details"] == [
            {
                "path": "id",
                "message": "an event with id 'evt-order-1001' was already accepted with a"
                " different body; send a new id for a new event",
            }
        ]
        # A retry of the same event, even without its time, is still a plain duplicate.
        retry = order_placed()
        assert "occurred_at" not in retry
        again = await client.post("/v1/events", json=retry, headers=store.auth)
        assert again.status_code == 202
        assert again.json()["accepted"][0]["duplicate"] is True
    assert await count_events(db) == 1
    async with db.read() as session:
        assert [e.data["total"] for e in (await session.scalars(select(Event))).all()] == [
            "1249.90"
        ]


async def test_a_batch_lists_a_conflicting_event_as_rejected(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
    batch = {
        "events": [
            order_placed("2"),
            order_placed("1", total="9.99"),
            order_placed("1"),
            order_placed("2", total="5.00"),  # differs from the one earlier in this batch
        ]
    }
    response = await client.post("/v1/events", json=batch, headers=store.auth)
    assert response.status_code == 202
    body = response.json()
    assert [(a["index"], a["duplicate"]) for a in body["accepted"]] == [(0, False), (2, True)]
    assert [(r["index"], [e["path"] for e in r["errors"]]) for r in body["rejected"]] == [
        (1, ["events[1].id"]),
        (3, ["events[3].id"]),
    ]
    assert await count_events(db) == 2


async def test_ids_are_scoped_to_the_store(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    other = await make_store(db, clock, name="Başka Dükkan")
    await client.post("/v1/events", json=order_placed(), headers=store.auth)
    response = await client.post("/v1/events", json=order_placed(), headers=other.auth)
    assert response.json()["accepted"][0]["duplicate"] is False
    assert await count_events(db) == 2


async def test_a_batch_keeps_valid_events_and_reports_each_rejected_one(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    bad = order_placed("2")
    bad["data"]["total"] = "lots"
    batch = {"events": [order_placed("1"), bad, order_placed("3"), {"type": "Bad Type"}]}
    response = await client.post("/v1/events", json=batch, headers=store.auth)
    assert response.status_code == 202
    body = response.json()
    assert [a["index"] for a in body["accepted"]] == [0, 2]
    assert [(r["index"], r["errors"][0]["path"]) for r in body["rejected"]] == [
        (1, "events[1].data.total"),
        (3, "events[3].type"),
    ]
    assert await count_events(db) == 2


async def test_links_other_than_http_and_https_are_refused(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    """Links from events go into emails as they are: a javascript: or data: link there
    would run in the reader's mail client."""
    links = [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " https://shop.example/p",
        "data:text/html;base64,PHNjcmlwdD4=",
        "https://shop.example/p\nx",
        "//shop.example/p",
        "HTTPS://Shop.example/kupa?renk=mavi",
    ]
    events = []
    for n, link in enumerate(links):
        event = order_placed(str(n))
        event["data"]["items"][0]["url"] = link
        events.append(event)
    shipped = {
        "id": "ship-1",
        "type": "order.shipped",
        "customer": {"id": "c-1042"},
        "data": {"order_id": "1", "shipment_id": "s-1", "carrier": "Yurtiçi Kargo",
                 "tracking_number": "123", "tracking_url": "javascript:void(0)"},
    }  # fmt: skip
    response = await client.post(
        "/v1/events", json={"events": [*events, shipped]}, headers=store.auth
    )
    assert response.status_code == 202
    body = response.json()
    assert [a["index"] for a in body["accepted"]] == [6]
    assert [(r["index"], r["errors"]) for r in body["rejected"]] == [
        (i, [{"path": f"events[{i}].data.items[0].url",
              "message": "Value error, must be an http:// or https:// address"}])
        for i in range(6)
    ] + [
        (7, [{"path": "events[7].data.tracking_url",
              "message": "Value error, must be an http:// or https:// address"}])
    ]  # fmt: skip
    assert await count_events(db) == 1


async def test_values_no_later_step_could_store_or_send_are_refused_at_ingest(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    """Each once passed validation and failed later (an overflow, a date out of range at
    send time, six times over); now each is a 422 with its field path."""
    cases: list[tuple[str, Any, str]] = [
        ("data.items[0].quantity", 10**30, "Input should be less than or equal to 1000000"),
        ("data.items[0].price", "-5.00", "Input should be greater than or equal to 0"),
        ("data.total", "-1249.90", "Input should be greater than or equal to 0"),
        ("occurred_at", "9999-12-31T00:00:00Z", "Value error, must be between 2000 and 2099"),
        ("occurred_at", "1970-01-01T00:00:00Z", "Value error, must be between 2000 and 2099"),
        ("customer.timezone", "Mars/Olympus", "Value error, unknown time zone 'Mars/Olympus'"),
        ("customer.email", "not-an-email", "value is not a valid email address"),
    ]
    events = []
    for n, (path, value, _) in enumerate(cases):
        event = order_placed(str(n))
        *parents, last = [int(p[:-1]) if p[:-1].isdigit() else p for p in re.split(r"[.\[]", path)]
        target: Any = event
        for key in parents:
            target = target[key]
        target[last] = value
        events.append(event)
    response = await client.post("/v1/events", json={"events": events}, headers=store.auth)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["path"], d["message"].split(":")[0]) for d in details] == [
        (f"events[{n}].{path}", message.split(":")[0]) for n, (path, _, message) in enumerate(cases)
    ]
    assert await count_events(db) == 0
    # A locale no template has is accepted: the message falls back to the store's language.
    event = order_placed("100")
    event["customer"]["locale"] = "xx-YY"
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 202


async def test_a_batch_over_1000_events_is_refused(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    body = json.dumps({"events": [{"type": "x"}] * 1001})
    response = await client.post(
        "/v1/events", content=body, headers={**store.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "at most 1000" in response.json()["error"]["message"]


async def test_concurrent_requests_each_get_their_own_answer(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    """Requests arriving together are committed together; each answer is still its own,
    and the same id sent by two requests at once is stored once."""
    other = await make_store(db, clock, name="Other shop", library=False)
    bodies = [(store, order_placed(str(i))) for i in range(12)]
    bodies += [(other, order_placed("0")), (store, order_placed("3"))]  # same ids again
    responses = await asyncio.gather(
        *(client.post("/v1/events", json=body, headers=who.auth) for who, body in bodies)
    )
    assert [r.status_code for r in responses] == [202] * len(bodies)
    answers = [r.json()["accepted"][0] for r in responses]
    assert [a["key"] for a in answers] == [body["id"] for _, body in bodies]
    assert [a["duplicate"] for a in answers[:12]].count(True) + answers[13]["duplicate"] == 1
    assert answers[12]["duplicate"] is False  # ids are per store
    assert await count_events(db) == 13


async def test_a_failing_request_does_not_fail_the_requests_committed_with_it(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = await make_store(db, clock, name="Broken shop", library=False)
    real_rows = inbox.event_rows

    def event_rows(store_id: int, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if store_id == broken.id:
            raise RuntimeError("disk full")
        return real_rows(store_id, *args, **kwargs)

    monkeypatch.setattr(inbox, "event_rows", event_rows)
    outcomes = await asyncio.gather(
        *(
            client.post("/v1/events", json=order_placed(str(i)), headers=who.auth)
            for i, who in enumerate([store, broken, store, store])
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RuntimeError)  # the test client re-raises the 500's cause
    assert [o.status_code for o in outcomes if isinstance(o, httpx.Response)] == [202] * 3
    assert await count_events(db) == 3


async def test_ids_that_ulak_keeps_for_its_own_events_are_refused(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    derived = order_placed(event_id="derived:order.delivered:s-1")
    made_up = order_placed("2", event_id="ulak:0123456789abcdef01234567")
    response = await client.post(
        "/v1/events", json={"events": [derived, made_up, order_placed("3")]}, headers=store.auth
    )
    assert response.status_code == 202
    body = response.json()
    assert [a["key"] for a in body["accepted"]] == ["evt-order-3"]
    assert [(r["index"], r["errors"][0]["path"]) for r in body["rejected"]] == [
        (0, "events[0].id"),
        (1, "events[1].id"),
    ]
    assert "reserved" in body["rejected"][0]["errors"][0]["message"]
    assert await count_events(db) == 1


async def test_a_locked_inbox_is_a_503_with_retry_after(
    store: StoreKey, settings: Settings, db: Database, clock: FrozenClock
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite: the API's inbox file is locked by another process")
    impatient = Database(settings.database_url, lock_timeout=0.2)
    async with opened_app(settings, impatient, clock) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ulak.test") as client:
            first = await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
            assert first.status_code == 202
            holder = sqlite3.connect(inbox_path(db.path), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                locked = await client.post("/v1/events", json=order_placed("2"), headers=store.auth)
            finally:
                holder.rollback()
                holder.close()
            assert locked.status_code == 503
            assert locked.headers["Retry-After"] == "5"
            assert locked.json()["error"]["code"] == "unavailable"
            again = await client.post("/v1/events", json=order_placed("2"), headers=store.auth)
            assert again.status_code == 202
            assert again.json()["accepted"][0]["duplicate"] is False
    await impatient.dispose()
    assert [key for _, key in await stored_keys(db)] == ["evt-order-1", "evt-order-2"]


async def test_an_unreachable_database_is_a_503_with_retry_after(
    settings: Settings, clock: FrozenClock
) -> None:
    if settings.database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL: a database server that does not answer")
    gone = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    async with opened_app(settings, gone, clock) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ulak.test") as client:
            health = await client.get("/healthz")
            events = await client.post(
                "/v1/events", json=order_placed(), headers={"Authorization": "Bearer ulak_sk_x"}
            )
            page = await client.get("/u/1/token", headers={"Accept": "text/html"})
    await gone.dispose()
    for response in (health, events):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
    assert page.status_code == 503
    assert "try again in a few seconds" in page.text


async def test_an_address_only_smtputf8_can_carry_is_accepted_with_a_warning(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    batch = {
        "events": [
            order_placed("1"),
            order_placed("2", customer_id="c-2", email="çağrı@example.com"),
        ]
    }
    response = await client.post("/v1/events", json=batch, headers=store.auth)
    assert response.status_code == 202
    assert [(a["index"], a["warnings"]) for a in response.json()["accepted"]] == [
        (0, []),
        (
            1,
            [
                {
                    "path": "events[1].customer.email",
                    "message": "the part before @ is not ASCII: only a mail server that offers"
                    " SMTPUTF8 takes it; where the server does not, this customer's emails fail",
                }
            ],
        ),
    ]
    assert await count_events(db) == 2


async def test_a_schema_behind_the_code_is_a_500_not_a_503(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    """Retrying would not help: it is not reported as a moment's outage."""
    if not db.is_sqlite:
        pytest.skip("SQLite: its missing table is an OperationalError, like a locked file")
    with sqlite3.connect(db.path) as connection:
        connection.execute("ALTER TABLE customers RENAME TO customers_elsewhere")
    response = await client.get("/v1/customers/c-1", headers=store.auth)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "Retry-After" not in response.headers


async def test_a_nul_character_anywhere_is_a_422_naming_it_and_stores_nothing(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    # PostgreSQL's jsonb cannot hold U+0000: such an event was a 500 there.
    event = order_placed("o-nul")
    event["data"]["note"] = {"gift": ["wrap it", "a\u0000b"]}
    event["data"]["items"][0]["title"] = "kupa\u0000"
    batch = {"events": [event, order_placed("o-fine")]}
    response = await client.post("/v1/events", json=batch, headers=store.auth)
    assert response.status_code == 202
    assert response.json()["rejected"] == [
        {
            "index": 0,
            "errors": [
                {
                    "path": "events[0].data.items[0].title",
                    "message": "must not contain a NUL character",
                },
                {
                    "path": "events[0].data.note.gift[1]",
                    "message": "must not contain a NUL character",
                },
            ],
        }
    ]
    assert await stored_keys(db) == [(store.id, "evt-order-o-fine")]
    single = await client.post("/v1/events", json=event, headers=store.auth)
    assert single.status_code == 422
    assert single.json()["error"]["details"] == [
        {"path": "data.items[0].title", "message": "must not contain a NUL character"},
        {"path": "data.note.gift[1]", "message": "must not contain a NUL character"},
    ]
    assert await stored_keys(db) == [(store.id, "evt-order-o-fine")]

"""A customer's returns in her KVKK/GDPR export and erasure, and `ulak returns`."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx

from tests.returns.test_returns import (
    DELIVERED,
    ask,
    delivered_order,
    returns_link,
    returns_of,
    send,
    update,
)
from tests.support import StoreKey, ulak_cli
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.worker import Workers

COMMENT = "Ayşe Yılmaz, Bağdat Caddesi 412: kapıda teslim alınmadı"


async def test_the_export_shows_her_returns_and_an_erasure_empties_their_free_text(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    clock.set(DELIVERED + timedelta(days=1))
    await ask(client, url, qty_1="1", reason="damaged", resolution="refund", comment=COMMENT)
    await workers.drain()
    (asked,) = await returns_of(client, store)
    await send(
        client,
        store,
        update(asked["reference"], "approved", instructions="Kadıköy şubesine bırakın", label="X1"),
    )
    await workers.drain()

    export = await client.get("/v1/customers/c-1042/export", headers=store.auth)
    assert export.status_code == 200
    (mine,) = export.json()["returns"]
    assert mine == {
        "reference": asked["reference"],
        "order_id": "1001",
        "status": "approved",
        "resolution": "refund",
        "reason": "damaged",
        "comment": COMMENT,
        "items": [
            {
                "line": 1,
                "product_id": "p-kupa",
                "variant_id": None,
                "sku": None,
                "title": "Seramik kupa",
                "quantity": 1,
                "price": "150.00",
                "exchange_variant_id": None,
                "exchange_title": None,
            }
        ],
        "amount": mine["amount"],
        "currency": "TRY",
        "instructions": "Kadıköy şubesine bırakın",
        "label": "X1",
        "rejection_reason": None,
        "refunded_amount": None,
        "history": mine["history"],
        "created_at": mine["created_at"],
    }
    assert mine["amount"] in ("150.00", "150.0000")
    assert [h["status"] for h in mine["history"]] == ["requested", "approved"]

    erased = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert erased.status_code == 202
    await workers.drain()
    (kept,) = await returns_of(client, store)
    assert (kept["reference"], kept["status"], kept["amount"]) == (
        asked["reference"],
        "approved",
        "150.00",
    )
    assert (kept["comment"], kept["instructions"], kept["label"]) == (None, None, None)
    assert [i["title"] for i in kept["items"]] == ["Seramik kupa"]


async def test_the_cli_sets_the_policy_and_lists_the_returns(
    client: httpx.AsyncClient,
    db: Database,
    store: StoreKey,
    workers: Workers,
    clock: FrozenClock,
    database_url: str,
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        result = ulak_cli("returns", *args, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    shown = json.loads(await asyncio.to_thread(cli, "settings", "--store", str(store.id), "--json"))
    assert (shown["window_days"], shown["offer_exchange"], shown["offer_store_credit"]) == (
        14,
        True,
        False,
    )
    assert [r["code"] for r in shown["reasons"]] == [
        "wrong_size",
        "damaged",
        "not_as_described",
        "wrong_item",
        "changed_mind",
        "other",
    ]
    changed = json.loads(
        await asyncio.to_thread(
            cli,
            "settings",
            "--store",
            str(store.id),
            "--window-days",
            "30",
            "--policy-tr",
            "Etiketli ürünler 30 gün içinde.",
            "--store-credit",
            "--credit-bonus",
            "15",
            "--no-exchange",
            "--reason",
            "wrong_size=Beden uymadı|Wrong size",
            "--reason",
            "gift=Hediyeydi",
            "--json",
        )
    )
    assert changed == {
        "window_days": 30,
        "policy": {"tr": "Etiketli ürünler 30 gün içinde."},
        "offer_exchange": False,
        "offer_store_credit": True,
        "credit_bonus_percent": 15,
        "reasons": [
            {"code": "wrong_size", "tr": "Beden uymadı", "en": "Wrong size"},
            {"code": "gift", "tr": "Hediyeydi", "en": "Hediyeydi"},
        ],
    }
    bad = await asyncio.to_thread(
        ulak_cli, "returns", "settings", "--store", str(store.id), "--credit-bonus", "150", env=env
    )
    assert bad.returncode != 0
    assert "0 to 100 percent" in bad.stdout + bad.stderr

    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    page = await client.get(url)
    assert "Etiketli ürünler 30 gün içinde." in page.text
    assert "31 Aralık 2026 tarihine kadar" in page.text
    await ask(client, url, qty_0="2", reason="gift", resolution="store_credit")
    await workers.drain()

    (listed,) = json.loads(await asyncio.to_thread(cli, "list", "--store", str(store.id), "--json"))
    assert (listed["status"], listed["resolution"], listed["reason_text"]) == (
        "requested",
        "store_credit",
        "Hediyeydi",
    )
    assert (listed["amount"], listed["credit_amount"]) == ("600.00", "690.00")
    table = await asyncio.to_thread(
        ulak_cli, "returns", "list", "--store", str(store.id), env={**env, "COLUMNS": "200"}
    )
    assert listed["reference"] in table.stdout
    assert "2 × Basic tişört M" in table.stdout
    assert (
        json.loads(
            await asyncio.to_thread(
                cli, "list", "--store", str(store.id), "--status", "refunded", "--json"
            )
        )
        == []
    )

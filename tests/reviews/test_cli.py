"""`ulak reviews`: settings, the moderation list, approve, reject with a reason, reply."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.reviews.support import place_order, review_link, submit
from tests.support import StoreKey, ulak_cli
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.worker import Workers


async def test_a_moderating_store_approves_rejects_and_replies_from_the_cli(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    database_url: str,
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        result = ulak_cli("reviews", *args, "--store", str(store.id), env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert json.loads(await asyncio.to_thread(cli, "settings")) == {
        "moderate": False,
        "delay_days": 7,
        "tag_delays": {},
    }
    changed = await asyncio.to_thread(
        cli, "settings", "--moderate", "--tag-delay", "mobilya=21", "--tag-delay", "ev=3"
    )
    assert json.loads(changed) == {
        "moderate": True,
        "delay_days": 7,
        "tag_delays": {"mobilya": 21, "ev": 3},
    }
    removed = await asyncio.to_thread(cli, "settings", "--tag-delay", "ev=")
    assert json.loads(removed)["tag_delays"] == {"mobilya": 21}

    await place_order(client, store, workers)
    path = await review_link(db, store, clock)
    await submit(client, path, {"rating_0": "5", "title_0": "Süper", "rating_1": "1"})
    await workers.drain()
    pending = json.loads(await asyncio.to_thread(cli, "list", "--status", "pending", "--json"))
    assert [(r["product_id"], r["rating"], r["status"]) for r in pending] == [
        ("p-2", 1, "pending"),
        ("p-1", 5, "pending"),
    ]
    ids = {r["product_id"]: r["id"] for r in pending}
    public = f"/v1/stores/{store.id}/reviews"
    assert (await client.get(public)).json()["count"] == 0

    approved = await asyncio.to_thread(cli, "approve", str(ids["p-1"]))
    assert approved == f"review {ids['p-1']}: approve done (published)\n"
    await asyncio.to_thread(cli, "reject", str(ids["p-2"]), "--reason", "ürünle ilgisiz")
    await asyncio.to_thread(cli, "reply", str(ids["p-1"]), "Teşekkür ederiz!")
    everything = json.loads(await asyncio.to_thread(cli, "list", "--json"))
    assert [(r["product_id"], r["status"], r["reason"], r["reply"]) for r in everything] == [
        ("p-2", "rejected", "ürünle ilgisiz", None),
        ("p-1", "published", None, "Teşekkür ederiz!"),
    ]
    body = (await client.get(public)).json()
    assert (body["count"], body["average"]) == (1, 5.0)
    assert body["reviews"][0]["reply"] == "Teşekkür ederiz!"

    args = ("reviews", "approve", "999999", "--store", str(store.id))
    missing = await asyncio.to_thread(ulak_cli, *args, env=env)
    assert missing.returncode != 0
    assert "review 999999 is not one of this store's" in missing.stderr

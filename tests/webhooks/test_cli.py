"""`ulak webhooks`: the secret is printed by `add` and nowhere else."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.sms_fakes.base import Answer
from tests.support import StoreKey, ulak_cli
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import deliveries
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.webhooks import service
from ulak.webhooks.queue import enqueue
from ulak.worker import Workers


async def test_add_list_deliveries_retry_remove(
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}

    async def cli(*args: str) -> tuple[int, str, str]:
        done = await asyncio.to_thread(ulak_cli, "webhooks", *args, env=env)
        return done.returncode, done.stdout, done.stderr

    refused = await cli("add", "--store", str(store.id), "--url", receiver.url + "/hook")
    assert refused[0] == 2
    assert "must be https (http only in development mode)" in refused[2]
    code, out, _ = await cli(
        "add",
        "--store",
        str(store.id),
        "--url",
        receiver.url + "/hook",
        "--events",
        "survey.answered,coupon.redeemed",
        "--development",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        f"endpoint 1: {receiver.url}/hook (survey.answered, coupon.redeemed) [development mode]"
    )
    assert lines[1].startswith("signing secret: whsec_")
    assert lines[2:] == ["Keep it now: it is not shown again."]
    secret = lines[1].removeprefix("signing secret: ")
    receiver.secret = secret

    listed = await cli("list", "--store", str(store.id))
    assert listed == (
        0,
        f"1: {receiver.url}/hook (survey.answered, coupon.redeemed) enabled [development mode]\n",
        "",
    )
    as_json = json.loads((await cli("list", "--store", str(store.id), "--json"))[1])
    assert [e["id"] for e in as_json] == [1]
    assert "secret" not in as_json[0]

    monkeypatch.setattr(service, "MAX_ATTEMPTS", 1)
    async with db.transaction() as session:
        await enqueue(
            session,
            store_id=store.id,
            event_type="coupon.redeemed",
            event_id="evt_1",
            occurred_at=clock.now(),
            data={},
            customer_id=None,
            now=clock.now(),
        )
    receiver.answer_next("hook", Answer(503, "busy"))
    await workers.drain()
    shown = await cli("deliveries", "--store", str(store.id))
    assert shown == (
        0,
        "1: coupon.redeemed evt_1 to endpoint 1: failed after 1 attempt(s) HTTP 503"
        " (gave up after 1 attempts: HTTP 503)\n",
        "",
    )
    assert (await cli("retry", "--store", str(store.id), "1"))[:2] == (
        0,
        "webhook delivery 1 is due again\n",
    )
    # `retry` runs on the system clock: the delivery is due at once for the frozen one too.
    clock.set(clock.now().replace(year=2100))
    await workers.drain()
    assert [(d[3], d[4], d[5]) for d in await deliveries(db)] == [("evt_1", "delivered", 1)]
    assert len(receiver.received()) == 2

    assert (await cli("remove", "--store", str(store.id), "1"))[:2] == (
        0,
        "webhook endpoint 1 removed\n",
    )
    assert await deliveries(db) == []
    assert (await cli("list", "--store", str(store.id)))[1] == "no webhook endpoints\n"
    missing = await cli("remove", "--store", str(store.id), "1")
    assert (missing[0], missing[2].strip()) == (
        2,
        f"error: store {store.id} has no webhook endpoint 1",
    )
    # Only `add` ever printed the secret.
    everything = "".join(
        [
            listed[1],
            json.dumps(as_json),
            shown[1],
            (await cli("deliveries", "--store", str(store.id), "--json"))[1],
        ]
    )
    assert secret.removeprefix("whsec_") not in everything

"""What a WooCommerce webhook costs beside the same events posted to `/v1/events`.

In process, through the ASGI app (no network), on a fresh SQLite file (or --database-url):
each round posts N different orders (the REST v3 sample of tests/integrations/woocommerce,
its id changed) as signed `order.created` webhooks, one per request, and, as the baseline
in the same round, the very events those webhooks make (`order.placed` + `order.paid`) as
one `/v1/events` request per order with the store's API key. Both are acknowledged once
their events are committed to the inbox; no worker runs. Rounds alternate which goes
first; the figure is each round's webhook time ÷ baseline time, so the machine's speed of
the moment cancels out. Also: the translation alone (`translate`, no I/O) per webhook.

    PYTHONPATH=<worktree>/src .venv/bin/python bench/woocommerce.py [--orders 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import make_store
from ulak.app import create_app
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database
from ulak.integrations.service import set_integration
from ulak.integrations.woocommerce import translate
from ulak.migrate import upgrade

SAMPLE = Path(__file__).resolve().parent.parent / "tests/integrations/woocommerce/order.json"
SECRET = "bench-secret"  # noqa: S105


def orders(first: int, n: int) -> list[dict[str, Any]]:
    base = json.loads(SAMPLE.read_text())
    out = []
    for i in range(first, first + n):
        order = copy.deepcopy(base)
        order.update(id=i, number=str(i), customer_id=100000 + i)
        order["billing"]["email"] = f"musteri{i}@example.com"
        out.append(order)
    return out


async def measure(url: str, n: int, rounds: int) -> None:
    database = Database(url)
    clock = FrozenClock()
    settings = Settings(database_url=url, smtp_url="", public_url="http://ulak.test")
    app = create_app(settings, database=database, clock=clock, run_workers=False)
    store = await make_store(database, clock)
    async with database.transaction() as session:
        await set_integration(
            session, store_id=store.id, platform="woocommerce", secret=SECRET, clock=clock
        )
    ratios: list[float] = []
    per_hook: list[float] = []
    per_event_post: list[float] = []
    translate_ms: list[float] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
    ) as client:
        for r in range(rounds):
            hooks = orders(1_000_000 * (2 * r + 1), n)
            bodies = [json.dumps(o, ensure_ascii=False).encode() for o in hooks]
            start = time.perf_counter()
            made = [translate("order.created", o) for o in orders(1_000_000 * (2 * r + 2), n)]
            translate_ms.append((time.perf_counter() - start) * 1000 / n)
            baseline = [
                {"events": [e.model_dump(mode="json", exclude_none=True) for e in t.events]}
                for t in made
            ]
            for batch in baseline:
                for e in batch["events"]:
                    # A shop's own ids: `woocommerce:` is reserved.
                    e["id"] = "shop:" + e["id"]

            async def webhooks(payloads: list[bytes] = bodies) -> float:
                start = time.perf_counter()
                for body in payloads:
                    signature = base64.b64encode(
                        hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
                    ).decode()
                    response = await client.post(
                        f"/v1/integrations/woocommerce/{store.id}",
                        content=body,
                        headers={
                            "X-WC-Webhook-Topic": "order.created",
                            "X-WC-Webhook-Signature": signature,
                            "Content-Type": "application/json",
                        },
                    )
                    assert response.status_code == 200, response.text
                return time.perf_counter() - start

            async def events(payloads: list[dict[str, Any]] = baseline) -> float:
                start = time.perf_counter()
                for body in payloads:
                    response = await client.post("/v1/events", json=body, headers=store.auth)
                    assert response.status_code == 202, response.text
                return time.perf_counter() - start

            if r % 2:
                base_s = await events()
                hook_s = await webhooks()
            else:
                hook_s = await webhooks()
                base_s = await events()
            ratios.append(hook_s / base_s)
            per_hook.append(hook_s * 1000 / n)
            per_event_post.append(base_s * 1000 / n)
            print(
                f"round {r + 1}: webhook {hook_s * 1000 / n:.2f} ms, /v1/events "
                f"{base_s * 1000 / n:.2f} ms per order: ratio {hook_s / base_s:.2f}x"
            )
    await app.state.workers.ctx.sender.close(grace=1)
    await database.dispose()
    print(
        f"\n{n} orders x {rounds} rounds ({'SQLite' if database.is_sqlite else 'PostgreSQL'}):"
        f" webhook / baseline ratio median {statistics.median(ratios):.2f}x"
        f" (min {min(ratios):.2f}, max {max(ratios):.2f});"
        f" webhook {statistics.median(per_hook):.2f} ms, /v1/events"
        f" {statistics.median(per_event_post):.2f} ms per order (medians);"
        f" translate alone {statistics.median(translate_ms):.3f} ms per webhook"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ulak-woo-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'ulak.db'}"
    upgrade(url)
    asyncio.run(measure(url, args.orders, args.rounds))


if __name__ == "__main__":
    main()

"""A Shopify shop connected as its owner connects it: `ulak integrations set shopify`, then
`ulak serve` receiving Shopify's orders/create and fulfillments/create webhooks, and the
customer's confirmation and shipped emails at a real SMTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from tests.integrations.test_shopify import SECRET, sample, sign
from tests.support import Server, SmtpSink, create_store_with_cli, text_of, ulak_cli, wait_until

TRACKING = "https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code=YK1234567890"


def deliver(server: Server, store_id: int, topic: str, body: bytes, webhook_id: str) -> None:
    response = httpx.post(
        f"{server.url}/v1/integrations/shopify/{store_id}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body),
            "X-Shopify-Shop-Domain": "aysenin-dukkani.myshopify.com",
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-API-Version": "2025-01",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["skipped"] == []


def test_a_shopify_order_and_its_fulfillment_send_the_confirmation_and_the_tracking_link(
    server: Server, server_env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    store = create_store_with_cli(server_env)
    connected = ulak_cli(
        "integrations", "set", "shopify", "--store", str(store["id"]), "--secret", SECRET,
        env=server_env,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    assert SECRET not in connected.stdout + connected.stderr
    server.start()
    # Generous waits: the worker's first run on a busy machine took over 20 s once.
    # Sends are meant for when their trigger happened: the webhooks' times are now.
    now = datetime.now(UTC).isoformat()
    order = sample("order")
    order.update(created_at=now, processed_at=now, updated_at=now)
    deliver(server, store["id"], "orders/create", json.dumps(order).encode(), "wh-order")
    wait_until(lambda: len(smtp_sink.received) == 1, 60, "the confirmation email")

    fulfillment = sample("fulfillment")
    fulfillment.update(created_at=now, updated_at=now)
    deliver(server, store["id"], "fulfillments/create", json.dumps(fulfillment).encode(), "wh-ship")
    wait_until(lambda: len(smtp_sink.received) == 2, 60, "the shipped email")

    confirmation, shipped = (r.message for r in smtp_sink.received)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["ayse@example.com"]] * 2
    assert confirmation["Subject"] == "Siparişiniz alındı – #1001"
    assert shipped["Subject"] == "Siparişiniz kargoya verildi – #1001"
    for part in (text_of(confirmation, "plain"), text_of(confirmation, "html")):
        assert "Seramik kupa - Lacivert" in part
        assert "Bakır çaydanlık" in part
        assert "1.174,81 ₺" in part
    html = text_of(shipped, "html")
    assert f'href="{TRACKING.replace("&", "&amp;")}"' in html
    assert "YK1234567890" in text_of(shipped, "plain")
    assert "Yurtiçi Kargo" in text_of(shipped, "plain")

"""The baseline of bench/shopify.py: a bare FastAPI endpoint that does what ulak's
Shopify route does before it stores (checks the signature, parses the order with ulak's
models, maps it to events) and answers 200, storing nothing.

    uvicorn bench.shopify_bare:app --port 8001
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response

from ulak.integrations.service import signature_ok
from ulak.integrations.shopify_mapping import order_events
from ulak.integrations.shopify_payloads import Order

# The bench's own throwaway secret, given to its fresh store.
SECRET = "shpss_bench_0123456789abcdef"  # noqa: S105

app = FastAPI()


@app.post("/v1/integrations/shopify/{store}")
async def webhook(store: str, request: Request) -> Response:
    body = await request.body()
    if not signature_ok(SECRET, body, request.headers.get("x-shopify-hmac-sha256")):
        return Response(status_code=401)
    mapped = order_events(Order.model_validate(json.loads(body)), topic="orders/create")
    return Response(
        json.dumps({"events": len(mapped.events)}), status_code=200, media_type="application/json"
    )

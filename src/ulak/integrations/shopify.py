"""Shopify's webhooks: `POST /v1/integrations/shopify/{store id}`.

Verified with `X-Shopify-Hmac-Sha256` over the raw body (the store's webhook secret,
constant-time), mapped to ulak events (`shopify_mapping.py`) and stored through the inbox
in the request; the worker applies them later, so the answer comes well within Shopify's
5 s (bench/shopify.py).

What each answer tells Shopify, which retries anything but a 2xx 19 times over 48 hours
and then deletes the subscription:
- 401: no Shopify integration for the store, or a signature that does not match (the same
  answer, so a scanner learns nothing); nothing stored.
- 400: no `X-Shopify-Topic`, or a body that is not a JSON object; 413 past 5 MB; 422: a
  field of the wrong type (money as a JSON number) or an id missing. Shopify's own
  payloads never do these: only a request made by hand (with the secret) does, and its
  author reads the reason. Nothing stored.
- 200 for everything Shopify itself sends, even what ulak cannot use (a topic not handled,
  an order that names nobody, a checkout with no email yet, a fulfillment whose order is
  not known yet): retrying the same payload would not change it, and the failures would
  end with the subscription deleted and every later webhook of the topic lost. The body
  lists what was stored and what was skipped with the reason, also logged (no secret,
  no address).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from ulak.customers.service import identities
from ulak.errors import Invalid, UlakError, Unauthorized
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted, problems_of
from ulak.integrations.service import SecretCache, signature_ok
from ulak.integrations.shopify_mapping import (
    Mapped,
    checkout_events,
    customer_events,
    fulfillment_events,
    order_events,
    product_events,
    refund_events,
)
from ulak.integrations.shopify_payloads import (
    Checkout,
    Customer,
    Fulfillment,
    Order,
    Product,
    Refund,
)
from ulak.orders.service import customer_of_order

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
router = APIRouter(prefix="/v1/integrations", tags=["integrations"])

# Past the app's 1 MB for other routes: an order of many hundred lines, each with its
# tax lines and discount allocations (about 1.5 KB a line), can pass 1 MB, and a 413
# would be retried into the subscription's deletion.
MAX_BODY = 5 * 1024 * 1024
# The route counts its body against MAX_BODY itself (app.py's BodyLimit lets it).
WEBHOOK_PATH = re.compile(r"^/v1/integrations/shopify/[^/]+$")

ORDER_TOPICS = frozenset(
    {"orders/create", "orders/paid", "orders/updated", "orders/fulfilled", "orders/cancelled"}
)
TOPICS = ORDER_TOPICS | {
    "fulfillments/create",
    "fulfillments/update",
    "checkouts/create",
    "checkouts/update",
    "customers/create",
    "customers/update",
    "products/update",
    "refunds/create",
}


class BadRequest(UlakError):
    status_code = 400
    code = "bad_request"


class TooLarge(UlakError):
    status_code = 413
    code = "too_large"


class Stored(BaseModel):
    key: str
    type: str
    # True: the store had this event already (a replay, or the same content restated).
    duplicate: bool = False
    # True: a fact already recorded from an earlier webhook (its first report stands).
    known: bool = False


class WebhookResult(BaseModel):
    topic: str
    events: list[Stored] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


def _store_id(text: str) -> int | None:
    # isdigit() alone takes "²" and other Unicode digits int() refuses (it was a 500).
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


async def _body(request: Request) -> bytes:
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_BODY:
        raise TooLarge(f"the body is larger than {MAX_BODY // 1024 // 1024} MB")
    chunks: list[bytes] = []
    read = 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > MAX_BODY:
            raise TooLarge(f"the body is larger than {MAX_BODY // 1024 // 1024} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(model: type[T], payload: dict[str, Any]) -> T:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = problems_of(error)
        raise Invalid(
            "not a Shopify payload: " + "; ".join(f"{p.path}: {p.message}" for p in problems[:5]),
            details=[p.model_dump() for p in problems],
        ) from error


async def _order_customer(request: Request, store_id: int, order_id: int | None) -> dict[str, Any]:
    """How the order's customer is named (the shop's id, email, phone), for a webhook about
    an order that names nobody; empty when ulak does not know the order (yet)."""
    if order_id is None:
        return {}
    async with request.app.state.database.read() as session:
        customer_id = await customer_of_order(session, store_id=store_id, order_id=str(order_id))
        if customer_id is None:
            return {}
        return (await identities(session, ids=[customer_id])).get(customer_id, {})


async def _map(request: Request, store_id: int, topic: str, payload: dict[str, Any]) -> Mapped:
    if topic in ORDER_TOPICS:
        return order_events(_parse(Order, payload), topic=topic)
    if topic.startswith("fulfillments/"):
        fulfillment = _parse(Fulfillment, payload)
        customer = await _order_customer(request, store_id, fulfillment.order_id)
        if not customer and fulfillment.email:
            customer = {"email": fulfillment.email}
        return fulfillment_events(fulfillment, customer=customer)
    if topic == "refunds/create":
        refund = _parse(Refund, payload)
        customer = await _order_customer(request, store_id, refund.order_id)
        return refund_events(refund, customer=customer)
    if topic.startswith("checkouts/"):
        return checkout_events(_parse(Checkout, payload), topic=topic)
    if topic.startswith("customers/"):
        return customer_events(_parse(Customer, payload), topic=topic)
    domain = request.headers.get("x-shopify-shop-domain", "")
    shop = domain if domain.endswith(".myshopify.com") and len(domain) < 120 else None
    return product_events(_parse(Product, payload), shop_domain=shop)


@router.post(
    "/shopify/{store}",
    response_model=WebhookResult,
    summary="A Shopify webhook (see the README's Shopify section for the topics)",
)
async def shopify_webhook(store: str, request: Request) -> Response:
    body = await _body(request)
    store_id = _store_id(store)
    secrets: SecretCache = request.app.state.integration_secrets
    secret = await secrets.secret(store_id, "shopify") if store_id is not None else None
    if secret is None or not signature_ok(
        secret, body, request.headers.get("x-shopify-hmac-sha256")
    ):
        raise Unauthorized("the webhook's signature does not match")
    assert store_id is not None
    topic = request.headers.get("x-shopify-topic", "").strip()
    webhook_id = request.headers.get("x-shopify-webhook-id", "")[:100]
    if not topic:
        raise BadRequest("the X-Shopify-Topic header is missing")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise BadRequest("the body is not valid JSON") from error
    if not isinstance(payload, dict):
        raise BadRequest("the body is not a JSON object")
    result = WebhookResult(topic=topic[:100])
    if topic not in TOPICS:
        result.skipped.append(f"topic {topic[:100]!r} is not one ulak handles")
        mapped = Mapped()
    else:
        mapped = await _map(request, store_id, topic, payload)
        result.skipped = mapped.skipped
    if mapped.events:
        inbox: Inbox = request.app.state.inbox
        answers = await inbox.accept(store_id, list(enumerate(mapped.events)), source="shopify")
        for answer in answers:
            event = mapped.events[answer.index]
            result.events.append(
                Stored(
                    key=answer.key,
                    type=event.type,
                    duplicate=isinstance(answer, Accepted) and answer.duplicate,
                    known=not isinstance(answer, Accepted),
                )
            )
    for reason in result.skipped:
        log.warning(
            "shopify webhook %s (%s) for store %d: skipped %s", webhook_id, topic, store_id, reason
        )
    return Response(result.model_dump_json(), status_code=200, media_type="application/json")

"""The webhooks feature's work: POST the due deliveries to their endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC

import httpx

from ulak.clock import Clock
from ulak.jobs import JobContext, job
from ulak.webhooks import net, signing
from ulak.webhooks.service import Attempted, Claimed, claim_due, next_due, record_attempts

log = logging.getLogger(__name__)

# Each phase of a POST (connect, write, each read); the whole of it, a slowly dripped
# answer included, is bounded by DELIVERY_SECONDS. Tests shorten both.
TIMEOUT_SECONDS = 10.0
DELIVERY_SECONDS = 15.0
# Of an answer only its status counts: at most this much of its body is read.
BODY_LIMIT = 1024


@job("webhooks.deliver", due=next_due)
async def deliver(ctx: JobContext) -> int:
    """One batch: claim the due deliveries (one transaction), POST them all at once
    outside any transaction, then record every outcome (another). Returns how many
    were attempted."""
    async with ctx.transaction() as session:
        claimed = await claim_due(session, now=ctx.clock.now(), limit=ctx.batch_size)
    if not claimed:
        return 0
    # No proxy from the environment: the connection goes to the address `net` checked.
    async with httpx.AsyncClient(
        timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
    ) as client:
        outcomes = await asyncio.gather(*(post(client, c, ctx.clock) for c in claimed))
    async with ctx.transaction() as session:
        await record_attempts(session, list(outcomes))
    return len(claimed)


def body_of(delivery: Claimed) -> bytes:
    """The envelope Standard Webhooks suggests: the type, when it happened, its data.
    The same bytes on every attempt."""
    envelope = {
        "type": delivery.event_type,
        "timestamp": delivery.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": delivery.payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


async def post(client: httpx.AsyncClient, delivery: Claimed, clock: Clock) -> Attempted:
    """One attempt, as its outcome. Errors name what went wrong, never the secret, the
    headers or the body."""

    def outcome(status_code: int | None = None, error: str | None = None) -> Attempted:
        return Attempted(delivery.id, delivery.attempt, clock.now(), status_code, error)

    try:
        # The name's lookup counts against the attempt's time too: a slow resolver must not
        # hold the batch past its lease, when another worker would send it again.
        async with asyncio.timeout(DELIVERY_SECONDS):
            target = await net.check(delivery.url, development=delivery.development)
    except net.Refused as refused:
        return outcome(error=refused.message)
    except TimeoutError:
        return outcome(error="the host's name was not resolved in time")
    body = body_of(delivery)
    headers = signing.headers(
        delivery.secret,
        webhook_id=delivery.event_id,
        timestamp=int(clock.now().timestamp()),
        body=body,
    )
    try:
        async with asyncio.timeout(DELIVERY_SECONDS):
            response = await client.send(target.request(body, headers), stream=True)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= BODY_LIMIT:
                        break
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        return outcome(error=f"no answer in time ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return outcome(error=f"could not be reached ({type(exc).__name__})")
    code = response.status_code
    if 200 <= code < 300:
        return outcome(code)
    if 300 <= code < 400:
        return outcome(code, f"HTTP {code}: redirects are not followed")
    return outcome(code, f"HTTP {code}")

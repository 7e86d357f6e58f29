"""`ulak webhooks`: a store's outbound webhook endpoints and their deliveries."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.terminal import console, in_transaction, reading
from ulak.webhooks.queue import EVENT_TYPES
from ulak.webhooks.service import (
    DeliveryShown,
    EndpointShown,
    add_endpoint,
    deliveries_of,
    endpoints_of,
    remove_endpoint,
    retry_delivery,
)

webhooks_app = typer.Typer(
    help="Send ulak's own events (message.sent, review.submitted, survey.answered, "
    "coupon.redeemed) to a store's URLs, signed (Standard Webhooks).",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]
AsJson = Annotated[bool, typer.Option("--json")]


def _endpoint(e: EndpointShown) -> dict[str, object]:
    return {
        "id": e.id,
        "store_id": e.store_id,
        "url": e.url,
        "events": list(e.event_types),
        "enabled": e.enabled,
        "development": e.development,
        "disabled_reason": e.disabled_reason,
        "created_at": e.created_at.isoformat(),
    }


def _delivery(d: DeliveryShown) -> dict[str, object]:
    return {
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_type": d.event_type,
        "event_id": d.event_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.isoformat(),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


def _json(rows: object) -> None:
    sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")


@webhooks_app.command("add")
def webhooks_add(
    store: Store,
    url: Annotated[str, typer.Option("--url", help="Where to POST (https).")],
    events: Annotated[
        str,
        typer.Option("--events", help=f"Comma-separated, or * for all: {', '.join(EVENT_TYPES)}."),
    ] = "*",
    development: Annotated[
        bool,
        typer.Option(
            help="Development mode: allow http and private or loopback addresses "
            "(a receiver on this machine or network). Never for production."
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Add an endpoint and print its signing secret: the only time it is shown."""

    async def main(session: AsyncSession) -> tuple[EndpointShown, str]:
        return await add_endpoint(
            session,
            store_id=store,
            url=url,
            events=events.split(","),
            development=development,
            clock=SystemClock(),
        )

    shown, secret = in_transaction(main)
    if as_json:
        _json(_endpoint(shown) | {"secret": secret})
        return
    console.print(
        f"endpoint {shown.id}: {shown.url} ({', '.join(shown.event_types)})"
        + (" [development mode]" if shown.development else ""),
        markup=False,
    )
    console.print(f"signing secret: {secret}", markup=False)
    console.print("Keep it now: it is not shown again.", markup=False)


@webhooks_app.command("list")
def webhooks_list(store: Store, as_json: AsJson = False) -> None:
    """A store's endpoints; never a secret."""

    async def main(session: AsyncSession) -> list[EndpointShown]:
        return await endpoints_of(session, store_id=store)

    shown = reading(main)
    if as_json:
        _json([_endpoint(e) for e in shown])
        return
    if not shown:
        console.print("no webhook endpoints", markup=False)
    for e in shown:
        state = "enabled" if e.enabled else f"disabled: {e.disabled_reason}"
        console.print(
            f"{e.id}: {e.url} ({', '.join(e.event_types)}) {state}"
            + (" [development mode]" if e.development else ""),
            markup=False,
        )


@webhooks_app.command("remove")
def webhooks_remove(
    store: Store, endpoint: Annotated[int, typer.Argument(help="The endpoint's id.")]
) -> None:
    """Remove an endpoint and its deliveries, sent or not."""

    async def main(session: AsyncSession) -> None:
        await remove_endpoint(session, store_id=store, endpoint_id=endpoint)

    in_transaction(main)
    console.print(f"webhook endpoint {endpoint} removed", markup=False)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    store: Store,
    status: Annotated[
        str | None, typer.Option(help="pending, delivered or failed; all by default.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: AsJson = False,
) -> None:
    """A store's latest deliveries, newest first."""

    async def main(session: AsyncSession) -> list[DeliveryShown]:
        return await deliveries_of(session, store_id=store, status=status, limit=limit)

    shown = reading(main)
    if as_json:
        _json([_delivery(d) for d in shown])
        return
    if not shown:
        console.print("no webhook deliveries", markup=False)
    for d in shown:
        code = f" HTTP {d.last_status_code}" if d.last_status_code else ""
        error = f" ({d.last_error})" if d.last_error and d.status != "delivered" else ""
        console.print(
            f"{d.id}: {d.event_type} {d.event_id} to endpoint {d.endpoint_id}: {d.status}"
            f" after {d.attempts} attempt(s){code}{error}",
            markup=False,
        )


@webhooks_app.command("retry")
def webhooks_retry(
    store: Store, delivery: Annotated[int, typer.Argument(help="The failed delivery's id.")]
) -> None:
    """Send a failed delivery again, from now, with a fresh schedule of attempts."""

    async def main(session: AsyncSession) -> None:
        await retry_delivery(session, store_id=store, delivery_id=delivery, now=SystemClock().now())

    in_transaction(main)
    console.print(f"webhook delivery {delivery} is due again", markup=False)

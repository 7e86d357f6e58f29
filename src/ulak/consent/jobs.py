"""The consent feature's work: İYS, both ways (`consent/iys.py`, `consent/iys_pull.py`)."""

from __future__ import annotations

import httpx

from ulak.consent.iys_client import TIMEOUT
from ulak.consent.iys_pull import PULL_EVERY, next_pull_due, pull_all
from ulak.consent.iys_push import next_push_due, push_due
from ulak.jobs import JobContext, job


def _http() -> httpx.AsyncClient:
    # Made only when there is work: building its TLS context costs milliseconds.
    return httpx.AsyncClient(timeout=TIMEOUT)


@job("consent.iys_push", due=next_push_due)
async def iys_push(ctx: JobContext) -> int:
    """Register the queued consent changes of the stores with an İYS account, in order."""
    return await push_due(ctx.database, _http, now=ctx.clock.now(), limit=ctx.batch_size)


@job("consent.iys_pull", every=PULL_EVERY, due=next_pull_due, wakes=("events.apply",))
async def iys_pull(ctx: JobContext) -> int:
    """Turn the changes made at İYS itself into consent.updated events."""
    return await pull_all(ctx.database, _http, now=ctx.clock.now())

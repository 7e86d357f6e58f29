"""The SMS feature's work: ask the gateways that are polled (Netgsm, İleti Merkezi) for
the delivery reports of the SMS they took."""

from __future__ import annotations

import logging
from collections import defaultdict
from time import monotonic
from weakref import WeakKeyDictionary

import httpx

from ulak.channels.gateways import gateway_for
from ulak.channels.gateways.base import DeliveryReport, GatewayError
from ulak.db import Database
from ulak.jobs import JobContext, job
from ulak.messages.reports import awaiting_reports, next_report_due, record_report
from ulak.sms.service import gateway_setup

log = logging.getLogger(__name__)

# A store's gateway is asked at most this often: Netgsm answers 10 report queries a minute.
POLL_SECONDS = 60.0
# When each store's gateway was last asked (monotonic()), per database this process works on.
_asked: WeakKeyDictionary[Database, dict[int, float]] = WeakKeyDictionary()


@job("sms.poll_reports", due=next_report_due)
async def poll_reports(ctx: JobContext) -> int:
    """One round: read the SMS awaiting a report, ask each store's gateway (outside any
    transaction), and apply the final reports in one transaction. Returns how many
    messages changed. A store asked less than POLL_SECONDS ago waits for its turn."""
    asked = _asked.setdefault(ctx.database, {})
    waiting = {store for store, at in asked.items() if monotonic() - at < POLL_SECONDS}
    async with ctx.database.read() as session:
        awaiting = await awaiting_reports(
            session, now=ctx.clock.now(), limit=ctx.batch_size * 10, besides=waiting
        )
    by_store: dict[int, list[str]] = defaultdict(list)
    for row in awaiting:
        by_store[row.store_id].append(row.provider_id)
    if not by_store:
        return 0
    reports: list[tuple[int, DeliveryReport]] = []
    async with httpx.AsyncClient(timeout=ctx.settings.sms_timeout_seconds) as client:
        for store_id, ids in by_store.items():
            asked[store_id] = monotonic()
            async with ctx.database.read() as session:
                setup = await gateway_setup(session, store_id=store_id)
            if setup.provider is None:
                continue
            try:
                gateway = gateway_for(
                    setup.provider,
                    setup.credentials,
                    client=client,
                    base_url=ctx.settings.sms_gateway_url or None,
                    clock=ctx.clock,
                    # As the sender built it: a gateway that posts its reports (Twilio) is
                    # not polled for them.
                    callback_url=(
                        f"{ctx.settings.base_url}/v1/sms/reports/{setup.provider}/{setup.report_token}"
                    ),
                )
                found = await gateway.poll_reports(ids)
            except (GatewayError, ValueError) as error:
                log.warning("SMS reports of store %s not read: %s", store_id, error)
                continue
            reports += [(store_id, r) for r in found if r.status != "pending"]
    if not reports:
        return 0
    changed = 0
    async with ctx.transaction() as session:
        for store_id, report in reports:
            changed += await record_report(
                session,
                store_id=store_id,
                provider_id=report.provider_id,
                delivered=report.status == "delivered",
                reason=report.reason,
            )
    return changed

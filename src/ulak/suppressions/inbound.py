"""Bounces and complaints coming in: a report is read (`reports.parse`), tied to the
message it returns by the signed tag (the VERP address it was sent to, or the
`X-Ulak-Message` header it returns), and handed to the worker as a `message.bounced` or
`message.complained` event through the events inbox; the worker applies it
(`suppressions.apply`). Neither `ulak inbound` nor the API process writes another
feature's tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.events.schemas import EventIn
from ulak.messages.service import ReportedMessage, reported_message
from ulak.suppressions.reports import MAX_REPORT_BYTES, Report, parse
from ulak.suppressions.verp import tag_of_address, verifies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    """What became of one report: the event it became (its type and key), or why none."""

    event_type: str | None
    key: str | None
    message_id: int | None
    ignored: str | None = None


async def _message(
    database: Database, candidates: Sequence[tuple[int, str]], store_id: int | None
) -> ReportedMessage | None:
    """The first message a candidate tag names whose signature holds (of `store_id`, when
    given). A tag that does not verify is a forgery or another system's, and is ignored."""
    async with database.read() as session:
        for message_id, mac in candidates:
            found = await reported_message(session, message_id=message_id, store_id=store_id)
            if found is not None and verifies(found.id, mac, found.link_secret):
                return found
    return None


def _event(report: Report, message: ReportedMessage) -> tuple[EventIn, str] | None:
    if report.type == "arf":
        key = f"derived:arf:{message.id}"
        data: dict[str, Any] = {"message_id": message.id, "feedback_type": report.feedback_type}
        return EventIn(id=key, type="message.complained", data=data), key
    # The failure about the message's recipient; a DSN about one recipient may name it as
    # rewritten by a forwarder, so a single failure counts whatever its address.
    mine = [f for f in report.failures if f.address == message.to_address.lower()]
    failure = mine[0] if mine else report.failures[0] if len(report.failures) == 1 else None
    if failure is None:
        return None
    key = f"derived:dsn:{message.id}:{failure.kind}"
    data = {
        "message_id": message.id,
        "kind": failure.kind,
        "status": failure.status,
        "diagnostic": failure.diagnostic[:1000],
        "source": "dsn",
    }
    return EventIn(id=key, type="message.bounced", data=data), key


async def take_report(
    database: Database,
    inbox: Inbox,
    raw: bytes,
    *,
    recipients: Sequence[str] = (),
    bounce_domain: str = "",
    store_id: int | None = None,
) -> Taken:
    """Read one report and pass it on; `recipients` are its envelope recipients (a VERP
    address), `store_id` limits it to one store's messages (a store's own API key)."""
    if len(raw) > MAX_REPORT_BYTES:
        return Taken(None, None, None, "too large")
    try:
        report = await asyncio.to_thread(parse, raw)
    except Exception:  # a malformed message is dropped, not retried forever by the sender
        log.exception("an inbound report could not be read")
        return Taken(None, None, None, "unreadable")
    if report is None:
        return Taken(None, None, None, "neither a delivery status notification nor an ARF report")
    candidates = [
        tag for r in recipients if bounce_domain and (tag := tag_of_address(r, bounce_domain))
    ]
    message = await _message(database, [*candidates, *report.tags], store_id)
    if message is None:
        return Taken(None, None, None, "names no message of ulak's (or its signature is wrong)")
    made = _event(report, message)
    if made is None:
        return Taken(None, None, message.id, "reports no failure")
    event, key = made
    await inbox.accept(
        message.store_id, [(0, event)], source="inbound", customer_id=message.customer_id
    )
    return Taken(event.type, key, message.id)

"""`ulak inbound`: an SMTP server for the bounce domain's mail (its MX), where receiving
servers send DSNs to VERP addresses and mailbox providers their abuse reports.

It accepts mail only for addresses at the bounce domain (anything else is refused at
RCPT: it never relays), at most MAX_REPORT_BYTES a message (refused at DATA), and answers
250 to what it accepted even when the report names nothing of ulak's, so the sending
server does not bounce the bounce."""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.suppressions.inbound import take_report
from ulak.suppressions.reports import MAX_REPORT_BYTES

log = logging.getLogger(__name__)


class ReportHandler:
    def __init__(self, database: Database, inbox: Inbox, bounce_domain: str) -> None:
        if not bounce_domain:
            raise ValueError("ulak inbound needs ULAK_BOUNCE_DOMAIN: the domain it receives for")
        self.database = database
        self.inbox = inbox
        self.bounce_domain = bounce_domain.lower()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.rpartition("@")[2].lower() != self.bounce_domain:
            return "550 5.7.1 relaying denied: this server only receives reports"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            taken = await take_report(
                self.database,
                self.inbox,
                raw,
                recipients=list(envelope.rcpt_tos),
                bounce_domain=self.bounce_domain,
            )
        except Exception:
            log.exception("an inbound report could not be passed on")
            return "451 4.3.0 try again later"
        if taken.ignored:
            log.info("inbound report ignored: %s", taken.ignored)
        return "250 OK"


def listener(handler: ReportHandler, *, host: str, port: int) -> Controller:
    """The server, started by the caller (`start()`; `stop()`)."""
    return Controller(
        handler, hostname=host, port=port, data_size_limit=MAX_REPORT_BYTES, server_hostname=None
    )

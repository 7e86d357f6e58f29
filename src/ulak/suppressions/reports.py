"""Reading delivery status notifications (RFC 3464) and abuse reports (ARF, RFC 5965).

The stdlib's parser reads `multipart/report` as it is: a `message/delivery-status` part
comes out as one header block per recipient, the feedback report as one block. That is what
Postfix, Exim 4.x, Gmail and Microsoft 365/Outlook send today. Older text-only bounces
(Exim before DSNs, Gmail before 2016, tests/samples/dsn) name the failed address in
`X-Failed-Recipients` and the reply in the text; those are read from there. (flufl.bounce
knows more historical formats, but only finds addresses: it tells neither the status nor
which message bounced, and ulak needs both.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

from ulak.suppressions.verp import HEADER, tags_in

Kind = Literal["hard", "soft", "blocked"]

# Reports larger than this are not read (a DSN returns at most the original message).
MAX_REPORT_BYTES = 1_048_576

ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?<!\d)([45]\d\d)[ -]")
_TAGGED = re.compile(rf"{HEADER}:\s*<?([0-9]+\.[0-9a-f]+)", re.IGNORECASE)
_VERP = re.compile(r"bounce\+([0-9]+\.[0-9a-f]+)@", re.IGNORECASE)


def classify(status: str | None, code: int | None = None) -> Kind | None:
    """What a permanent or temporary failure says about the address.

    5.x.x is a hard bounce, except 5.7.x (policy: spam filters, authentication, our own
    sender's reputation: not the address's fault) and 5.2.2 (mailbox full: it may be
    emptied), which count like 4.x.x, a soft bounce. Without an enhanced status code the
    SMTP reply decides: 5xx hard, 4xx soft."""
    if status:
        found = ENHANCED_STATUS.search(status)
        if found:
            klass, subject, detail = found.groups()
            if klass == "5":
                if subject == "7":
                    return "blocked"
                if (subject, detail) == ("2", "2"):
                    return "soft"
                return "hard"
            if klass == "4":
                return "soft"
            return None
    if code is not None:
        if 500 <= code < 600:
            return "hard"
        if 400 <= code < 500:
            return "soft"
    return None


@dataclass(frozen=True)
class Failure:
    """One recipient a DSN reports as not delivered."""

    address: str
    status: str  # the enhanced status code, "" when the report gives none
    diagnostic: str
    kind: Kind


@dataclass(frozen=True)
class Report:
    """What a DSN or abuse report says, and which of ulak's messages it returns."""

    type: Literal["dsn", "arf"]
    failures: tuple[Failure, ...]  # a DSN's failed recipients (delays and successes left out)
    feedback_type: str  # ARF: abuse, fraud, ...; "" for a DSN
    complainant: str  # ARF: Original-Rcpt-To, when the provider leaves it in
    tags: tuple[tuple[int, str], ...]  # (message id, signature) found, in order
    message_ids: tuple[str, ...]  # Message-ID headers of the returned message


def _value(value: object) -> str:
    return " ".join(str(value or "").split())


def _address(field: str) -> str:
    # "rfc822; someone@example.com" (RFC 3464 address-type; value)
    return field.partition(";")[2].strip().strip("<>") if ";" in field else field.strip("<>")


def _status(block: Message) -> str:
    found = ENHANCED_STATUS.search(_value(block.get("Status")))
    return ".".join(found.groups()) if found else ""


def _texts(message: Message) -> list[str]:
    """Every part's text, returned messages' headers included, for finding ulak's tag."""
    out = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            for returned in inner if isinstance(inner, list) else []:
                if isinstance(returned, Message):
                    out.append(str(returned.as_string(policy=policy.compat32)))
        elif part.get_content_maintype() == "text" or content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return out


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    parser = HeaderParser()
    return [parser.parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", str(payload)) if chunk]


def parse(raw: bytes) -> Report | None:
    """The report `raw` is, or None: neither a DSN nor an abuse report ulak can read."""
    if len(raw) > MAX_REPORT_BYTES:
        return None
    message = message_from_bytes(raw, policy=policy.compat32)
    texts = _texts(message)
    everything = "\n".join(texts)
    tags = _TAGGED.findall(everything) + _VERP.findall(everything)
    found = tuple(dict.fromkeys(t for tag in tags for t in tags_in(tag)))
    returned_ids = tuple(
        dict.fromkeys(re.findall(r"^Message-I[Dd]:\s*(<[^>\s]+>)", everything, re.MULTILINE))
    )
    report_type = message.get_param("report-type", header="content-type")
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/feedback-report":
            fields = {}
            for block in _blocks(part):
                fields.update({k.lower(): _value(v) for k, v in block.items()})
            return Report(
                type="arf",
                failures=(),
                feedback_type=fields.get("feedback-type", "abuse").lower(),
                complainant=_address(fields.get("original-rcpt-to", "")),
                tags=found,
                message_ids=returned_ids,
            )
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            failures = []
            for block in _blocks(part)[1:] or _blocks(part):
                if not block.get("Final-Recipient") and not block.get("Original-Recipient"):
                    continue
                # "delayed" is a warning; "delivered", "relayed", "expanded" went through.
                if _value(block.get("Action")).lower() != "failed":
                    continue
                status = _status(block)
                diagnostic = _value(block.get("Diagnostic-Code")).partition(";")[2].strip()
                code = _REPLY.search(diagnostic + " ")
                kind = classify(status, int(code.group(1)) if code else 500)
                if kind is not None:
                    failures.append(
                        Failure(
                            address=_address(
                                _value(block.get("Final-Recipient") or block["Original-Recipient"])
                            ).lower(),
                            status=status,
                            diagnostic=diagnostic,
                            kind=kind,
                        )
                    )
            return Report("dsn", tuple(failures), "", "", found, returned_ids)
    failed = _value(message.get("X-Failed-Recipients"))
    if failed and report_type is None:
        # A text-only bounce: the first status code in the text before the returned copy.
        body = texts[0] if texts else ""
        status_match = ENHANCED_STATUS.search(body)
        reply = _REPLY.search(body)
        status = ".".join(status_match.groups()) if status_match else ""
        kind = classify(status, int(reply.group(1)) if reply else 500)
        line = next(
            (ln.strip() for ln in body.splitlines() if status and status in ln),
            next((ln.strip() for ln in body.splitlines() if reply and reply.group(0) in ln), ""),
        )
        listed = tuple(
            Failure(address.strip().lower(), status, line, kind)
            for address in failed.split(",")
            if address.strip() and kind is not None
        )
        return Report("dsn", listed, "", "", found, returned_ids)
    return None

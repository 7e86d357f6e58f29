"""Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`
(form-encoded, Basic auth), delivery reports posted to `StatusCallback` and signed with
`X-Twilio-Signature`.

Reports come by callback when ulak has a public callback URL: Twilio pushes each change
at no cost to us, whereas polling is one `GET .../Messages/{sid}.json` per message, which
counts against the account's API concurrency. Without a callback URL (a shop not
reachable from the internet) `poll_reports` reads each message instead."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx

from ulak.channels.gateways.base import (
    CallbackRefused,
    DeliveryReport,
    GatewayError,
    ReportStatus,
    SmsAccepted,
    SmsRequest,
)
from ulak.channels.gateways.wire import basic_auth, call, json_object, retry_after, server_error

BASE_URL = "https://api.twilio.com"

# Twilio error codes (twilio.com/docs/api/errors) whose cause a retry cannot remove.
ERRORS = {
    20003: "authentication failed",
    21211: "invalid 'To' number",
    21408: "sending to this region is not enabled on the account",
    21606: "the 'From' number cannot send SMS",
    21610: "recipient replied STOP (unsubscribed)",
    21612: "cannot route from this sender to the 'To' number",
    21614: "'To' is not a mobile number",
    21617: "message body too long",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown error",
}
THROTTLED = {20429}
PENDING = {"accepted", "scheduled", "queued", "sending", "sent"}
DELIVERED = {"delivered", "read"}
FAILED = {"undelivered", "failed", "canceled"}
# A Messaging Service SID ("MG" + 32 hex) goes as MessagingServiceSid, anything else as From.
SERVICE_PREFIX = "MG"


class TwilioGateway:
    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        callback_url: str | None = None,
    ) -> None:
        self._sid = account_sid
        self._token = auth_token.encode()
        self._auth = basic_auth(account_sid, auth_token)
        self._client = client
        base = (base_url or BASE_URL).rstrip("/")
        self._messages = f"{base}/2010-04-01/Accounts/{quote(account_sid)}/Messages"
        self._callback_url = callback_url

    def __repr__(self) -> str:
        return f"<TwilioGateway {self._messages}>"

    async def send(self, request: SmsRequest) -> SmsAccepted:
        form = {"To": request.to, "Body": request.text}
        if request.sender.startswith(SERVICE_PREFIX) and len(request.sender) == 34:
            form["MessagingServiceSid"] = request.sender
        else:
            form["From"] = request.sender
        if self._callback_url:
            form["StatusCallback"] = self._callback_url
        response = await call(
            self._client,
            "Twilio",
            "POST",
            f"{self._messages}.json",
            data=form,
            headers={"Authorization": self._auth},
        )
        data = json_object(response) or {}
        if response.status_code in (200, 201) and data.get("sid"):
            segments = str(data.get("num_segments") or "")
            return SmsAccepted(
                provider_id=str(data["sid"]),
                segments=int(segments) if segments.isdigit() else None,
            )
        raise _error(response, data)

    async def poll_reports(self, provider_ids: Sequence[str]) -> list[DeliveryReport]:
        if self._callback_url:
            return []  # Twilio posts them to the callback URL
        reports: list[DeliveryReport] = []
        for provider_id in provider_ids:
            try:
                report = await self._fetch(provider_id)
            except GatewayError:
                if reports:
                    break  # keep what was read; the rest waits for the next poll
                raise
            if report is not None:
                reports.append(report)
        return reports

    async def _fetch(self, provider_id: str) -> DeliveryReport | None:
        response = await call(
            self._client,
            "Twilio",
            "GET",
            f"{self._messages}/{quote(provider_id)}.json",
            headers={"Authorization": self._auth},
        )
        if response.status_code == 404:
            return None
        data = json_object(response) or {}
        if response.status_code != 200:
            raise _error(response, data)
        return _report(
            provider_id,
            str(data.get("status")),
            data.get("error_code"),
            _twilio_time(data.get("date_updated")),
        )

    def parse_callback(
        self, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[DeliveryReport]:
        """Checks `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the auth token, of the
        URL Twilio called followed by each POST parameter's name and value, sorted by name."""
        signature = next(
            (value for name, value in headers.items() if name.lower() == "x-twilio-signature"),
            None,
        )
        if not signature:
            raise CallbackRefused("Twilio callback without X-Twilio-Signature")
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise CallbackRefused("Twilio callback body is not a form") from None
        if not hmac.compare_digest(signature.encode(), sign(self._token, url, params).encode()):
            raise CallbackRefused("Twilio callback signature does not match")
        fields = dict(params)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        status = fields.get("MessageStatus") or fields.get("SmsStatus")
        if not sid or not status:
            raise CallbackRefused("Twilio callback without MessageSid or MessageStatus")
        if fields.get("AccountSid", self._sid) != self._sid:
            raise CallbackRefused("Twilio callback for another account")
        report = _report(sid, status, fields.get("ErrorCode"), None)
        if report is None:
            raise CallbackRefused(f"Twilio callback with unknown status {status!r}")
        return [report]

    async def close(self) -> None:
        """The client is shared and closed by its owner."""


def sign(token: bytes, url: str, params: Sequence[tuple[str, str]]) -> str:
    """Twilio's request signature (also used by tests' fake to sign its callbacks)."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(token, payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _error(response: httpx.Response, data: dict[str, Any]) -> GatewayError:
    code = data.get("code")
    said = str(data.get("message") or "").strip()
    if response.status_code == 429 or code in THROTTLED:
        return GatewayError(
            f"Twilio {code or 429}: too many requests",
            permanent=False,
            code=str(code or 429),
            retry_after=retry_after(response),
        )
    if response.status_code >= 500:
        return server_error("Twilio", response)
    if isinstance(code, int) and code in ERRORS:
        return GatewayError(f"Twilio {code}: {ERRORS[code]}", permanent=True, code=str(code))
    if 400 <= response.status_code < 500:
        # Any other refusal of a request: sending the same request again gets the same answer.
        return GatewayError(
            f"Twilio {code or response.status_code}: {said or 'request refused'}",
            permanent=True,
            code=str(code or response.status_code),
        )
    return GatewayError(
        f"Twilio gave an unexpected answer (HTTP {response.status_code})",
        permanent=False,
        code=str(response.status_code),
    )


def _report(
    provider_id: str, status: str, error_code: object, at: datetime | None
) -> DeliveryReport | None:
    state: ReportStatus
    if status in PENDING:
        state = "pending"
    elif status in DELIVERED:
        state = "delivered"
    elif status in FAILED:
        state = "failed"
    else:
        return None
    reason = None
    if state == "failed":
        code = str(error_code or "").strip()
        meaning = ERRORS.get(int(code), "") if code.isdigit() else ""
        detail = f"{code}: {meaning}" if meaning else code
        reason = f"Twilio {status}" + (f" ({detail})" if code else "")
    return DeliveryReport(provider_id=provider_id, status=state, reason=reason, at=at)


def _twilio_time(value: object) -> datetime | None:
    """Twilio's times are RFC 2822 ("Thu, 30 Jul 2015 20:12:31 +0000")."""
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

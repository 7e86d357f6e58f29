"""A fake Twilio (Programmable Messaging and signed status callbacks)."""

from __future__ import annotations

import math
import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sms_fakes.base import FakeProvider, Recorded, SentSms, basic
from ulak.channels.gateways.twilio import sign


class TwilioFake(FakeProvider):
    """Programmable Messaging. Reports: `report(sid, status, error_code)`; "queued" until
    set; `post_callback` posts it, signed, to the message's StatusCallback."""

    name = "Twilio"

    def __init__(
        self,
        account_sid: str = "AC" + "5ef8732a3c49700934481addd5ce1659",
        auth_token: str = "twilio-token-" + "0f9a8b7c6d5e4f3a",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.statuses: dict[str, tuple[str, int | None]] = {}
        super().__init__()

    def routes(self) -> list[Route]:
        base = "/2010-04-01/Accounts/{account}/Messages"
        return [
            Route(base + ".json", self._send, methods=["POST"]),
            Route(base + "/{sid}.json", self._fetch, methods=["GET"]),
        ]

    def reset(self) -> None:
        super().reset()
        self.statuses.clear()

    def report(self, sid: str, status: str, error_code: int | None = None) -> None:
        self.statuses[sid] = (status, error_code)

    def callback(self, sid: str, url: str | None = None) -> tuple[dict[str, str], bytes]:
        """The headers and body Twilio posts for the message's current status."""
        sms = self.by_id(sid)[0]
        status, error = self.statuses.get(sid, ("queued", None))
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": sms.sender,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": sms.number,
        }
        if error is not None:
            params["ErrorCode"] = str(error)
        target = url or sms.callback_url
        signature = sign(self.auth_token.encode(), target, list(params.items()))
        headers = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return headers, urlencode(params).encode()

    async def post_callback(self, sid: str, client: httpx.AsyncClient) -> httpx.Response:
        sms = self.by_id(sid)[0]
        headers, body = self.callback(sid)
        return await client.post(sms.callback_url, content=body, headers=headers)

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status,
        )

    def _authorised(self, request: Request, recorded: Recorded) -> bool:
        return request.path_params["account"] == self.account_sid and basic(
            recorded.headers.get("authorization", "")
        ) == (self.account_sid, self.auth_token)

    async def _send(self, request: Request) -> Response:
        recorded = await self._record(request)
        if recorded.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self._problem("send body is not form-encoded")
        form = dict(parse_qsl(recorded.body.decode(), keep_blank_values=True))
        if set(form) - {"To", "From", "MessagingServiceSid", "Body", "StatusCallback"}:
            return self._problem(f"send parameters not as documented: {form!r}")
        if not self._authorised(request, recorded):
            return self._error(401, 20003, "Authenticate")
        if scripted := await self._scripted("send"):
            return scripted
        if not re.fullmatch(r"\+[1-9]\d{7,14}", form.get("To", "")):
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {form.get('To')}")
        sender = form.get("From") or form.get("MessagingServiceSid")
        if not sender:
            return self._error(400, 21603, "A 'From' phone number is required.")
        body = form.get("Body", "")
        if not body:
            return self._error(400, 21602, "Message body is required.")
        sid = "SM" + secrets.token_hex(16)
        self.accept(SentSms(sid, form["To"], body, sender, "", form.get("StatusCallback", "")))
        return JSONResponse(self._resource(sid), 201)

    async def _fetch(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not self._authorised(request, recorded):
            return self._error(401, 20003, "Authenticate")
        if scripted := await self._scripted("report"):
            return scripted
        sid = request.path_params["sid"]
        if not self.by_id(sid):
            return self._error(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(self._resource(sid), 200)

    def _resource(self, sid: str) -> dict[str, Any]:
        sms = self.by_id(sid)[0]
        status, error = self.statuses.get(sid, ("queued", None))
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": sms.text,
            "date_created": "Tue, 01 Dec 2026 09:00:00 +0000",
            "date_updated": "Tue, 01 Dec 2026 09:00:05 +0000",
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": error,
            "error_message": None,
            "from": sms.sender,
            "num_segments": str(1 if len(sms.text) <= 160 else math.ceil(len(sms.text) / 153)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "to": sms.number,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

"""İleti Merkezi: `POST /v1/send-sms/json` (one order per message), reports polled with
`POST /v1/get-report/json` or posted to its webhook. Formats from iletimerkezi's
apidocs (docs/sms/send, docs/sms/report), as collected in shared/gateways.md.

The webhook is set once in the İleti Merkezi panel and its posts carry no signature:
`parse_callback` accepts only a well-formed report, and the SMS channel gives each store
a callback URL with an unguessable token in its path, which it checks before calling
this, so a stranger cannot mark messages delivered."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ulak.channels.gateways.base import (
    CallbackRefused,
    DeliveryReport,
    GatewayError,
    ReportStatus,
    SmsAccepted,
    SmsRequest,
)
from ulak.channels.gateways.wire import call, json_object, retry_after, turkish_mobile

BASE_URL = "https://api.iletimerkezi.com"

PERMANENT = {
    "400": "request could not be parsed",
    "401": "bad credentials or this IP is not allowed",
    "402": "insufficient balance",
    "404": "no such API method",
    "422": "invalid request",
    "450": "sender header not approved on the account",
    # Permanent: the same text reached the same number within 10 minutes, so sending
    # again would be refused again, or deliver a duplicate.
    "451": "duplicate: same text to the same number within 10 minutes",
    "452": "invalid recipients (or the number is on the account's block list)",
    "453": "message longer than 7 SMS",
    "454": "message text is empty",
    "457": "invalid send date format",
    "459": "sender header is empty",
    "460": "sender header longer than 11 characters or has Turkish letters",
    "466": "invalid number",
    "468": "İYS flag missing",
    "469": "İYS list missing",
    "470": "İYS brand code missing",
}
MESSAGE_STATUS: dict[str, ReportStatus] = {"110": "pending", "111": "delivered", "112": "failed"}
WEBHOOK_STATUS: dict[str, ReportStatus] = {
    "accepted": "pending",
    "delivered": "delivered",
    "undelivered": "failed",
}


class IletiMerkeziGateway:
    name = "iletimerkezi"

    def __init__(
        self,
        *,
        key: str,
        hash: str,  # İleti Merkezi's name for the credential
        client: httpx.AsyncClient,
        base_url: str | None = None,
    ) -> None:
        self._authentication = {"key": key, "hash": hash}
        self._client = client
        self._base = (base_url or BASE_URL).rstrip("/")

    def __repr__(self) -> str:
        return f"<IletiMerkeziGateway {self._base}>"

    async def send(self, request: SmsRequest) -> SmsAccepted:
        order: dict[str, Any] = {"sender": request.sender, "sendDateTime": []}
        if request.commercial:
            order["iys"] = "1"
            order["iysList"] = "BIREYSEL" if request.recipient_type == "individual" else "TACIR"
        else:
            order["iys"] = "0"
        order["message"] = {
            "text": request.text,
            "receipents": {"number": [turkish_mobile("İleti Merkezi", request.to)]},
        }
        data = await self._post("/v1/send-sms/json", order)
        order_id = (data.get("order") or {}).get("id")
        if not order_id:
            raise GatewayError(
                "İleti Merkezi accepted the order without an id", permanent=False, code="200"
            )
        return SmsAccepted(provider_id=str(order_id))

    async def poll_reports(self, provider_ids: Sequence[str]) -> list[DeliveryReport]:
        """One query per order (one message each)."""
        reports: list[DeliveryReport] = []
        for provider_id in provider_ids:
            try:
                data = await self._post(
                    "/v1/get-report/json", {"id": provider_id, "page": 1, "rowCount": 1000}
                )
            except GatewayError as error:
                # 455: not found yet (still waiting to go out); 456: scheduled for later.
                if error.code in {"455", "456"}:
                    continue
                if reports:
                    break  # keep what was read; the rest waits for the next poll
                raise
            order = data.get("order")
            messages = order.get("message") if isinstance(order, dict) else None
            if isinstance(messages, dict):
                messages = [messages]
            for message in messages if isinstance(messages, list) else []:
                status = isinstance(message, dict) and MESSAGE_STATUS.get(
                    str(message.get("status"))
                )
                if status:
                    reason = "İleti Merkezi 112: not delivered" if status == "failed" else None
                    reports.append(DeliveryReport(provider_id, status, reason))
        return reports

    def parse_callback(
        self, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[DeliveryReport]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise CallbackRefused("İleti Merkezi report is not JSON") from None
        report = data.get("report") if isinstance(data, dict) else None
        if not isinstance(report, dict):
            raise CallbackRefused("İleti Merkezi report has no 'report' object")
        packet_id = report.get("packet_id")
        status = WEBHOOK_STATUS.get(str(report.get("status")))
        if not isinstance(packet_id, int | str) or isinstance(packet_id, bool) or not status:
            raise CallbackRefused("İleti Merkezi report lacks packet_id or a known status")
        if not str(packet_id).isdigit():
            raise CallbackRefused("İleti Merkezi report has a packet_id that is not an id")
        if status == "failed":
            return [DeliveryReport(str(packet_id), "failed", reason="İleti Merkezi: undelivered")]
        return [DeliveryReport(str(packet_id), "delivered" if status == "delivered" else "pending")]

    async def close(self) -> None:
        """The client is shared and closed by its owner."""

    async def _post(self, path: str, order: dict[str, Any]) -> dict[str, Any]:
        """The answer's `response` when its status is 200; otherwise a GatewayError."""
        payload = {"request": {"authentication": self._authentication, "order": order}}
        response = await call(
            self._client, "İleti Merkezi", "POST", f"{self._base}{path}", json=payload
        )
        data = json_object(response) or {}
        answer = data.get("response") if isinstance(data.get("response"), dict) else {}
        assert isinstance(answer, dict)
        status = answer.get("status") if isinstance(answer.get("status"), dict) else {}
        assert isinstance(status, dict)
        # The HTTP status mirrors the code; a proxy's error page has only the HTTP one.
        code = str(status.get("code") or response.status_code)
        if code == "200" and response.status_code == 200:
            return answer
        said = str(status.get("message") or "").strip()
        if code in PERMANENT:
            reason = f"İleti Merkezi {code}: {PERMANENT[code]}"
            if said and said.lower() != PERMANENT[code].lower():
                reason += f" ({said})"
            raise GatewayError(reason, permanent=True, code=code)
        if code.isdigit() and 400 <= int(code) < 500 and code not in {"429"}:
            raise GatewayError(
                f"İleti Merkezi {code}: {said or 'request refused'}", permanent=True, code=code
            )
        # 503 (unavailable), other 5xx, 429 and unreadable answers: try again later.
        raise GatewayError(
            f"İleti Merkezi {code}: {said or 'unavailable'}",
            permanent=False,
            code=code,
            retry_after=retry_after(response),
        )

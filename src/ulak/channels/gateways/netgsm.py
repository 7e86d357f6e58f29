"""Netgsm, REST v2: `POST /sms/rest/v2/send` for each message, delivery reports polled
with `POST /sms/rest/v2/report` by job id. Netgsm posts nothing back.

Codes and statuses are those of Netgsm's SDKs (netgsm-sms-python, netgsm-sms-js), as
collected in shared/gateways.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from ulak.channels.gateways.base import (
    CallbackRefused,
    DeliveryReport,
    GatewayError,
    SmsAccepted,
    SmsRequest,
)
from ulak.channels.gateways.wire import (
    TURKEY,
    basic_auth,
    call,
    json_object,
    server_error,
    turkish_mobile,
)
from ulak.clock import Clock, SystemClock

BASE_URL = "https://api.netgsm.com.tr"

ACCEPTED = {"00", "01", "02"}  # 01/02: accepted with the start/stop date corrected
PERMANENT = {
    "20": "message text problem or too long",
    "30": "bad credentials, no API access, or this IP is not allowed",
    "40": "sender header (msgheader) not defined on the account",
    "50": "the account cannot send İYS-checked messages",
    "51": "no İYS brand code on the account",
    "70": "invalid or missing parameter",
}
# Both limits are per minute: retrying sooner than a minute only meets them again.
THROTTLED = {
    "80": "sending limit reached",
    "85": "more than 20 tasks to the same number within a minute",
}
SYSTEM = {"100": "Netgsm system error", "101": "Netgsm system error"}
THROTTLE_SECONDS = 60.0

STATUS_FAILED = {
    2: "not delivered in its validity period",
    3: "invalid or restricted number",
    4: "not sent to the operator",
    11: "rejected by the operator",
    12: "send error",
    13: "duplicate message",
    14: "no credit",
    15: "number is blacklisted",
    16: "rejected by İYS (no consent)",
    17: "İYS error",
}
ERROR_CODES = {
    101: "inbox full",
    102: "phone off or out of coverage",
    103: "phone busy",
    104: "line inactive",
    105: "wrong number",
    106: "number on blacklist",
    111: "timed out",
    112: "refuses SMS",
    113: "cannot receive SMS",
    115: "line barred",
    116: "unknown subscriber",
    117: "illegal subscriber",
}
# The report is filtered by send date as well as job id (startdate and stopdate are
# required): a week back covers the operators' validity periods (about 2 days), after
# which a message that still has no report will never get one.
REPORT_WINDOW = timedelta(days=7)
REPORT_PAGE = 100  # Netgsm's largest pagesize; one job id is one message here


class NetgsmGateway:
    name = "netgsm"

    def __init__(
        self,
        *,
        usercode: str,
        password: str,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._auth = basic_auth(usercode, password)
        self._client = client
        self._base = (base_url or BASE_URL).rstrip("/")
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"<NetgsmGateway {self._base}>"

    async def send(self, request: SmsRequest) -> SmsAccepted:
        body: dict[str, Any] = {
            "msgheader": request.sender,
            "messages": [{"msg": request.text, "no": turkish_mobile("Netgsm", request.to)}],
            "encoding": "TR",
            "iysfilter": _iys_filter(request),
        }
        response = await call(
            self._client,
            "Netgsm",
            "POST",
            f"{self._base}/sms/rest/v2/send",
            json=body,
            headers={"Authorization": self._auth},
        )
        if response.status_code >= 500:
            raise server_error("Netgsm", response)
        data = json_object(response) or {}
        code = str(data.get("code", ""))
        jobid = data.get("jobid")
        if code in ACCEPTED and jobid:
            return SmsAccepted(provider_id=str(jobid))
        raise _error(code, data, response)

    async def poll_reports(self, provider_ids: Sequence[str]) -> list[DeliveryReport]:
        """One query per 100 job ids. Netgsm allows 10 queries a minute: when it refuses a
        later query, the reports already read are returned and the rest wait for the next
        poll; when it refuses the first, the GatewayError says when to come back."""
        now = self._clock.now().astimezone(TURKEY)
        reports: list[DeliveryReport] = []
        ids = list(provider_ids)
        for start in range(0, len(ids), REPORT_PAGE):
            try:
                reports += await self._report(ids[start : start + REPORT_PAGE], now)
            except GatewayError:
                if start == 0:
                    raise
                break
        return reports

    async def _report(self, jobids: list[str], now: datetime) -> list[DeliveryReport]:
        body = {
            "startdate": (now - REPORT_WINDOW).strftime("%d.%m.%Y %H:%M:%S"),
            "stopdate": now.strftime("%d.%m.%Y %H:%M:%S"),
            "jobids": jobids,
            "pagesize": REPORT_PAGE,
            "pagenumber": 0,
        }
        response = await call(
            self._client,
            "Netgsm",
            "POST",
            f"{self._base}/sms/rest/v2/report",
            json=body,
            headers={"Authorization": self._auth},
        )
        if response.status_code >= 500:
            raise server_error("Netgsm", response)
        data = json_object(response) or {}
        code = str(data.get("code", ""))
        if code == "60":  # no records: none of these has a report yet
            return []
        if code != "00":
            raise _error(code, data, response)
        wanted = set(jobids)
        return [
            _report(job)
            for job in data.get("jobs") or []
            if isinstance(job, dict) and str(job.get("jobid")) in wanted
        ]

    def parse_callback(
        self, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[DeliveryReport]:
        raise CallbackRefused("Netgsm does not post delivery reports; they are polled")

    async def close(self) -> None:
        """The client is shared and closed by its owner."""


def _iys_filter(request: SmsRequest) -> str:
    if not request.commercial:
        return "0"
    return "11" if request.recipient_type == "individual" else "12"


def _error(code: str, data: dict[str, Any], response: httpx.Response) -> GatewayError:
    said = str(data.get("description") or "").strip()
    if code in PERMANENT:
        return GatewayError(_reason(code, PERMANENT[code], said), permanent=True, code=code)
    if code in THROTTLED:
        return GatewayError(
            _reason(code, THROTTLED[code], said),
            permanent=False,
            code=code,
            retry_after=THROTTLE_SECONDS,
        )
    if code in SYSTEM:
        return GatewayError(_reason(code, SYSTEM[code], said), permanent=False, code=code)
    # An answer we cannot read took no message (only 00/01/02 do): trying again is safe.
    return GatewayError(
        f"Netgsm gave an unexpected answer (HTTP {response.status_code}, code {code or 'none'})",
        permanent=False,
        code=code or str(response.status_code),
    )


def _reason(code: str, meaning: str, said: str) -> str:
    reason = f"Netgsm {code}: {meaning}"
    return f"{reason} ({said})" if said and said.lower() != meaning.lower() else reason


def _report(job: dict[str, Any]) -> DeliveryReport:
    provider_id = str(job.get("jobid"))
    try:
        status = int(job.get("status", 0))
    except (TypeError, ValueError):
        status = -1
    at = _netgsm_time(job.get("deliveredDate"))
    if status == 0:
        return DeliveryReport(provider_id=provider_id, status="pending")
    if status == 1:
        return DeliveryReport(provider_id=provider_id, status="delivered", at=at)
    reason = f"Netgsm status {status}: {STATUS_FAILED.get(status, 'not delivered')}"
    try:
        error = int(job.get("errorCode") or 0)
    except (TypeError, ValueError):
        error = 0
    if error:
        reason += f" (error {error}: {ERROR_CODES.get(error, 'unknown')})"
    return DeliveryReport(provider_id=provider_id, status="failed", reason=reason, at=at)


def _netgsm_time(value: object) -> datetime | None:
    """Netgsm's times are Turkish local time, "dd.MM.yyyy HH:mm:ss" as in its requests."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%d.%m.%Y %H:%M:%S").replace(tzinfo=TURKEY)
    except ValueError:
        return None

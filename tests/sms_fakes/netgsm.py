"""A fake Netgsm (REST v2)."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sms_fakes.base import FakeProvider, Recorded, SentSms, basic, json_body

NETGSM_SEND_FIELDS = {
    "msgheader",
    "messages",
    "encoding",
    "iysfilter",
    "startdate",
    "stopdate",
    "partnercode",
    "appname",
}
NETGSM_DATE = re.compile(r"^\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d$")


class NetgsmFake(FakeProvider):
    """REST v2. Reports: `report(jobid, status, error_code)`; status 0 until set. Like
    Netgsm it allows 10 report queries a minute and answers code 80 beyond."""

    name = "Netgsm"

    def __init__(
        self,
        usercode: str = "8508001234",
        password: str = "netgsm-parola-9x",  # noqa: S107 - the fake's own, tests' only
    ) -> None:
        self.usercode = usercode
        self.password = password
        self.statuses: dict[str, tuple[int, int]] = {}
        self.report_queries: list[float] = []
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/sms/rest/v2/send", self._send, methods=["POST"]),
            Route("/sms/rest/v2/report", self._report, methods=["POST"]),
        ]

    def reset(self) -> None:
        super().reset()
        self.statuses.clear()
        self.report_queries.clear()

    def report(self, jobid: str, status: int, error_code: int = 0) -> None:
        self.statuses[jobid] = (status, error_code)

    def _authorised(self, recorded: Recorded) -> bool:
        return basic(recorded.headers.get("authorization", "")) == (self.usercode, self.password)

    @staticmethod
    def _answer(code: str, description: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"code": code, "description": description, **extra}, 200 if code == "00" else 406
        )

    async def _send(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not recorded.headers.get("content-type", "").startswith("application/json"):
            return self._problem("send body is not JSON")
        body = json_body(recorded.body)
        if not isinstance(body, dict) or set(body) - NETGSM_SEND_FIELDS:
            return self._problem(f"send fields not documented: {body!r}")
        messages = body.get("messages")
        if (
            not isinstance(body.get("msgheader"), str)
            or not isinstance(messages, list)
            or len(messages) != 1
            or not isinstance(messages[0], dict)
            or set(messages[0]) != {"msg", "no"}
            or not re.fullmatch(r"\d{10}", str(messages[0]["no"]))
        ):
            return self._problem(f"send body not as documented: {body!r}")
        if body.get("encoding") != "TR" or body.get("iysfilter") not in {"0", "11", "12"}:
            return self._problem(f"encoding/iysfilter not as documented: {body!r}")
        if not self._authorised(recorded):
            return self._answer("30", "Geçersiz kullanıcı adı, şifre veya API erişim izni yok")
        if scripted := await self._scripted("send"):
            return scripted
        if len(body["msgheader"]) > 11:
            return self._answer("40", "Mesaj başlığı sistemde tanımlı değil")
        jobid = f"17{self._next_id():014d}"
        self.accept(
            SentSms(
                jobid, messages[0]["no"], messages[0]["msg"], body["msgheader"], body["iysfilter"]
            )
        )
        return self._answer("00", "queued", jobid=jobid)

    async def _report(self, request: Request) -> Response:
        recorded = await self._record(request)
        body = json_body(recorded.body)
        if (
            not isinstance(body, dict)
            or not NETGSM_DATE.match(str(body.get("startdate")))
            or not NETGSM_DATE.match(str(body.get("stopdate")))
            or not isinstance(body.get("jobids", []), list)
            or not 1 <= int(body.get("pagesize", 1)) <= 100
            or int(body.get("pagenumber", 0)) < 0
        ):
            return self._problem(f"report body not as documented: {body!r}")
        if not self._authorised(recorded):
            return self._answer("30", "Geçersiz kullanıcı adı, şifre veya API erişim izni yok")
        now = time.monotonic()
        self.report_queries = [t for t in self.report_queries if now - t < 60] + [now]
        if len(self.report_queries) > 10:
            return self._answer("80", "Sorgulama sınır aşımı, dakikada 10 kez sorgulanabilir")
        if scripted := await self._scripted("report"):
            return scripted
        jobs = []
        for jobid in body.get("jobids", []):
            if not (found := self.by_id(str(jobid))):
                continue
            status, error = self.statuses.get(jobid, (0, 0))
            jobs.append(
                {
                    "jobid": jobid,
                    "number": f"90{found[0].number}",
                    "status": status,
                    "operator": 30,
                    "msglen": len(found[0].text),
                    "deliveredDate": "01.12.2026 12:00:05" if status == 1 else "",
                    "errorCode": error,
                    "referansID": "",
                }
            )
        if not jobs:
            return self._answer("60", "Gösterilecek kayıt bulunamadı", jobs=None)
        return self._answer("00", "Success", jobs=jobs)

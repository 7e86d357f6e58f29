"""Local fake SMS providers: real HTTP servers on 127.0.0.1 (Starlette under uvicorn, in
a thread of their own) that speak Netgsm's, İleti Merkezi's and Twilio's documented
formats (shared/gateways.md) and nothing more.

Each fake checks every request as the provider documents it: a request the real
provider would not understand is answered 400 and noted in `problems` (the `running`
helper fails the test on any). Wrong credentials get the provider's own answer. A fake
keeps the messages it accepted (`accepted`), answers delivery-report polls for them from
what a test set with `report(...)`, and can post reports back where the provider does.
`answer_next` scripts the next answer of an endpoint (an error, a 5xx, a delay longer
than the client's timeout)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ulak.channels.gateways.twilio import sign


@dataclass
class Answer:
    """A scripted answer: `body` is sent as JSON unless it is a str."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: longer than the client's timeout = a timeout


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class SentSms:
    """A message the fake accepted, as the provider received it."""

    provider_id: str
    number: str
    text: str
    sender: str
    # the provider's İYS field: Netgsm iysfilter, İleti Merkezi iysList or "0"; "" for Twilio
    iys: str
    callback_url: str = ""  # Twilio's StatusCallback


class FakeProvider:
    name = "fake"
    send_path = ""

    def __init__(self) -> None:
        self.accepted: list[SentSms] = []
        self._by_id: dict[str, list[SentSms]] = {}
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._script: dict[str, deque[Answer]] = {}
        self._ids = itertools.count(1)
        self.app = Starlette(routes=self.routes())
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def reset(self) -> None:
        """Forget everything, as a new fake would: lets one server serve many tests
        (starting and stopping one costs about 0.2 s)."""
        self.accepted.clear()
        self._by_id.clear()
        self.requests.clear()
        self.problems.clear()
        self._script.clear()
        self._ids = itertools.count(1)

    def routes(self) -> list[Route]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer_next(self, endpoint: str, answer: Answer) -> None:
        """The next request to `endpoint` ("send" or "report") gets `answer` instead."""
        self._script.setdefault(endpoint, deque()).append(answer)

    def accept(self, sms: SentSms) -> None:
        self.accepted.append(sms)
        self._by_id.setdefault(sms.provider_id, []).append(sms)

    def by_id(self, provider_id: str) -> list[SentSms]:
        """The messages accepted under this id (one, or one per number of an order)."""
        return self._by_id.get(provider_id, [])

    def sent_to(self, number: str) -> list[SentSms]:
        return [sms for sms in self.accepted if sms.number == number]

    # --- running

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            ws="none",
            # httptools and uvloop when installed (they are, with uvicorn[standard]): the
            # fake must outpace the sender it measures in the benchmark.
            http="auto",
            loop="auto",
            timeout_graceful_shutdown=1,
            # uvicorn closes a connection idle for 5 s by default, which races with a
            # client reusing it (a ReadError) when a loaded machine stalls a benchmark
            timeout_keep_alive=60,
            # a scripted answer may set its own Date (for a Retry-After date)
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the fake {self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    # --- helpers for the endpoints

    async def _record(self, request: Request) -> Recorded:
        body = await request.body()
        recorded = Recorded(
            request.method,
            request.url.path,
            {name.lower(): value for name, value in request.headers.items()},
            body,
        )
        self.requests.append(recorded)
        return recorded

    async def _scripted(self, endpoint: str) -> Response | None:
        queue = self._script.get(endpoint)
        if not queue:
            return None
        answer = queue.popleft()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer.body, str):
            return Response(answer.body, answer.status, headers=answer.headers)
        return JSONResponse(answer.body, answer.status, headers=answer.headers)

    def _problem(self, text: str) -> Response:
        self.problems.append(text)
        return Response(f"fake {self.name}: {text}", 400)

    def _next_id(self) -> int:
        return next(self._ids)


F = TypeVar("F", bound=FakeProvider)


@contextlib.contextmanager
def running(fake: F) -> Iterator[F]:
    """The fake serving for the block; fails if any request was not as documented."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.problems == [], f"requests the real {fake.name} would refuse: {fake.problems}"


def _basic(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class CallbackSink(FakeProvider):
    """Stands where ulak's callback endpoint would: keeps every POST, answers 200."""

    name = "callback sink"

    def routes(self) -> list[Route]:
        return [Route("/{path:path}", self._receive, methods=["POST"])]

    async def _receive(self, request: Request) -> Response:
        await self._record(request)
        return Response("", 200)


# --- Netgsm


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
        return _basic(recorded.headers.get("authorization", "")) == (self.usercode, self.password)

    @staticmethod
    def _answer(code: str, description: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"code": code, "description": description, **extra}, 200 if code == "00" else 406
        )

    async def _send(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not recorded.headers.get("content-type", "").startswith("application/json"):
            return self._problem("send body is not JSON")
        body = _json(recorded.body)
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
        body = _json(recorded.body)
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


# --- İleti Merkezi


TURKISH_LETTERS = set("çğıöşüÇĞİÖŞÜ")


class IletiMerkeziFake(FakeProvider):
    """JSON API. Like İleti Merkezi it refuses the same text to the same numbers within
    10 minutes (451). Reports: `report(order_id, 110|111|112)`; 110 until set.
    `post_webhook` posts a report as the panel's webhook does."""

    name = "İleti Merkezi"

    def __init__(self, key: str = "im-key-507caf2e", hash: str = "im-hash-0db4e316d") -> None:
        self.key = key
        self.hash = hash
        self.statuses: dict[str, int] = {}
        self._recent: dict[tuple[str, tuple[str, ...]], float] = {}
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/send-sms/json", self._send, methods=["POST"]),
            Route("/v1/get-report/json", self._report, methods=["POST"]),
        ]

    def reset(self) -> None:
        super().reset()
        self.statuses.clear()
        self._recent.clear()

    def report(self, order_id: str, status: int) -> None:
        self.statuses[order_id] = status

    async def post_webhook(
        self, url: str, order_id: str, status: str, client: httpx.AsyncClient
    ) -> httpx.Response:
        """status: accepted | delivered | undelivered."""
        sms = self.by_id(order_id)[0]
        body = {
            "report": {
                "id": int(order_id) * 10 + 1,
                "packet_id": int(order_id),
                "status": status,
                "to": f"+90{sms.number}",
                "body": sms.text,
            }
        }
        return await client.post(url, json=body)

    @staticmethod
    def _answer(code: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"response": {"status": {"code": str(code), "message": message}, **extra}}, code
        )

    def _request(self, recorded: Recorded) -> tuple[dict[str, Any] | None, Response | None]:
        """The request's `order`, or the answer to give instead."""
        body = _json(recorded.body)
        request = body.get("request") if isinstance(body, dict) else None
        if not isinstance(request, dict) or set(request) != {"authentication", "order"}:
            return None, self._answer(400, "İstek çözümlenemedi")
        if request["authentication"] != {"key": self.key, "hash": self.hash}:
            return None, self._answer(401, "Üyelik bilgileri hatalı")
        order = request["order"]
        if not isinstance(order, dict):
            return None, self._problem(f"order is not an object: {order!r}")
        return order, None

    async def _send(self, request: Request) -> Response:
        recorded = await self._record(request)
        order, refused = self._request(recorded)
        if order is None:
            return refused or self._problem("no order")
        documented = {"sender", "sendDateTime", "iys", "iysList", "message"}
        message = order.get("message")
        if (
            set(order) - documented
            or not isinstance(message, dict)
            or set(message) != {"text", "receipents"}
            or not isinstance(message["receipents"], dict)
            or set(message["receipents"]) != {"number"}
            or not isinstance(message["receipents"]["number"], list)
            or order.get("sendDateTime") != []
        ):
            return self._problem(f"send order not as documented: {order!r}")
        if scripted := await self._scripted("send"):
            return scripted
        sender = str(order.get("sender") or "")
        if not sender:
            return self._answer(459, "Mesaj gönderen baslık bilgisi boş")
        if len(sender) > 11 or set(sender) & TURKISH_LETTERS:
            return self._answer(
                460, "Gönderici başlığı 11 karakterden uzun veya Türkçe harf içeriyor"
            )
        if order.get("iys") not in {"0", "1"}:
            return self._answer(468, "İYS bilgisi eksik")
        if order["iys"] == "1" and order.get("iysList") not in {"BIREYSEL", "TACIR"}:
            return self._answer(469, "İYS listesi eksik")
        text = message["text"]
        if not isinstance(text, str) or not text:
            return self._answer(454, "Mesaj metni boş")
        numbers = tuple(str(n) for n in message["receipents"]["number"])
        if not numbers or not all(re.fullmatch(r"5\d{9}", n) for n in numbers):
            return self._answer(452, "Mesaj alıcıları hatalı")
        now = time.monotonic()
        if now - self._recent.get((text, numbers), -1e9) < 600:
            return self._answer(451, "Tekrar eden sipariş")
        self._recent[(text, numbers)] = now
        order_id = str(4280 + self._next_id())
        iys = order["iysList"] if order["iys"] == "1" else "0"
        for number in numbers:
            self.accept(SentSms(order_id, number, text, sender, iys))
        return self._answer(200, "İşlem başarılı", order={"id": order_id})

    async def _report(self, request: Request) -> Response:
        recorded = await self._record(request)
        order, refused = self._request(recorded)
        if order is None:
            return refused or self._problem("no order")
        if (
            set(order) - {"id", "page", "rowCount"}
            or not 1 <= int(order.get("rowCount", 1000)) <= 1000
        ):
            return self._problem(f"report order not as documented: {order!r}")
        if scripted := await self._scripted("report"):
            return scripted
        order_id = str(order.get("id"))
        sent = self.by_id(order_id)
        if not sent:
            return self._answer(455, "Sipariş bulunamadı")
        status = self.statuses.get(order_id, 110)
        messages = [{"number": int(sms.number), "status": status} for sms in sent]
        overall = {110: 113, 111: 114, 112: 115}[status]
        return self._answer(
            200,
            "İşlem başarılı",
            order={"id": int(order_id), "status": overall, "message": messages},
        )


# --- Twilio


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
        return request.path_params["account"] == self.account_sid and _basic(
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

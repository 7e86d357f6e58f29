"""A fake İleti Merkezi (JSON API and its webhook)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sms_fakes.base import FakeProvider, Recorded, SentSms, json_body

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
        body = json_body(recorded.body)
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

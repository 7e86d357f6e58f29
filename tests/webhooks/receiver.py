"""A webhook receiver on 127.0.0.1 (Starlette under uvicorn, in a thread, like the SMS
fakes): it checks each request's Standard Webhooks signature with the `standardwebhooks`
library and keeps what it received."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.sms_fakes.base import FakeProvider


class Receiver(FakeProvider):
    name = "webhook receiver"

    def __init__(self) -> None:
        # The secret of the endpoint under test: set by the test once it is added.
        self.secret = ""
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/hook", self._hook, methods=["POST"]),
            Route("/moved", self._moved, methods=["POST"]),
        ]

    def reset(self) -> None:
        super().reset()
        self.secret = ""

    async def _hook(self, request: Request) -> Response:
        recorded = await self._record(request)
        headers = recorded.headers
        if not {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers.keys():
            return self._problem("a request without the Standard Webhooks headers")
        if headers.get("content-type") != "application/json":
            return self._problem(f"content-type {headers.get('content-type')}")
        sent_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        expected = Webhook(self.secret).sign(headers["webhook-id"], sent_at, recorded.body.decode())
        if not hmac.compare_digest(expected, headers["webhook-signature"]):
            return self._problem("a signature that does not verify")
        scripted = await self._scripted("hook")
        return scripted or Response(status_code=204)

    async def _moved(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=307, headers={"location": "/hook"})

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """Each POST to /hook: its webhook-id and its JSON body, in order."""
        return [
            (r.headers["webhook-id"], json.loads(r.body))
            for r in self.requests
            if r.path == "/hook"
        ]

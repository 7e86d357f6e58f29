"""A fake İYS: a real HTTP server on 127.0.0.1 (Starlette under uvicorn, in a thread) that
answers as İYS's documented REST API does (dev.iys.org.tr): the token (password and
refresh grants), adding a consent (with İYS's rules: no RET for a recipient it has no
consent of, no change to the status it holds), the status query, and the changes made at
İYS itself, read with a cursor. It records every request it was sent."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

IYS_CODE = "700123"
BRAND_CODE = "700456"
USERNAME = "dukkan-api"
PASSWORD = "S3cret-iys-Parola!"
BRAND = f"/sps/{IYS_CODE}/brands/{BRAND_CODE}"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


@dataclass
class FakeIys:
    port: int
    calls: list[Call] = field(default_factory=list)
    # What İYS holds: (type, recipientType, recipient) → ONAY | RET.
    consents: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # The consents it took, in order, each once.
    added: list[dict[str, Any]] = field(default_factory=list)
    # Changes made at İYS itself (by citizens), which `consents/changes` lists.
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Recipients whose consent İYS refuses with 422, and the error it gives.
    refuse: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Answer every request with 503 (an outage).
    unavailable: bool = False
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    issued: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_to(self, suffix: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(suffix)]

    def citizen_change(self, **change: str) -> None:
        """A change made at İYS (e-Devlet, the İYS app, SMS to 3338)."""
        self.consents[(change["type"], change["recipientType"], change["recipient"])] = change[
            "status"
        ]
        self.changes.append({"source": "IYS_MOBIL", **change})

    # -- the API -------------------------------------------------------------------------

    async def _record(self, request: Request) -> Call:
        body: Any = None
        raw = await request.body()
        if raw:
            body = await request.json()
        call = Call(
            request.method,
            request.url.path,
            dict(request.query_params),
            request.headers.get("authorization"),
            body,
        )
        self.calls.append(call)
        return call

    def _tokens(self) -> JSONResponse:
        self.issued += 1
        access, refresh = f"access-{self.issued}-x7Qp", f"refresh-{self.issued}-k2Zr"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": 7200,
                "refresh_expires_in": 14400,
                "token_type": "bearer",
            }
        )

    async def token(self, request: Request) -> Response:
        call = await self._record(request)
        if self.unavailable:
            return Response("Service Unavailable", status_code=503)
        body = call.body or {}
        if body.get("grant_type") == "password":
            if body.get("username") == USERNAME and body.get("password") == PASSWORD:
                return self._tokens()
        elif (
            body.get("grant_type") == "refresh_token"
            and body.get("refresh_token") in self.refresh_tokens
        ):
            self.refresh_tokens.discard(body["refresh_token"])
            return self._tokens()
        return JSONResponse({"error": "invalid_grant"}, status_code=401)

    def _refused(self, call: Call) -> Response | None:
        if self.unavailable:
            return Response("Service Unavailable", status_code=503)
        token = (call.authorization or "").removeprefix("Bearer ")
        if token not in self.access_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return None

    async def add(self, request: Request) -> Response:
        call = await self._record(request)
        if (refused := self._refused(call)) is not None:
            return refused
        body = call.body
        key = (body["type"], body["recipientType"], body["recipient"])
        if body["recipient"] in self.refuse:
            code, message = self.refuse[body["recipient"]]
            return _error(["recipient"], code, message)
        held = self.consents.get(key)
        if body["status"] == "RET" and held is None:
            return _error(["status"], "H174", "İlk kez eklenen alıcı için RET durumu gönderilemez.")
        if held == body["status"]:
            return _error(["status"], "H175", "Alıcının izin durumu zaten aynı.")
        self.consents[key] = body["status"]
        self.added.append(body)
        return JSONResponse(
            {"transactionId": f"tx-{len(self.added)}", "creationDate": "2026-11-23 12:00:01"}
        )

    async def status(self, request: Request) -> Response:
        call = await self._record(request)
        if (refused := self._refused(call)) is not None:
            return refused
        body = call.body
        held = self.consents.get((body["type"], body["recipientType"], body["recipient"]))
        if held is None:
            return _error(["recipient"], "H120", "Alıcıya ait izin bulunamadı.", status=404)
        return JSONResponse({**body, "status": held})

    async def changes_since(self, request: Request) -> Response:
        call = await self._record(request)
        if (refused := self._refused(call)) is not None:
            return refused
        assert call.query["source"] == "IYS"
        start = int(call.query.get("after", "0"))
        limit = int(call.query["limit"])
        page = self.changes[start : start + limit]
        for number, change in enumerate(page, start=start + 1):
            change.setdefault("transactionId", f"iys-tx-{number}")
            change.setdefault("creationDate", change["consentDate"])
        return JSONResponse({"after": str(start + len(page)), "list": page})

    # -- the server ----------------------------------------------------------------------

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/oauth2/token", self.token, methods=["POST"]),
                Route(f"{BRAND}/consents", self.add, methods=["POST"]),
                Route(f"{BRAND}/consents/status", self.status, methods=["POST"]),
                Route(f"{BRAND}/consents/changes", self.changes_since, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake İYS did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None


def _error(location: list[str], code: str, message: str, *, status: int = 422) -> Response:
    return JSONResponse(
        {"errors": [{"location": location, "code": code, "message": message}]}, status_code=status
    )

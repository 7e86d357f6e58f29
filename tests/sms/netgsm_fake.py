"""A local fake of Netgsm's REST v2 (send, report), and of Twilio's message create, over
real HTTP, as their documentation has them: answers are scripted per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support import free_port


@dataclass
class FakeNetgsm:
    url: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    # Answers to the next sends (status, body); when empty, each send is accepted.
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # jobid -> the job as the report lists it (status, errorCode, ...).
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_queries: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, request: Request) -> JSONResponse:
        self.sent.append(await request.json())
        self.auth.append(request.headers.get("authorization", ""))
        if self.answers:
            status, body = self.answers.pop(0)
            return JSONResponse(body, status_code=status)
        jobid = f"{17000000 + len(self.sent)}"
        return JSONResponse({"code": "00", "description": "queued", "jobid": jobid})

    async def twilio_send(self, request: Request) -> JSONResponse:
        self.sent.append(dict(parse_qsl((await request.body()).decode())))
        self.auth.append(request.headers.get("authorization", ""))
        sid = f"SM{len(self.sent):032d}"
        return JSONResponse(
            {"sid": sid, "status": "queued", "num_segments": "1", "error_code": None},
            status_code=201,
        )

    async def report(self, request: Request) -> JSONResponse:
        query = await request.json()
        self.report_queries.append(query)
        jobs = [
            {"jobid": jobid, **self.reports[jobid]}
            for jobid in query["jobids"]
            if jobid in self.reports
        ]
        if not jobs:
            return JSONResponse({"code": "60", "description": "no records", "jobs": []})
        return JSONResponse({"code": "00", "description": "ok", "jobs": jobs})


@contextlib.asynccontextmanager
async def fake_netgsm() -> AsyncIterator[FakeNetgsm]:
    fake = FakeNetgsm()
    app = Starlette(
        routes=[
            Route("/sms/rest/v2/send", fake.send, methods=["POST"]),
            Route("/sms/rest/v2/report", fake.report, methods=["POST"]),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", fake.twilio_send, methods=["POST"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn says so only by this flag
        await asyncio.sleep(0.01)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task

"""What the fakes share: running a Starlette app under uvicorn in a thread, recording
requests, scripted answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


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


def basic(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def json_body(body: bytes) -> Any:
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

"""Helpers the tests share: stores, sample events, the dev inbox, a real SMTP server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from ulak import cli
from ulak.app import create_app
from ulak.channels.models import DevInboxMessage
from ulak.clock import Clock, FrozenClock
from ulak.config import Settings, get_settings
from ulak.db import Database
from ulak.events.inbox import inbox
from ulak.events.models import Event, InboxCursor
from ulak.journeys.definition import load_journey
from ulak.journeys.service import apply_journey, install_library
from ulak.stores.schemas import StoreCreate
from ulak.stores.service import create_store


@dataclass
class StoreKey:
    id: int
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_store(
    db: Database, clock: FrozenClock, *, library: bool = True, **fields: Any
) -> StoreKey:
    data = StoreCreate(
        name=fields.pop("name", "Ayşe'nin Dükkanı"),
        sender_email=fields.pop("sender_email", "merhaba@dukkan.example"),
        **fields,
    )
    async with db.transaction() as session:
        store, key = await create_store(session, data, clock=clock)
        if library:
            await install_library(session, store_id=store.id, clock=clock)
    return StoreKey(store.id, key)


# A real SMTP server for tests that deliver mail.


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    # time.monotonic() when the server took the message in, just before its "250".
    at: float = 0.0

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    # Replies to give instead of accepting, one per message, e.g. "451 4.7.1 try later".
    refusals: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusals:
            return self.refusals.pop(0)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                bytes(envelope.original_content),
                time.monotonic(),
            )
        )
        return "250 OK"


@contextlib.asynccontextmanager
async def opened_app(settings: Settings, db: Database, clock: Clock) -> AsyncIterator[Any]:
    """The app without its worker loops (tests run jobs themselves), closed as the server
    closes it: the sender (its connections, its process)."""
    app = create_app(settings, database=db, clock=clock, run_workers=False)
    try:
        yield app
    finally:
        await app.state.workers.ctx.sender.close(grace=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def dev_inbox(db: Database) -> list[EmailMessage]:
    """What the dev inbox captured, oldest first."""
    async with db.transaction() as session:
        rows = (
            await session.execute(select(DevInboxMessage).order_by(DevInboxMessage.id))
        ).scalars()
        out = []
        for row in rows:
            parsed = message_from_bytes(row.raw, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


async def stored_keys(db: Database) -> list[tuple[int, str]]:
    """(store, key) of every event stored: in `events`, or on SQLite still in the API's
    inbox file, waiting for the worker to copy it."""
    async with db.read() as session:
        keys = [(s, k) for s, k in (await session.execute(select(Event.store_id, Event.key)))]
    if db.is_sqlite:
        cursor = await _cursor(db)
        async with db.inbox_reader.connect() as connection:
            with contextlib.suppress(OperationalError):  # no inbox yet: nothing accepted
                rows = await connection.execute(
                    select(inbox.c.store_id, inbox.c.key).where(inbox.c.seq > cursor)
                )
                keys += [(s, k) for s, k in rows]
    return sorted(keys)


async def _cursor(db: Database) -> int:
    async with db.read() as session:
        cursor = await session.get(InboxCursor, 1)
        return cursor.seq if cursor is not None else 0


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def consent_updated(
    status: str = "granted",
    *,
    channel: str = "email",
    customer_id: str = "c-1042",
    email: str = "ayse@example.com",
    source: str = "checkout",
    event_id: str | None = None,
    occurred_at: str | None = None,
) -> dict[str, Any]:
    """A consent.updated event: the customer gave (or took back) consent to commercial
    messages on a channel, which a commercial journey's messages need."""
    event: dict[str, Any] = {
        "id": event_id or f"evt-consent-{customer_id}-{channel}-{status}",
        "type": "consent.updated",
        "customer": {"id": customer_id, "email": email},
        "data": {"channel": channel, "status": status, "source": source},
    }
    if occurred_at is not None:
        event["occurred_at"] = occurred_at
    return event


def order_placed(
    order_id: str = "1001",
    *,
    customer_id: str = "c-1042",
    email: str = "ayse@example.com",
    event_id: str | None = None,
    occurred_at: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """An order.placed event; by default it happened when it arrives (the clock's now, as a
    shop that leaves the time out): sends are meant for when their trigger happened, and
    one meant for a day ago is skipped."""
    placed: dict[str, Any] = {
        "id": event_id or f"evt-order-{order_id}",
        "type": "order.placed",
        "customer": {
            "id": customer_id,
            "email": email,
            "first_name": "Ayşe",
            "last_name": "Yılmaz",
            "locale": "tr",
        },
        "data": {
            "order_id": order_id,
            "number": f"#{order_id}",
            "items": [
                {"product_id": "p-1", "title": "Seramik kupa", "quantity": 2, "price": "249.95"},
                {"product_id": "p-2", "title": "Bakır çaydanlık", "quantity": 1, "price": "750.00"},
            ],
            "subtotal": "1249.90",
            "shipping": "0.00",
            "total": "1249.90",
            "currency": "TRY",
            **data,
        },
    }
    if occurred_at is not None:
        placed["occurred_at"] = occurred_at
    return placed


class Server:
    """`ulak serve` as a user runs it: a subprocess on a free port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "ULAK_PORT": str(self.port), "ULAK_HOST": "127.0.0.1"}
        self.process: subprocess.Popen[bytes] | None = None
        # Kept open for the server's lifetime; its output is shown when a test fails.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="ulak-serve-", suffix=".log", delete=False
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        # A session of its own, so a crash can take the server and its workers together.
        self.process = subprocess.Popen(
            [str(ULAK), "serve"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ulak serve exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ulak serve did not become healthy:\n{self.output()}")

    def kill(self) -> None:
        """A crash: kill -9 the server and its worker processes at once."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def kill_server_only(self) -> None:
        """kill -9 the server process alone, as `kill -9 PID` does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def workers(self) -> list[int]:
        """The pids of the server's worker processes (Linux /proc)."""
        assert self.process is not None
        pid = self.process.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            # Whatever is left of its session (workers of a server killed alone).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")[-5000:]


ULAK = Path(sys.executable).parent / "ulak"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def ulak_cli(*args: str, env: dict[str, str]) -> CliResult:
    """`ulak ARGS` with these ULAK_* variables, run in this process (Typer's runner): the
    same command line, exit code and output, without a new interpreter for each."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, list(args), env=env, catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    return CliResult(result.exit_code, result.stdout, result.stderr)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def create_store_with_cli(env: dict[str, str], name: str = "Ayşe'nin Dükkanı") -> dict[str, Any]:
    """`ulak stores create ... --json`, as a shop developer runs it."""
    result = ulak_cli(
        "stores", "create", "--name", name, "--locale", "tr",
        "--timezone", "Europe/Istanbul", "--currency", "TRY",
        "--sender-email", "merhaba@aysenin-dukkani.example",
        "--contact-email", "destek@aysenin-dukkani.example", "--json",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    assert created["name"] == name
    assert created["api_key"].startswith("ulak_sk_")
    return created


async def add_journey(db: Database, clock: FrozenClock, store: StoreKey, source: str) -> None:
    """Apply a journey definition (YAML text) to a store."""
    async with db.transaction() as session:
        await apply_journey(
            session, store_id=store.id, definition=load_journey(source), source=source, clock=clock
        )

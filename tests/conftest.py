"""Shared fixtures: each test gets a migrated database (SQLite, and PostgreSQL when
ULAK_TEST_POSTGRES_URL is set), a frozen clock, the app without background workers, and a
store with the shipped journeys."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser
from sqlalchemy import text

from tests.browser import chromium
from tests.support import Server, SmtpSink, StoreKey, free_port, make_store, opened_app
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Base, Database
from ulak.migrate import upgrade
from ulak.worker import Workers

POSTGRES_URL = os.environ.get("ULAK_TEST_POSTGRES_URL", "")


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return f"PostgreSQL tests: against {POSTGRES_URL}"
    return "PostgreSQL tests: skipped (set ULAK_TEST_POSTGRES_URL to run them)"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test run, migrated once, dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL: ULAK_TEST_POSTGRES_URL is not set")
    import psycopg

    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"ulak_test_{uuid.uuid4().hex[:10]}"
    # Connection failures are errors, not skips: CI sets the URL and must fail without it.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "ulak.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(_truncate(url))
    return url


async def _truncate(url: str) -> None:
    database = Database(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with database.transaction() as session:
        await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, smtp_url="", public_url="http://ulak.test")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings, db: Database, clock: FrozenClock) -> AsyncIterator[Any]:
    async with opened_app(settings, db, clock) as application:
        yield application


@pytest.fixture
def workers(app: Any) -> Workers:
    w: Workers = app.state.workers
    return w


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ulak.test") as c:
        yield c


@pytest.fixture
async def store(db: Database, clock: FrozenClock) -> StoreKey:
    return await make_store(db, clock)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def server_env(database_url: str, smtp_sink: SmtpSink) -> dict[str, str]:
    """`ulak serve` on the test's database, sending to a real SMTP server. A module may
    say otherwise with a `server_env` of its own."""
    return {
        "ULAK_DATABASE_URL": database_url,
        "ULAK_SMTP_URL": smtp_sink.url,
        "ULAK_LOG_LEVEL": "warning",
        # Short, so a lease running out during a slow delivery would show as a duplicate
        # (a crashed sender's claims come back at once, without it).
        "ULAK_LEASE_SECONDS": "5",
        "ULAK_POLL_SECONDS": "0.2",
    }


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[Server]:
    """`ulak serve` as a subprocess; each test module says its environment in `server_env`."""
    running = Server(server_env)
    yield running
    running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, driven by Playwright (see `tests/browser.py`)."""
    async for launched in chromium():
        yield launched

"""`ulak.sqlite` speaks the part of aiosqlite's API that SQLAlchemy's aiosqlite dialect uses,
private attributes included. SQLAlchemy is pinned below its next minor version; these tests
fail loudly when an upgrade changes what the dialect asks of a connection."""

from __future__ import annotations

import inspect
from pathlib import Path

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.dialects.sqlite import aiosqlite as dialect

from ulak import sqlite
from ulak.db import Database


def test_the_dialect_still_uses_the_attributes_the_adapter_provides() -> None:
    major, minor = (int(part) for part in sqlalchemy.__version__.split(".")[:2])
    assert (major, minor) == (2, 1), "check ulak.sqlite against this SQLAlchemy, then re-pin"
    source = inspect.getsource(dialect)
    # What the dialect reaches into, and where ulak.sqlite.Connection answers it.
    for used in (
        "self._connection._conn",
        "self._connection._tx.put_nowait",
        "self._connection._connection",
        "self._connection.stop",
        "self._connection.create_function",
    ):
        assert used in source, f"the aiosqlite dialect no longer uses {used}"
    connection_attributes = {"_conn", "_tx", "_connection", "stop", "create_function", "cursor"}
    assert connection_attributes <= set(dir(sqlite.Connection)) | {"_conn", "_tx", "_connection"}


async def test_a_transaction_runs_through_the_adapter(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (:n)"), [{"n": 1}, {"n": 2}])
        async with database.read() as session:
            assert (await session.execute(text("SELECT sum(n) FROM t"))).scalar_one() == 3
        # Setting an isolation level goes through the private `_tx` queue.
        async with database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            assert (await autocommit.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
    finally:
        await database.dispose()

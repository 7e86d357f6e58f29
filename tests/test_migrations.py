"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Dialect, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from ulak.db import Database
from ulak.models import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
        names = await connection.run_sync(_constraint_names)
    assert differences == []
    if not db.is_sqlite:  # SQLite's constraints have no names to compare
        assert names == _declared_names(connection.dialect)


def _constraint_names(connection: Connection) -> dict[str, set[str]]:
    """Each table's primary key, unique and foreign key constraint names, as stored."""
    inspector = inspect(connection)
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        found = {inspector.get_pk_constraint(table.name)["name"]}
        found |= {c["name"] for c in inspector.get_unique_constraints(table.name)}
        found |= {c["name"] for c in inspector.get_foreign_keys(table.name)}
        names[table.name] = {name for name in found if name}
    return names


def _declared_names(dialect: Dialect) -> dict[str, set[str]]:
    """The names the models' naming convention gives the same constraints."""
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        names[table.name] = set(re.findall(r"CONSTRAINT (\w+) (?:PRIMARY|UNIQUE|FOREIGN)", ddl))
    return names

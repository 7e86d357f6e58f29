"""Schema migrations (Alembic), run from code so `ulak migrate` works from an installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url

from ulak.db import create_private, sync_url

_HERE = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision. Every command checks this at start, so a
    schema that is up to date is only read: on SQLite a migration takes the write lock,
    which the running worker holds most of the time."""
    config = alembic_config(database_url)
    if database_url.startswith("sqlite"):
        create_private(make_url(sync_url(database_url)).database or "")
    if _current(database_url) != ScriptDirectory.from_config(config).get_current_head():
        command.upgrade(config, "head")


def current_revision(database_url: str) -> str | None:
    """The schema's revision; None for a database ulak has not migrated."""
    return _current(database_url)


def _current(database_url: str) -> str | None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()

"""constraint names by convention

The models now name constraints by a convention (`ulak.db.NAMING_CONVENTION`), so a later
migration can name the constraint it changes on any database. PostgreSQL gave the
existing ones names of its own; this renames them. SQLite keeps its constraints unnamed
inside each table's definition: a later migration names them for its batch operation
with `naming_convention=NAMING_CONVENTION`, which needs nothing renamed now.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _conventional(table: str, kind: str, columns: list[str], referred: str = "") -> str:
    if kind == "p":
        return f"pk_{table}"
    if kind == "u":
        return f"uq_{table}_{'_'.join(columns)}"
    return f"fk_{table}_{columns[0]}_{referred}"


def _renames(to_convention: bool) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    rows = connection.execute(
        sa.text(
            """
            SELECT t.relname, c.conname, c.contype,
                   ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                         ORDER BY k.i) AS columns,
                   COALESCE(r.relname, '') AS referred
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = current_schema()
            LEFT JOIN pg_class r ON r.oid = c.confrelid
            WHERE c.contype IN ('p', 'u', 'f') AND t.relname <> 'alembic_version'
            """
        )
    ).all()
    for table, name, kind, columns, referred in rows:
        conventional = _conventional(table, kind, list(columns), referred)
        # PostgreSQL's own names: <table>_pkey, <table>_<columns>_key, <table>_<column>_fkey.
        own = {
            "p": f"{table}_pkey",
            "u": f"{table}_{'_'.join(columns)}_key",
            "f": f"{table}_{columns[0]}_fkey",
        }[kind]
        old, new = (own, conventional) if to_convention else (conventional, own)
        if name == old and old != new:
            op.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{old}" TO "{new}"')


def upgrade() -> None:
    _renames(to_convention=True)


def downgrade() -> None:
    _renames(to_convention=False)

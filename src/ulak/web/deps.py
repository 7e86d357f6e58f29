"""What every route may ask for: the database, the clock, the settings, the calling store.

Routes open their own `database.transaction()` so a 2xx is only sent after the commit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.errors import Unauthorized
from ulak.stores.models import Store
from ulak.stores.service import store_for_key


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def clock(request: Request) -> Clock:
    value: Clock = request.app.state.clock
    return value


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the store's API key as 'Authorization: Bearer <key>'")
    return key.strip()


async def current_store(
    key: Annotated[str, Depends(bearer_key)], db: Annotated[Database, Depends(database)]
) -> Store:
    async with db.transaction() as s:
        return await store_for_key(s, key)


CurrentStore = Annotated[Store, Depends(current_store)]
AppClock = Annotated[Clock, Depends(clock)]
AppDatabase = Annotated[Database, Depends(database)]
AppSettings = Annotated[Settings, Depends(settings)]

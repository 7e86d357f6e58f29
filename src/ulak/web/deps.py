"""What every route may ask for: the database, the clock, the calling store.

Routes open their own `database.transaction()` so a 2xx is only sent after the commit.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from ulak.clock import Clock
from ulak.db import Database
from ulak.errors import Unauthorized
from ulak.stores.models import Store
from ulak.stores.service import KeyCheck, get_store


async def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def clock(request: Request) -> Clock:
    value: Clock = request.app.state.clock
    return value


def _bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the store's API key as 'Authorization: Bearer <key>'")
    return key.strip()


# A store's settings for a short while, so a busy shop's requests skip one read each; the
# key itself is checked on every request (`KeyCheck`).
STORE_CACHE_SECONDS = 30.0
_stores: dict[int, tuple[float, Store]] = {}


async def current_store(request: Request) -> Store:
    # One dependency, not a tree of them: FastAPI solving each costs on every event POST.
    keys: KeyCheck = request.app.state.keys
    store_id = await keys.store_id(_bearer_key(request))
    known = _stores.get(store_id)
    if known is not None and time.monotonic() - known[0] < STORE_CACHE_SECONDS:
        return known[1]
    db: Database = request.app.state.database
    async with db.read() as s:
        store = await get_store(s, store_id)
    if len(_stores) > 10_000:
        _stores.clear()
    _stores[store_id] = (time.monotonic(), store)
    return store


CurrentStore = Annotated[Store, Depends(current_store)]
AppClock = Annotated[Clock, Depends(clock)]
AppDatabase = Annotated[Database, Depends(database)]

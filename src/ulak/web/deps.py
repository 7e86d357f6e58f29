"""What every route may ask for: the database, the clock, the calling store.

Routes open their own `database.transaction()` so a 2xx is only sent after the commit.
"""

from __future__ import annotations

import base64
import binascii
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


def basic_or_bearer_key(request: Request) -> str | None:
    """The key of `Authorization: Basic base64(<key>:)` (how Segment's and RudderStack's
    SDKs send their write key: the user, no password) or `Bearer <key>`; None without
    the header (analytics.js sends its write key in the body instead)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user = decoded.partition(":")[0]
        if user:
            return user
    raise Unauthorized(
        "send the store's API key as the user of HTTP Basic auth (the write key) or as"
        " 'Authorization: Bearer <key>'"
    )


async def current_store(request: Request) -> Store:
    # One dependency, not a tree of them: FastAPI solving each costs on every event POST.
    return await store_of_key(request, _bearer_key(request))


async def store_of_key(request: Request, key: str) -> Store:
    """The store whose API key this is (Unauthorized if none), its settings cached."""
    keys: KeyCheck = request.app.state.keys
    store_id = await keys.store_id(key)
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

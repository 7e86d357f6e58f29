"""Signed page links: what opens, and the friendly pages for what does not."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tests.support import StoreKey, make_store
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.stores.service import get_store
from ulak.web.links import LIFETIMES, BadLink, Link, PageLinks, open_link, page_url


async def url_for(db: Database, store: StoreKey, clock: FrozenClock, **subject: int | str) -> str:
    async with db.read() as session:
        found = await get_store(session, store.id)
    return page_url("http://ulak.test", found, "tracking", subject, at=clock.now())


async def opened(db: Database, url: str, clock: FrozenClock, kind: str = "tracking") -> Link:
    *_, store_id, _kind, token = url.split("/")
    async with db.read() as session:
        return await open_link(
            session,
            store_id=int(store_id),
            kind=kind,  # type: ignore[arg-type]
            token=token,
            now=clock.now(),
        )


async def test_a_link_opens_to_what_it_names_until_it_expires(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    url = await url_for(db, store, clock, c=7, o="1001")
    link = await opened(db, url, clock)
    assert (link.store.id, link.subject) == (store.id, {"c": 7, "o": "1001"})
    assert link.made_at == clock.now().replace(microsecond=0)

    clock.travel(LIFETIMES["tracking"])
    assert (await opened(db, url, clock)).subject == {"c": 7, "o": "1001"}
    clock.travel(timedelta(seconds=1))
    with pytest.raises(BadLink) as expired:
        await opened(db, url, clock)
    assert (expired.value.expired, expired.value.status_code) == (True, 410)
    assert expired.value.store is not None
    assert expired.value.store.id == store.id


async def test_forged_altered_other_kind_and_other_store_links_name_nothing(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    url = await url_for(db, store, clock, c=7)
    base, token = url.rsplit("/", 1)
    altered = f"{base}/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}"
    other_store = url.replace(f"/p/{store.id}/", f"/p/{other.id}/")
    for bad, kind in (
        (altered, "tracking"),
        (url, "review"),
        (other_store, "tracking"),
        (f"{base}/not-a-token", "tracking"),
        (url.replace(f"/p/{store.id}/", "/p/99999999999999999999/"), "tracking"),
    ):
        with pytest.raises(BadLink) as error:
            await opened(db, bad, clock, kind)
        assert (error.value.expired, error.value.status_code) == (False, 404), bad


async def test_only_the_token_as_made_opens_not_a_variant_that_decodes_alike(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    """base64 decoding skips characters outside its alphabet and a last character's unused
    bits: such variants verify, and would each count as another link where a page limits
    how often a link is used."""
    url = await url_for(db, store, clock, c=7, o="1001")
    assert (await opened(db, url, clock)).subject == {"c": 7, "o": "1001"}
    base, token = url.rsplit("/", 1)
    last = token[-1]
    # The signature's 32 bytes end in a character whose low 2 bits are unused.
    alike = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alike[alike.index(last) ^ 1]
    variants = (f"{token}~~", f"{token}!", token[:-1] + twin, token.replace(".", "..", 1))
    for variant in (f"{base}/{v}" for v in variants):
        with pytest.raises(BadLink) as error:
            await opened(db, variant, clock)
        assert error.value.status_code == 404, variant


def test_a_template_printing_links_shows_no_secret() -> None:
    links = PageLinks("http://ulak.test", 1, "the-store-secret", 7, "1001", 1_790_000_000)
    assert "the-store-secret" not in str(links)
    assert "the-store-secret" not in repr(links)


async def test_a_bad_link_gets_a_page_in_the_store_language_not_a_500(
    app: object, client: httpx.AsyncClient, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    # A page of its own beside the app's (the real tracking page is `orders/pages.py`).
    router = APIRouter()

    @router.get("/test/p/{store_id}/tracking/{token}", response_class=HTMLResponse)
    async def page(request: Request, store_id: int, token: str) -> HTMLResponse:
        await opened(db, f"/p/{store_id}/tracking/{token}", clock)
        return HTMLResponse("opened")

    app.include_router(router)  # type: ignore[attr-defined]
    url = (await url_for(db, store, clock, c=1)).replace("/p/", "/test/p/")
    assert (await client.get(url)).text == "opened"

    forged = await client.get(url[:-3] + "xyz", headers={"accept": "text/html"})
    assert forged.status_code == 404
    assert "Bu bağlantı geçerli değil" in forged.text
    assert "Ayşe&#39;nin Dükkanı" in forged.text

    clock.travel(LIFETIMES["tracking"] + timedelta(days=1))
    expired = await client.get(url, headers={"accept": "text/html"})
    assert expired.status_code == 410
    assert "Bu bağlantının süresi doldu" in expired.text


async def test_a_store_cache_keeps_the_store_for_its_seconds_only(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    from sqlalchemy import update

    from ulak.stores.models import Store
    from ulak.web.links import StoreCache

    url = await url_for(db, store, clock, c=7, o="1001")
    *_, store_id, _kind, token = url.split("/")
    cache = StoreCache(seconds=60)

    async def name_seen(stores: StoreCache) -> str:
        async with db.read() as session:
            link = await open_link(
                session,
                store_id=int(store_id),
                kind="tracking",
                token=token,
                now=clock.now(),
                stores=stores,
            )
        return link.store.name

    assert await name_seen(cache) == "Ayşe'nin Dükkanı"
    async with db.transaction() as session:
        await session.execute(update(Store).values(name="Yeni Ad"))
    # Within its seconds the cache answers; a cache whose seconds are over reads again.
    assert await name_seen(cache) == "Ayşe'nin Dükkanı"
    assert await name_seen(StoreCache(seconds=0)) == "Yeni Ad"
    # A forged token is refused whether or not the store was cached.
    with pytest.raises(BadLink):
        async with db.read() as session:
            await open_link(
                session,
                store_id=int(store_id),
                kind="tracking",
                token=token[:-2] + "xx",
                now=clock.now(),
                stores=cache,
            )

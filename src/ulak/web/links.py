"""Signed, store-scoped, expiring links to the customer's pages, and the checks every page
form shares (its CSRF field, its rate limit).

A link is `<public url>/p/<store id>/<kind>/<token>`. The token is the store's own
itsdangerous signature (its `link_secret`, salted by the kind) over a small JSON payload
with the moment it was made; nothing in the URL is a guessable id. `open_link` answers a
forged, altered, other-store, other-kind or expired token with a `BadLink` that the app
renders as a friendly page in the store's language (404, or 410 for an expired link),
never a 500 and never another customer's data.

Every page is a feature's own route (`<feature>/pages.py`); this module only signs and
checks. Expiry is per kind, chosen for how long a customer may reasonably come back to
the message that carried the link (`LIFETIMES`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.stores.models import Store

PageKind = Literal["tracking", "review", "survey", "return", "preferences", "back_in_stock"]

# How long a link keeps working after its message was made. A tracking link outlives the
# parcel by months (customers look back at an order); a review or survey link a season;
# preferences a year, since any commercial message carries one and the law wants opting
# out to keep working (the RFC 8058 unsubscribe link itself never expires).
LIFETIMES: dict[str, timedelta] = {
    "tracking": timedelta(days=365),
    "review": timedelta(days=180),
    "survey": timedelta(days=90),
    "return": timedelta(days=180),
    "preferences": timedelta(days=365),
    "back_in_stock": timedelta(days=7),
}


class BadLink(Exception):
    """A link that names nothing this request may see. `store` is set when the path named
    a real store, so the page can wear its brand and speak its language."""

    def __init__(self, *, expired: bool, store: Store | None) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired
        self.store = store

    @property
    def status_code(self) -> int:
        return 410 if self.expired else 404


def _signer(secret: str, kind: str) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret, salt=f"page:{kind}", signer_kwargs={"digest_method": hashlib.sha256}
    )


def page_token(
    store: Store, kind: PageKind, subject: Mapping[str, str | int], *, at: datetime
) -> str:
    """The token for `subject` (short keys: `c` customer id, `o` order id...), made at `at`."""
    return _token(store.id, store.link_secret, kind, subject, int(at.timestamp()))


def _token(
    store_id: int, secret: str, kind: str, subject: Mapping[str, str | int], stamp: int
) -> str:
    return str(_signer(secret, kind).dumps({**subject, "s": store_id, "t": stamp}))


def page_url(
    base_url: str,
    store: Store,
    kind: PageKind,
    subject: Mapping[str, str | int],
    *,
    at: datetime,
) -> str:
    return f"{base_url}/p/{store.id}/{kind}/{page_token(store, kind, subject, at=at)}"


@dataclass(frozen=True)
class PageLinks:
    """The links a message may carry to its customer's pages, as `links` in its template:
    `links.tracking`, `links.review`, `links.survey`, `links.returns` (an order's pages:
    None in a message about no order) and `links.preferences`. Each is signed only when a
    template reads it (a signature is ~40 µs; the order confirmation reads one of five).
    Plain values only, since the message is rendered in the helper process; the fields
    start with `_`, which the template sandbox never reads (the store's secret is one)."""

    _base_url: str
    _store_id: int
    # Never printed: `{{ links }}` in a store's template would show a dataclass's repr.
    _secret: str = field(repr=False)
    _customer_id: int
    _order_id: str | None
    _stamp: int

    def _url(self, kind: PageKind, subject: Mapping[str, str | int]) -> str:
        token = _token(self._store_id, self._secret, kind, subject, self._stamp)
        return f"{self._base_url}/p/{self._store_id}/{kind}/{token}"

    def _order_page(self, kind: PageKind) -> str | None:
        if self._order_id is None:
            return None
        return self._url(kind, {"c": self._customer_id, "o": self._order_id})

    @property
    def tracking(self) -> str | None:
        return self._order_page("tracking")

    @property
    def review(self) -> str | None:
        return self._order_page("review")

    @property
    def survey(self) -> str | None:
        return self._order_page("survey")

    @property
    def returns(self) -> str | None:
        return self._order_page("return")

    @property
    def preferences(self) -> str:
        return self._url("preferences", {"c": self._customer_id})


def page_links(
    base_url: str, store: Store, *, customer_id: int, order_id: str | None, at: datetime
) -> PageLinks:
    return PageLinks(
        _base_url=base_url,
        _store_id=store.id,
        _secret=store.link_secret,
        _customer_id=customer_id,
        _order_id=order_id,
        _stamp=int(at.timestamp()),
    )


@dataclass(frozen=True)
class Link:
    """An opened link: the store it belongs to, what it names, and when it was made."""

    store: Store
    subject: dict[str, Any]
    made_at: datetime
    token: str


class StoreCache:
    """Stores as a busy page reads them, each kept for `seconds` (in this process): the
    store's row was a fifth of a tracking page's CPU. A change to a store (its name,
    brand, language, contacts) shows on such a page at most `seconds` later. Opt-in, per
    app: `open_link(..., stores=cache)`."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._stores: dict[int, tuple[float, Store]] = {}

    def get(self, store_id: int) -> Store | None:
        known = self._stores.get(store_id)
        if known is not None and time.monotonic() - known[0] < self.seconds:
            return known[1]
        return None

    def put(self, store: Store) -> None:
        if len(self._stores) > 10_000:
            self._stores.clear()
        self._stores[store.id] = (time.monotonic(), store)


async def open_link(
    session: AsyncSession,
    *,
    store_id: int,
    kind: PageKind,
    token: str,
    now: datetime,
    stores: StoreCache | None = None,
) -> Link:
    """The store and subject a page's link names, or `BadLink`."""
    store = stores.get(store_id) if stores is not None else None
    if store is None:
        # An id no database column can hold names no store (asking would overflow).
        store = await session.get(Store, store_id) if 0 < store_id < 2**63 else None
        if store is None:
            raise BadLink(expired=False, store=None)
        # Let go of the store before anything can fail: the rollback that a BadLink brings
        # would expire it, and the error page still reads its name and language.
        session.expunge(store)
        if stores is not None:
            stores.put(store)
    signer = _signer(store.link_secret, kind)
    try:
        payload = signer.loads(token)
    except BadSignature as error:
        raise BadLink(expired=False, store=store) from error
    if not isinstance(payload, dict) or payload.get("s") != store.id:
        raise BadLink(expired=False, store=store)
    # Only the token as it was made: base64 decoding skips characters outside its alphabet
    # and ignores a last character's unused bits, so `<token>~~` or a changed last letter
    # verify too, and each would count as a link of its own wherever a page limits a link.
    if signer.dumps(payload) != token:
        raise BadLink(expired=False, store=store)
    stamp = payload.pop("t", None)
    payload.pop("s")
    if not isinstance(stamp, int):
        raise BadLink(expired=False, store=store)
    made_at = datetime.fromtimestamp(stamp, tz=now.tzinfo)
    # In whole seconds, as the token keeps it.
    if int(now.timestamp()) - stamp > LIFETIMES[kind].total_seconds():
        raise BadLink(expired=True, store=store)
    return Link(store=store, subject=payload, made_at=made_at, token=token)


# CSRF. Every POST of a page form carries `csrf`, an HMAC of the link's token under the
# store's secret, and must come from this site: a browser's `Sec-Fetch-Site` (or, from an
# older one, `Origin`) naming another site is refused. The link token is itself the
# capability, so the field mostly stops a form posted from elsewhere with a token that
# leaked (a forwarded email); the header check stops the classic cross-site form.


def csrf_value(link: Link) -> str:
    return hmac.new(
        link.store.link_secret.encode(), f"csrf:{link.token}".encode(), hashlib.sha256
    ).hexdigest()


def csrf_ok(request: Request, link: Link, submitted: str | None) -> bool:
    if submitted is None or not hmac.compare_digest(submitted, csrf_value(link)):
        return False
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


class RateLimit:
    """At most `limit` hits per `seconds` per key, in this process (the API is one
    process; behind several, each allows its own share). Keys are whatever the form
    limits: (store, client address) for a public form, (store, link) for a token's."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._hits: dict[tuple[object, ...], deque[float]] = {}

    def allow(self, *key: object) -> bool:
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) > 100_000:
                self._forget(now)
            hits = self._hits[key] = deque()
        while hits and now - hits[0] >= self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _forget(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.seconds]:
            del self._hits[key]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"

"""The public reviews: numbers, pages, other stores, the widget's script."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.reviews.support import place_order, review_link, submit
from tests.support import StoreKey, make_store
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.reviews import api
from ulak.worker import Workers


async def reviewed(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    ratings: list[int],
) -> None:
    """One order per rating, each by its own customer, reviewed a minute apart."""
    for i, rating in enumerate(ratings):
        customer = f"c-{i}"
        await place_order(
            client, store, workers, f"o-{i}", customer_id=customer, email=f"m{i}@example.com"
        )
        path = await review_link(db, store, clock, order_id=f"o-{i}", customer_ref=customer)
        answer = await submit(
            client, path, {"rating_0": str(rating), "title_0": f"#{i}", "display_name": "Ayşe Y."}
        )
        assert answer.status_code == 200
        await workers.drain()
        clock.travel(timedelta(minutes=1))


async def test_count_average_and_pages_of_newest_first(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    ratings = [5, 4, 1, 5, 3, 5, 2, 4, 5, 5, 4, 3]
    await reviewed(client, store, workers, db, clock, ratings)
    first = await client.get(f"/v1/stores/{store.id}/reviews", params={"product_id": "p-1"})
    assert first.status_code == 200
    assert first.headers["access-control-allow-origin"] == "*"
    assert first.headers["cache-control"] == "public, max-age=60"
    body = first.json()
    assert (body["count"], body["average"], body["page"], body["pages"]) == (
        12,
        round(sum(ratings) / 12, 2),
        1,
        2,
    )
    assert [r["title"] for r in body["reviews"]] == [f"#{i}" for i in range(11, 1, -1)]
    second = await client.get(
        f"/v1/stores/{store.id}/reviews", params={"product_id": "p-1", "page": 2}
    )
    assert [r["title"] for r in second.json()["reviews"]] == ["#1", "#0"]
    ld = body["json_ld"]
    assert ld["@type"] == "Product"
    assert ld["name"] == "Seramik kupa"
    assert ld["aggregateRating"] == {
        "@type": "AggregateRating",
        "ratingValue": body["average"],
        "reviewCount": 12,
        "bestRating": 5,
        "worstRating": 1,
    }
    assert len(ld["review"]) == 10
    assert ld["review"][0]["author"] == {"@type": "Person", "name": "Ayşe Y."}

    widget = await client.get(f"/w/{store.id}/reviews", params={"product_id": "p-1", "lang": "en"})
    assert "12 reviews" in widget.text
    assert "Older reviews" in widget.text
    assert "page=2" in widget.text


async def test_another_store_and_an_unknown_product_show_nothing(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await reviewed(client, store, workers, db, clock, [5])
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    theirs = (await client.get(f"/v1/stores/{other.id}/reviews")).json()
    assert (theirs["count"], theirs["average"], theirs["reviews"]) == (0, None, [])
    assert theirs["json_ld"] == {
        "@context": "https://schema.org",
        "@type": "Organization",
        "name": "Başka Dükkan",
    }
    unknown = await client.get(f"/v1/stores/{store.id}/reviews", params={"product_id": "nope"})
    assert unknown.json()["count"] == 0
    assert (await client.get("/v1/stores/999999/reviews")).status_code == 404
    assert (await client.get("/w/999999/reviews")).status_code == 404
    assert (await client.get(f"/v1/stores/{store.id}/reviews?page=0")).status_code == 422


async def test_the_widget_script_only_reads_its_own_attributes() -> None:
    assert "encodeURIComponent(product)" in api.WIDGET_SCRIPT
    assert "innerHTML" not in api.WIDGET_SCRIPT
    assert 'setAttribute("sandbox"' in api.WIDGET_SCRIPT


async def test_the_widget_script_is_served_as_javascript(client: httpx.AsyncClient) -> None:
    answer = await client.get("/w/reviews.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "document.currentScript" in answer.text


async def test_a_public_answer_is_kept_a_few_seconds(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "CACHE_SECONDS", 5.0)
    monkeypatch.setattr(api, "_answers", {})
    url = f"/v1/stores/{store.id}/reviews"
    assert (await client.get(url)).json()["count"] == 0
    await reviewed(client, store, workers, db, clock, [5])
    # The product page's visitors share one answer for a few seconds...
    assert (await client.get(url)).json()["count"] == 0
    # ...then see the new review.
    monkeypatch.setattr(api, "CACHE_SECONDS", 0.0)
    assert (await client.get(url)).json()["count"] == 1

"""The review form as a verified buyer meets it, and what it refuses."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from tests.reviews import images
from tests.reviews.support import csrf_of, place_order, review_link, submit
from tests.support import StoreKey, make_store
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events.models import Event
from ulak.reviews.models import Review, ReviewPhoto
from ulak.reviews.service import set_settings
from ulak.stores.service import get_store
from ulak.web.links import LIFETIMES, page_url
from ulak.worker import Workers

XSS = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def path(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> str:
    await place_order(client, store, workers)
    return await review_link(db, store, clock)


async def reviews_in(db: Database) -> list[Review]:
    async with db.read() as session:
        return list((await session.execute(select(Review).order_by(Review.id))).scalars())


async def public(client: httpx.AsyncClient, store: StoreKey, **params: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/stores/{store.id}/reviews", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_the_form_shows_each_product_of_the_order_with_the_shortened_name(
    client: httpx.AsyncClient, path: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    html = page.text
    assert '<html lang="tr">' in html
    assert "Seramik kupa" in html
    assert "Bakır çaydanlık" in html
    assert 'value="Ayşe Y."' in html
    assert html.count('type="radio"') == 10
    assert 'name="rating_0"' in html
    assert 'name="rating_1"' in html
    assert 'enctype="multipart/form-data"' in html
    # Beside the request: the shop's help and the order's returns page.
    assert "Bir sorun mu var?" in html
    assert "/p/" in html
    assert "/return/" in html


async def test_a_review_with_a_photo_is_published_without_its_gps(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database, store: StoreKey
) -> None:
    answer = await submit(
        client,
        path,
        {
            "rating_0": "5",
            "title_0": "Harika kupa",
            "body_0": "Çayım sıcak kalıyor.",
            "display_name": "Ayşe Y.",
            "quote_ok": "1",
        },
        [("photos_0", ("IMG_0001.jpg", images.jpeg_with_gps(), "image/jpeg"))],
    )
    assert answer.status_code == 200, answer.text
    assert "Teşekkür ederiz!" in answer.text
    assert "Değerlendirmeniz yayımlandı." in answer.text
    await workers.drain()

    body = await public(client, store, product_id="p-1")
    assert (body["count"], body["average"], body["pages"]) == (1, 5.0, 1)
    (review,) = body["reviews"]
    assert review["title"] == "Harika kupa"
    assert review["name"] == "Ayşe Y."
    assert review["product_title"] == "Seramik kupa"
    (photo_url,) = review["photos"]
    photo = await client.get(photo_url)
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["x-content-type-options"] == "nosniff"
    assert "max-age" in photo.headers["cache-control"]
    made = Image.open(io.BytesIO(photo.content))
    assert dict(made.getexif()) == {}
    assert b"PhoneMaker" not in photo.content
    assert made.size == (200, 400)
    # The other product was not rated: nothing about it.
    assert (await public(client, store, product_id="p-2"))["count"] == 0
    assert (await public(client, store))["count"] == 1

    # The stored event keeps the photo's token, not its bytes.
    async with db.read() as session:
        event = (
            await session.execute(select(Event).where(Event.type == "review.submitted"))
        ).scalar_one()
        token = (await session.execute(select(ReviewPhoto.token))).scalar_one()
    assert event.status == "applied"
    assert event.data["photos"] == [
        {"content_type": "image/jpeg", "width": 200, "height": 400, "token": token}
    ]
    assert photo_url.endswith(token)
    assert len(token) >= 24


async def test_a_second_submission_replaces_the_first(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database, store: StoreKey
) -> None:
    await submit(client, path, {"rating_0": "2", "title_0": "Kırık geldi"})
    await workers.drain()
    page = await client.get(path)
    assert 'value="Kırık geldi"' in page.text
    assert 'value="2" checked' in page.text
    await submit(client, path, {"rating_0": "4", "title_0": "Yenisi sağlam"})
    await workers.drain()
    (review,) = await reviews_in(db)
    assert (review.rating, review.title, review.status) == (4, "Yenisi sağlam", "published")
    body = await public(client, store, product_id="p-1")
    assert (body["count"], body["average"]) == (1, 4.0)


async def test_all_honest_ratings_count_low_ones_too(
    client: httpx.AsyncClient, path: str, workers: Workers, store: StoreKey
) -> None:
    await submit(client, path, {"rating_0": "1", "rating_1": "4"})
    await workers.drain()
    body = await public(client, store)
    assert (body["count"], body["average"]) == (2, 2.5)
    assert sorted(r["rating"] for r in body["reviews"]) == [1, 4]


async def test_without_stars_nothing_is_sent(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database
) -> None:
    answer = await submit(client, path, {"title_0": "Yıldızsız"})
    assert answer.status_code == 400
    assert "En az bir ürün için yıldız seçin." in answer.text
    assert 'value="Yıldızsız"' in answer.text  # what was typed is kept
    await workers.drain()
    assert await reviews_in(db) == []


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("cizim.svg", images.SVG, "cizim.svg bir JPEG, PNG, WebP veya HEIC fotoğrafı değil."),
        ("foto.png", images.HTML, "foto.png bir JPEG, PNG, WebP veya HEIC fotoğrafı değil."),
        ("buyuk.jpg", images.too_big(), "buyuk.jpg 10 MB&#39;tan büyük."),
        ("bomba.png", images.bomb(), "bomba.png çok büyük bir görüntü."),
    ],
    ids=["svg", "html-named-png", "10MB+1", "bomb"],
)
async def test_a_bad_upload_gets_a_clear_message_on_the_form(
    client: httpx.AsyncClient,
    path: str,
    workers: Workers,
    db: Database,
    name: str,
    raw: bytes,
    message: str,
) -> None:
    answer = await submit(
        client, path, {"rating_0": "5"}, [("photos_0", (name, raw, "image/jpeg"))]
    )
    assert answer.status_code == 400
    assert f"Seramik kupa: {message}" in answer.text
    await workers.drain()
    assert await reviews_in(db) == []


async def test_a_png_named_jpg_is_taken_for_what_it_is(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database
) -> None:
    answer = await submit(
        client,
        path,
        {"rating_0": "5"},
        [("photos_0", ("foto.jpg", images.encoded("PNG"), "image/jpeg"))],
    )
    assert answer.status_code == 200
    await workers.drain()
    async with db.read() as session:
        (photo,) = (await session.execute(select(ReviewPhoto))).scalars()
    assert photo.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(photo.data)).format == "JPEG"


async def test_an_iphone_heic_photo_is_taken_and_stored_as_jpeg(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database
) -> None:
    answer = await submit(
        client,
        path,
        {"rating_0": "4"},
        [("photos_0", ("IMG_0001.HEIC", images.heic(), "image/heic"))],
    )
    assert answer.status_code == 200
    await workers.drain()
    async with db.read() as session:
        (photo,) = (await session.execute(select(ReviewPhoto))).scalars()
    assert (photo.content_type, photo.width, photo.height) == ("image/jpeg", 320, 240)
    assert Image.open(io.BytesIO(photo.data)).format == "JPEG"


async def test_four_photos_are_one_too_many(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database
) -> None:
    jpeg = images.encoded("JPEG")
    files = [("photos_0", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(4)]
    answer = await submit(client, path, {"rating_0": "5"}, files)
    assert answer.status_code == 400
    assert "en fazla 3 fotoğraf" in answer.text
    three = await submit(client, path, {"rating_0": "5"}, files[:3])
    assert three.status_code == 200
    await workers.drain()
    async with db.read() as session:
        assert len(list((await session.execute(select(ReviewPhoto))).scalars())) == 3


async def test_a_body_past_the_limit_is_refused_while_it_arrives(
    client: httpx.AsyncClient, path: str, db: Database, workers: Workers
) -> None:
    # Two products: 6 photos of 10 MB at most; more is refused before the form is read.
    csrf = csrf_of((await client.get(path)).text)
    sent = 0

    async def chunks() -> Any:
        nonlocal sent
        yield (
            b'--x\r\nContent-Disposition: form-data; name="photos_0"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        for _ in range(200):  # 200 MB, were it all read
            sent += 1
            yield b"\xff" * (1024 * 1024)

    answer = await client.post(
        path,
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=x", "Accept": "text/html"},
    )
    assert answer.status_code == 413
    assert "Gönderdiğiniz dosyalar çok büyük" in answer.text
    assert csrf
    assert sent < 100
    await workers.drain()
    assert await reviews_in(db) == []


async def test_the_form_needs_its_csrf_field_and_this_site(
    client: httpx.AsyncClient, path: str, workers: Workers, db: Database
) -> None:
    missing = await submit(client, path, {"rating_0": "5"}, csrf="")
    assert missing.status_code == 403
    assert "başka bir siteden gönderilmiş" in missing.text
    wrong = await submit(client, path, {"rating_0": "5"}, csrf="0" * 64)
    assert wrong.status_code == 403
    cross = await submit(client, path, {"rating_0": "5"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    other_origin = await submit(
        client, path, {"rating_0": "5"}, headers={"Origin": "https://evil.example"}
    )
    assert other_origin.status_code == 403
    await workers.drain()
    assert await reviews_in(db) == []


async def test_forged_expired_and_other_store_links_open_nothing(
    client: httpx.AsyncClient,
    path: str,
    db: Database,
    clock: FrozenClock,
    store: StoreKey,
    workers: Workers,
) -> None:
    base, token = path.rsplit("/", 1)
    forged = await client.get(f"{base}/{token[:-2]}xx", headers={"Accept": "text/html"})
    assert forged.status_code == 404
    assert "Bu bağlantı geçerli değil" in forged.text
    assert "Seramik" not in forged.text
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    moved = await client.get(path.replace(f"/p/{store.id}/", f"/p/{other.id}/"))
    assert moved.status_code == 404
    assert "Seramik" not in moved.text
    # A tracking link's token is not a review link's.
    assert (await client.get(path.replace("/review/", "/tracking/"))).status_code in (404, 405)
    # Someone else's order, with a link signed for this customer, names nothing.
    async with db.read() as session:
        found = await get_store(session, store.id)
    strange = page_url("", found, "review", {"c": 1, "o": "no-such-order"}, at=clock.now())
    assert (await client.get(strange)).status_code == 404
    posted = await client.post(f"{base}/{token[:-2]}xx", data={"rating_0": "5"})
    assert posted.status_code == 404

    clock.travel(LIFETIMES["review"] + timedelta(seconds=1))
    expired = await client.get(path, headers={"Accept": "text/html"})
    assert expired.status_code == 410
    assert "süresi doldu" in expired.text
    await workers.drain()
    assert await reviews_in(db) == []


async def test_only_that_orders_products_can_be_reviewed(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await place_order(client, store, workers, "1001")
    await place_order(
        client,
        store,
        workers,
        "2002",
        items=[{"product_id": "p-9", "title": "Halı", "quantity": 1, "price": "10.00"}],
        total="10.00",
    )
    path = await review_link(db, store, clock, order_id="2002")
    html = (await client.get(path)).text
    assert "Halı" in html
    assert "Seramik kupa" not in html
    await submit(client, path, {"rating_0": "3", "rating_1": "5"})
    await workers.drain()
    assert [(r.order_id, r.product_id) for r in await reviews_in(db)] == [("2002", "p-9")]


async def test_a_shop_cannot_post_reviews_or_moderate_through_events(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    for event_type, data in [
        ("review.submitted", {"order_id": "1", "product_id": "p", "rating": 5}),
        ("review.moderated", {"review_id": 1, "action": "approve"}),
    ]:
        event = {"type": event_type, "customer": {"id": "c-1"}, "data": data}
        answer = await client.post("/v1/events", json={"events": [event]}, headers=store.auth)
        assert answer.status_code == 422, answer.text
        assert "is ulak's own" in answer.text


async def test_text_that_looks_like_code_stays_text_everywhere(
    client: httpx.AsyncClient, path: str, workers: Workers, store: StoreKey
) -> None:
    await submit(
        client, path, {"rating_0": "5", "title_0": XSS, "body_0": XSS, "display_name": XSS[:100]}
    )
    await workers.drain()
    page = (await client.get(path)).text
    assert "<script>alert" not in page
    assert "&lt;/script&gt;&lt;script&gt;" in page

    widget = await client.get(f"/w/{store.id}/reviews", params={"product_id": "p-1"})
    assert widget.status_code == 200
    html = widget.text
    assert html.count("<script") == 1  # the JSON-LD block only
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    ld = html.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in ld
    assert "\\u003c/script\\u003e" in ld
    parsed = json.loads(ld)
    assert parsed["review"][0]["reviewBody"] == XSS
    assert parsed["@type"] == "Product"
    assert parsed["aggregateRating"]["reviewCount"] == 1
    assert "script-src" not in widget.headers["content-security-policy"]
    assert "default-src 'none'" in widget.headers["content-security-policy"]
    assert "x-frame-options" not in widget.headers

    body = await public(client, store, product_id="p-1")
    assert body["reviews"][0]["body"] == XSS  # JSON carries the text as it is
    assert body["json_ld"]["review"][0]["reviewBody"] == XSS


async def test_a_moderated_store_shows_a_review_once_approved(
    client: httpx.AsyncClient,
    path: str,
    workers: Workers,
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
) -> None:
    async with db.transaction() as session:
        await set_settings(session, store_id=store.id, moderate=True, now=clock.now())
    answer = await submit(client, path, {"rating_0": "4", "rating_1": "1", "body_1": "Bozuk"})
    assert "kontrol edildikten sonra yayımlanacak" in answer.text
    await workers.drain()
    assert (await public(client, store))["count"] == 0
    assert (await client.get("/v1/reviews/pending")).status_code == 401
    pending = (await client.get("/v1/reviews/pending", headers=store.auth)).json()
    assert [(p["product_id"], p["rating"], p["status"]) for p in pending] == [
        ("p-2", 1, "pending"),
        ("p-1", 4, "pending"),
    ]
    ids = {p["product_id"]: p["id"] for p in pending}

    approved = await client.post(f"/v1/reviews/{ids['p-1']}/approve", headers=store.auth)
    assert approved.status_code == 202, approved.text
    rejected = await client.post(
        f"/v1/reviews/{ids['p-2']}/reject", json={"reason": "küfür"}, headers=store.auth
    )
    assert rejected.status_code == 202
    replied = await client.post(
        f"/v1/reviews/{ids['p-1']}/reply", json={"reply": "Teşekkürler!"}, headers=store.auth
    )
    assert replied.status_code == 202
    # Nothing changed yet: the worker applies the events.
    assert (await public(client, store))["count"] == 0
    await workers.drain()

    body = await public(client, store)
    assert [(r["product_id"], r["reply"]) for r in body["reviews"]] == [("p-1", "Teşekkürler!")]
    assert (await client.get("/v1/reviews/pending", headers=store.auth)).json() == []
    by_product = {r.product_id: r for r in await reviews_in(db)}
    assert (by_product["p-2"].status, by_product["p-2"].reason) == ("rejected", "küfür")

    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    foreign = await client.post(f"/v1/reviews/{ids['p-1']}/approve", headers=other.auth)
    assert foreign.status_code == 404
    assert (await client.post("/v1/reviews/999999/approve", headers=store.auth)).status_code == 404


async def test_a_pending_reviews_photo_is_not_served(
    client: httpx.AsyncClient,
    path: str,
    workers: Workers,
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
) -> None:
    async with db.transaction() as session:
        await set_settings(session, store_id=store.id, moderate=True, now=clock.now())
    jpeg = images.encoded("JPEG")
    await submit(client, path, {"rating_0": "5"}, [("photos_0", ("a.jpg", jpeg, "image/jpeg"))])
    await workers.drain()
    async with db.read() as session:
        token = (await session.execute(select(ReviewPhoto.token))).scalar_one()
    assert (await client.get(f"/v1/reviews/photos/{token}")).status_code == 404
    assert (await client.get("/v1/reviews/photos/guess")).status_code == 404


async def test_only_the_review_form_takes_bodies_past_the_apps_limit(
    client: httpx.AsyncClient, path: str, store: StoreKey
) -> None:
    big = b"x" * (2 * 1024 * 1024)
    events = await client.post("/v1/events", content=big, headers=store.auth)
    assert events.status_code == 413
    # A bad link is refused before its body is read; a good one reads it to its own limit.
    base, token = path.rsplit("/", 1)
    forged = await client.post(f"{base}/{token[:-2]}xx", content=big)
    assert forged.status_code == 404
    # The unsubscribe page, beside it, keeps the app's limit.
    unsubscribe = await client.post(f"/u/{store.id}/anything", content=big)
    assert unsubscribe.status_code == 413

"""Photos are decoded to learn what they are, and re-made from their pixels alone."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.reviews import images
from ulak.reviews.photos import MAX_SIDE, PhotoRefused, process


def test_a_phone_jpeg_loses_its_gps_and_exif_and_is_turned_upright() -> None:
    raw = images.jpeg_with_gps(400, 200)
    assert b"PhoneMaker" in raw
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)

    photo = process(raw)

    assert photo.content_type == "image/jpeg"
    made = Image.open(io.BytesIO(photo.data))
    assert made.format == "JPEG"
    # Orientation 6 applied: the 400x200 landscape pixels stand upright.
    assert (made.width, made.height) == (photo.width, photo.height) == (200, 400)
    assert dict(made.getexif()) == {}
    assert b"Exif" not in photo.data
    assert b"PhoneMaker" not in photo.data
    assert "exif" not in made.info


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (images.encoded("PNG"), "image/jpeg"),
        (images.encoded("PNG", mode="RGBA"), "image/webp"),
        (images.encoded("WEBP"), "image/jpeg"),
        (images.heic(), "image/jpeg"),
    ],
    ids=["png", "png-transparent", "webp", "heic"],
)
def test_png_webp_and_heic_are_taken(raw: bytes, content_type: str) -> None:
    photo = process(raw)
    assert photo.content_type == content_type
    assert Image.open(io.BytesIO(photo.data)).format == content_type.split("/")[1].upper()


def test_a_large_photo_is_resized_to_at_most_1600_px() -> None:
    photo = process(images.encoded("JPEG", (4000, 3000)))
    assert (photo.width, photo.height) == (MAX_SIDE, 1200)


def test_a_png_named_jpg_is_what_its_bytes_are() -> None:
    # Names and Content-Types are never read: only the bytes.
    assert process(images.encoded("PNG")).content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (images.SVG, "not_image"),
        (images.HTML, "not_image"),
        (images.encoded("GIF"), "not_image"),
        (images.encoded("BMP"), "not_image"),
        (b"", "not_image"),
        (images.encoded("JPEG")[:200], "not_image"),
        (images.too_big(), "too_large"),
        (images.bomb(), "too_many_pixels"),
    ],
    ids=["svg", "html", "gif", "bmp", "empty", "truncated", "10MB+1", "bomb"],
)
def test_what_is_not_a_photo_is_refused(raw: bytes, code: str) -> None:
    with pytest.raises(PhotoRefused) as refused:
        process(raw)
    assert refused.value.code == code

"""Files a customer might attach: real photos, and files that lie."""

from __future__ import annotations

import io

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_gps(width: int = 400, height: int = 200) -> bytes:
    """A phone's JPEG: its EXIF says where it was taken and that it is rotated 90°."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    for x in range(width // 2):
        image.putpixel((x, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # the camera was held upright: turn 90° clockwise to show
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (41.0, 2.0, 24.5)
    gps[3] = "E"
    gps[4] = (28.0, 58.0, 41.2)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


def encoded(format: str, size: tuple[int, int] = (300, 200), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (20, 120, 60, 128) if mode == "RGBA" else (20, 120, 60)).save(
        out, format=format
    )
    return out.getvalue()


def heic() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encoded("HEIF", (320, 240))


def bomb() -> bytes:
    """A small PNG that claims 100 million pixels."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>"
)
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def too_big() -> bytes:
    """10 MB + 1 byte that starts like a JPEG."""
    return b"\xff\xd8\xff\xe0" + b"\0" * (10 * 1024 * 1024 - 3)

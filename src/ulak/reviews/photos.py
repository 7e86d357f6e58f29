"""Photos customers attach to a review: never trusted, always re-made.

A file is what Pillow decodes it as, whatever its name or Content-Type says: JPEG, PNG,
WebP or HEIC (HEIC through pillow-heif, when it is installed), and nothing else (an SVG,
an HTML page or a GIF is refused). Decompression bombs are refused before their pixels
are decoded. What is kept is made from the pixels alone: the EXIF orientation applied
first, then resized to at most `MAX_SIDE` px and encoded as JPEG (WebP when the photo has
transparency), so EXIF, GPS and any other metadata are gone.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF from iPhones, when the library is there
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    HEIC = False

MAX_BYTES = 10 * 1024 * 1024
MAX_PHOTOS = 3
MAX_SIDE = 1600
# Far beyond any phone's camera (~50 megapixels); a bomb claims far more.
MAX_PIXELS = 60_000_000
FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})
# Pillow warns past this many pixels and refuses past twice it; both are refusals here.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class PhotoRefused(Exception):
    """A file that is not a photo ulak takes; `code` names why (the page's texts)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Photo:
    content_type: str
    data: bytes
    width: int
    height: int


def process(raw: bytes) -> Photo:
    """The photo re-made from `raw`'s pixels, or `PhotoRefused` ("too_large", "not_image",
    "too_many_pixels")."""
    if len(raw) > MAX_BYTES:
        raise PhotoRefused("too_large")
    with warnings.catch_warnings():
        # A DecompressionBombWarning (between the limit and twice it) is a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw), formats=sorted(FORMATS)) as image:
                if image.format not in FORMATS:
                    raise PhotoRefused("not_image")
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise PhotoRefused("too_many_pixels")
                image.load()
                return _remake(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise PhotoRefused("too_many_pixels") from error
        except PhotoRefused:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
            raise PhotoRefused("not_image") from error


def _remake(image: Image.Image) -> Photo:
    upright = ImageOps.exif_transpose(image)
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    )
    pixels = upright.convert("RGBA" if has_alpha else "RGB")
    pixels.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # A fresh image of the pixels alone: no info dict, no EXIF, ICC, XMP or comments.
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, format="WEBP", quality=85)
        content_type = "image/webp"
    else:
        clean.save(out, format="JPEG", quality=85, optimize=True)
        content_type = "image/jpeg"
    return Photo(content_type, out.getvalue(), clean.width, clean.height)

"""Field types the schemas of several features share."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field
from pydantic.networks import validate_email

_WEB = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


def web_address(value: str) -> str:
    # Links from events and store settings are put into emails as they are: a
    # `javascript:` or `data:` link there would run in the reader's mail client or browser.
    if not _WEB.match(value) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be an http:// or https:// address")
    return value


WebUrl = Annotated[str, Field(max_length=2000), AfterValidator(web_address)]


@lru_cache(maxsize=65_536)
def _email(value: str) -> str:
    # pydantic's EmailStr check and normal form, once per distinct address: email-validator
    # took a fifth of the API's CPU for a batch of Segment messages (~70 µs an address,
    # cProfile), and a shop's events name the same customers again and again. An invalid
    # address raises, which is not kept.
    return validate_email(value)[1]


# An email address as pydantic's EmailStr checks and writes it.
Email = Annotated[
    str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_email)
]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}") from error
    return value


# A time zone of the tz database (`Europe/Istanbul`).
ZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]

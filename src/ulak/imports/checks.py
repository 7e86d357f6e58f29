"""The checks of an export's fields, as the events API checks the same fields (the same
limits), without pydantic: per field of every row, its validators were half of reading an
order."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ulak.customers.identity import normalize_email, normalize_phone
from ulak.events.schemas import EARLIEST, LATEST


class BadRecord(ValueError):
    pass


def identifier(value: str, field: str) -> None:
    if not 1 <= len(value) <= 200:
        raise BadRecord(f"{field}: from 1 to 200 characters")
    if "\x00" in value:
        raise BadRecord(f"{field}: must not contain a NUL character")


def amount(value: str, field: str) -> Decimal:
    """Money as the events take it: a decimal, not negative, up to 18 digits and 4 places."""
    parsed = money(value, field)
    if not parsed.is_finite():
        raise BadRecord(f"{field}: {value!r} is no amount")
    if parsed < 0:
        raise BadRecord(f"{field}: must not be negative")
    exponent = parsed.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > 4 or len(parsed.as_tuple().digits) > 18:
        raise BadRecord(f"{field}: at most 18 digits, 4 after the point")
    return parsed


# The same addresses and numbers recur (a customer per few orders): normalising one with
# email-validator and phonenumbers took ~0.5 ms, most of reading an order.
normalized_email = functools.lru_cache(maxsize=100_000)(normalize_email)
normalized_phone = functools.lru_cache(maxsize=100_000)(normalize_phone)


@functools.lru_cache(maxsize=1000)
def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def checked_text(value: Any, field: str, longest: int, *, minimum: int = 0) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{field}: text")
    if len(value) > longest or len(value) < minimum:
        raise BadRecord(f"{field}: at most {longest} characters")
    return value


# "2019-05-14 10:23:45 +0300" (Shopify): the offset apart from the time.
_SPACED_OFFSET = re.compile(r"^(.*\d)\s+([+-]\d\d:?\d\d|Z|UTC)$")
_OTHER_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")


def moment(value: Any, zone: ZoneInfo, field: str) -> datetime | None:
    """An aware moment from an export's text; one without an offset is in the store's zone."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{field}: a date and time as text")
    text = value.strip()
    if match := _SPACED_OFFSET.match(text):
        offset = match.group(2)
        text = match.group(1) + ("+00:00" if offset in ("Z", "UTC") else offset)
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        for form in _OTHER_FORMATS:
            try:
                moment = datetime.strptime(text, form)  # noqa: DTZ007 - zoned just below
                break
            except ValueError:
                continue
    if moment is None:
        raise BadRecord(f"{field}: {value!r} is no date and time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not EARLIEST <= moment < LATEST:
        raise BadRecord(f"{field}: must be between {EARLIEST.year} and {LATEST.year - 1}")
    return moment


def integer(value: str, field: str) -> int:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise BadRecord(f"{field}: {value!r} is no number") from None
    if number != number.to_integral_value() or abs(number) >= 2**31:
        raise BadRecord(f"{field}: {value!r} is no whole number")
    return int(number)


def money(value: str, field: str) -> Decimal:
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        raise BadRecord(f"{field}: {value!r} is no amount") from None

"""Locale-aware formatting of money, dates and numbers for templates (Babel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
    parse_pattern,
)

# The languages we ship texts for; anything else falls back (see language_of/resolve).
SHIPPED_LANGUAGES = ("tr", "en")

# CLDR's standard Turkish pattern puts the sign first (`₺1.249,90`); Turkish shops and
# customers write the amount first: `1.249,90 ₺`.
_PATTERNS = {"tr": "#,##0.00 ¤"}

# Babel ships only the standard currency symbols, and English's one for TRY is the ISO code
# ("TRY1,249.90"). CLDR's narrow symbol is what people write, so substitute it.
_NARROW_SYMBOLS = {"TRY": "₺"}


def language_of(locale: str | None) -> str:
    """'tr-TR' / 'tr_TR' / 'TR' → 'tr'; empty → ''."""
    return (locale or "").replace("_", "-").split("-")[0].strip().lower()


@lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A mistyped store time zone must not stop order mail; UTC is at least unambiguous.
        return dt.UTC


@lru_cache(maxsize=256)
def _money_pattern(language: str, code: str) -> NumberPattern | None:
    """The pattern of an amount in `code` (None: the locale's standard one), parsed once:
    Babel parses a pattern given as text on every call, a third of `money`'s CPU (9 to 6
    µs per amount in lira; a confirmation prints eight)."""
    pattern = _PATTERNS.get(language)
    symbol = _NARROW_SYMBOLS.get(code)
    if symbol is not None:
        base = pattern or Locale.parse(language).currency_formats["standard"].pattern
        # A literal symbol in the pattern is printed as is; ¤ would print the ISO code.
        pattern = base.replace("¤", symbol)
    return parse_pattern(pattern) if pattern is not None else None


@lru_cache(maxsize=256)
def _plain_money(language: str, code: str) -> Callable[[Decimal], str] | None:
    """A formatter for non-negative amounts in `code` that does what Babel does for them
    with the parts Babel gives (digits, symbols, the pattern's prefix and suffix) and
    Python's own grouping: a confirmation prints eight amounts, and Babel's general
    `apply` was a fifth of rendering one. Used only when it prints what Babel prints for
    a set of probes; otherwise None, and Babel formats."""
    locale = Locale.parse(language)
    pattern = _money_pattern(language, code) or parse_pattern(
        locale.currency_formats["standard"].pattern
    )
    digits = get_currency_precision(code)
    if pattern.grouping != (3, 3) or pattern.frac_prec != (digits, digits):
        return None
    symbols = locale.number_symbols.get("latn", {})
    separators = str.maketrans({",": symbols.get("group", ","), ".": symbols.get("decimal", ".")})
    symbol = get_currency_symbol(code, locale=locale)
    prefix, suffix = (part.replace("¤", symbol) for part in (pattern.prefix[0], pattern.suffix[0]))
    step = Decimal(1).scaleb(-digits)

    def fast(amount: Decimal) -> str:
        rounded = amount.quantize(step, rounding=ROUND_HALF_EVEN)
        return f"{prefix}{format(rounded, f',.{digits}f').translate(separators)}{suffix}"

    for probe in ("0", "0.5", "7", "999.995", "1000", "1249.9", "1234567.891", "12345678901.25"):
        amount = Decimal(probe)
        if fast(amount) != format_currency(amount, code, format=pattern, locale=locale):
            return None
    return fast


def _to_decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("money/number expects a number, not a boolean")
    try:
        # str() first so that a float arrives as the digits it prints, not its binary value.
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def _to_temporal(value: object) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text)
    raise TypeError(f"expected a date, datetime or ISO string, got {type(value).__name__}")


class Formatter:
    """Formats values for one rendering: a locale, a store time zone and a default currency."""

    def __init__(self, *, locale: str, timezone: str, currency: str) -> None:
        self.language = language_of(locale) or "en"
        self.locale = Locale.parse(self.language)
        self.tz = _zone(timezone)
        self.currency = currency.upper()

    def money(self, value: object, currency: str | None = None) -> str:
        amount = _to_decimal(value)
        if amount is None:
            return ""
        code = (currency or self.currency).upper()
        fast = _plain_money(self.language, code)
        if fast is not None and amount.is_finite() and amount >= 0:
            return fast(amount)
        pattern = _money_pattern(self.language, code)
        return format_currency(amount, code, format=pattern, locale=self.locale)

    def percent(self, value: object) -> str:
        """`value` percent as the language writes it: %10 in Turkish, 10% in English."""
        amount = _to_decimal(value)
        if amount is None:
            return ""
        return format_percent(amount / 100, locale=self.locale, decimal_quantization=False)

    def number(self, value: object) -> str:
        amount = _to_decimal(value)
        return "" if amount is None else format_decimal(amount, locale=self.locale)

    def _local(self, value: dt.datetime) -> dt.datetime:
        # The database keeps UTC; a naive value is taken as UTC rather than guessed local.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(self.tz)

    def date(self, value: object, format: str = "long") -> str:
        when = _to_temporal(value)
        if when is None:
            return ""
        if isinstance(when, dt.datetime):
            moment = when
            try:
                when = self._local(moment).date()
            except OverflowError:  # at the calendar's edge (a shop's 9999-12-31T23:00-12:00)
                when = moment.date()
        return format_date(when, format=format, locale=self.locale)

    def datetime(self, value: object, format: str = "medium") -> str:
        when = _to_temporal(value)
        if when is None:
            return ""
        if not isinstance(when, dt.datetime):
            return format_date(when, format=format, locale=self.locale)
        try:
            local = self._local(when)
        except OverflowError:  # at the calendar's edge: the time as the shop wrote it
            local = when
        return format_datetime(local, format=format, locale=self.locale)

    def country(self, value: object) -> str:
        """A country as the language names it: "TR" → "Türkiye", "DE" → "Almanya" / "Germany".
        Shops send ISO 3166 codes or a name; a name (or an unknown code) is shown as sent."""
        if not isinstance(value, str):
            return ""
        text = value.strip()
        if len(text) == 2 and text.isascii() and text.isalpha():
            return str(self.locale.territories.get(text.upper(), text))
        return text

    def payment_method(self, value: object) -> str:
        """A payment method the shop sent as one of the common codes, in the language;
        anything else (the shop's own wording) as sent."""
        if not isinstance(value, str):
            return ""
        text = value.strip()
        names = PAYMENT_METHODS.get(text.lower().replace("-", "_").replace(" ", "_"))
        return names[self.language] if names and self.language in names else text


# The codes shops and their platforms commonly send for `order.placed`'s `payment_method`.
PAYMENT_METHODS: dict[str, dict[str, str]] = {
    "credit_card": {"tr": "Kredi kartı", "en": "Credit card"},
    "debit_card": {"tr": "Banka kartı", "en": "Debit card"},
    "card": {"tr": "Kart", "en": "Card"},
    "bank_transfer": {"tr": "Havale/EFT", "en": "Bank transfer"},
    "cash_on_delivery": {"tr": "Kapıda ödeme", "en": "Cash on delivery"},
    "card_on_delivery": {"tr": "Kapıda kartla ödeme", "en": "Card on delivery"},
    "paypal": {"tr": "PayPal", "en": "PayPal"},
    "wallet": {"tr": "Dijital cüzdan", "en": "Digital wallet"},
    "store_credit": {"tr": "Mağaza kredisi", "en": "Store credit"},
    "gift_card": {"tr": "Hediye kartı", "en": "Gift card"},
}

from __future__ import annotations

from decimal import Decimal

import pytest
from babel import Locale
from babel.numbers import format_currency
from hypothesis import given
from hypothesis import strategies as st

from ulak.messages.formatting import Formatter, _money_pattern, _plain_money

amounts = st.decimals(min_value=0, max_value=10**12, places=3, allow_nan=False)


@pytest.mark.parametrize(
    ("language", "currency", "expected"),
    [
        ("tr", "TRY", "1.249,90 ₺"),
        ("en", "TRY", "₺1,249.90"),
        ("tr", "EUR", "1.249,90 €"),
        ("en", "USD", "$1,249.90"),
        ("tr", "JPY", "1.250 ¥"),  # no minor unit: Babel formats it
    ],
)
def test_money_prints_what_a_customer_of_that_language_reads(
    language: str, currency: str, expected: str
) -> None:
    formatter = Formatter(locale=language, timezone="UTC", currency=currency)
    assert formatter.money(Decimal("1249.9")) == expected


@given(amounts, st.sampled_from(["tr", "en", "de", "fr"]), st.sampled_from(["TRY", "EUR", "USD"]))
def test_the_fast_money_formatter_prints_what_babel_prints(
    amount: Decimal, language: str, currency: str
) -> None:
    fast = _plain_money(language, currency)
    assert fast is not None
    pattern = (
        _money_pattern(language, currency) or Locale.parse(language).currency_formats["standard"]
    )
    assert fast(amount) == format_currency(
        amount, currency, format=pattern, locale=Locale.parse(language)
    )


def test_currencies_whose_digits_differ_from_the_pattern_are_left_to_babel() -> None:
    assert _plain_money("tr", "JPY") is None
    assert _plain_money("en", "KWD") is None
    assert Formatter(locale="en", timezone="UTC", currency="KWD").money("1.5") == "KWD1.500"


def test_a_negative_amount_keeps_its_sign() -> None:
    assert Formatter(locale="tr", timezone="UTC", currency="TRY").money("-5") == "-5,00 ₺"


def test_a_moment_at_the_calendars_edge_is_written_as_given_not_an_error() -> None:
    # In Istanbul it would be a day past year 9999.
    fmt = Formatter(locale="en", timezone="Europe/Istanbul", currency="TRY")
    assert fmt.date("9999-12-31T23:00:00-12:00") == "December 31, 9999"
    assert fmt.datetime("9999-12-31T23:00:00-12:00") == "Dec 31, 9999, 11:00:00\u202fPM"

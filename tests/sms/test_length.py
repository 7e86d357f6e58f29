"""SMS length: encoding, units and segments at each boundary (3GPP TS 23.038)."""

from __future__ import annotations

import pytest

from ulak.sms.length import SmsLength, sms_length


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsLength("gsm7", 0, 0)),
        ("a" * 160, SmsLength("gsm7", 160, 1)),
        ("a" * 161, SmsLength("gsm7", 161, 2)),
        ("a" * 306, SmsLength("gsm7", 306, 2)),
        ("a" * 307, SmsLength("gsm7", 307, 3)),
        # Ç Ö ö Ü ü are in the default table: one septet each.
        ("ÇÖöÜü" * 32, SmsLength("gsm7", 160, 1)),
        # € and [ are escapes of the default extension: two septets.
        ("€" * 80, SmsLength("gsm7", 160, 1)),
        ("€" + "a" * 159, SmsLength("gsm7", 161, 2)),
        # ş is a 2-septet escape of the Turkish single-shift table: 155 / 149.
        ("ş" + "a" * 153, SmsLength("gsm7-turkish", 155, 1)),
        ("ş" + "a" * 154, SmsLength("gsm7-turkish", 156, 2)),
        ("ş" + "a" * 296, SmsLength("gsm7-turkish", 298, 2)),
        ("ş" + "a" * 297, SmsLength("gsm7-turkish", 299, 3)),
        ("ĞİŞçğış", SmsLength("gsm7-turkish", 14, 1)),
        # A part never ends inside an escape: 148 septets, then "ı" would straddle.
        ("a" * 148 + "ı" + "a" * 10, SmsLength("gsm7-turkish", 160, 2)),
        ("a" * 148 + "ı" * 76, SmsLength("gsm7-turkish", 300, 3)),
        # Anything outside both tables: UCS-2, 70 / 67 units.
        ("â" * 70, SmsLength("ucs2", 70, 1)),
        ("â" * 71, SmsLength("ucs2", 71, 2)),
        ("â" * 134, SmsLength("ucs2", 134, 2)),
        ("â" * 135, SmsLength("ucs2", 135, 3)),
        # An emoji is a surrogate pair: two units, never split across parts.
        ("😀" * 35, SmsLength("ucs2", 70, 1)),
        ("a" * 66 + "😀" + "a" * 66, SmsLength("ucs2", 134, 3)),
    ],
)
def test_length(text: str, expected: SmsLength) -> None:
    assert sms_length(text) == expected


def test_a_turkish_greeting() -> None:
    text = "Doğum gününüz kutlu olsun Ayşe! Size özel %20 indirim: https://x.test/s/Ab3dE6gH9k"
    assert sms_length(text) == SmsLength("gsm7-turkish", len(text) + 2, 1)  # ğ and ş

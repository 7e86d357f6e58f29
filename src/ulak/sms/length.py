"""How long a text is as an SMS: its encoding, size and segments (3GPP TS 23.038).

A pure function: the outbox, the dev SMS inbox and `ulak journeys validate` count with it.

GSM-7 (default table, escapes from its extension table) fits 160 septets in one SMS and
153 in each part of a long one (the concatenation header takes 7). The Turkish letters ş ğ ı
İ Ş Ğ ç (and €) are not in the default table: with the Turkish national single-shift table
they are 2-septet escapes, and the header that names the table takes 3 bytes more, so 155 /
149 septets. Anything else is UCS-2: 70 / 67 UTF-16 units. A part never ends inside an
escape or a surrogate pair (the phone could not rebuild the character), so the parts are
filled one character at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "gsm7-turkish", "ucs2"]

# The GSM 7-bit default alphabet (TS 23.038 6.2.1), 1 septet each (0x1B, the escape, left out).
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The default extension table: escape + character, 2 septets each.
_EXTENSION = frozenset("\f^{}\\[~]|€")
# The Turkish single-shift table (TS 23.038 A.2.1): the default extension's characters and
# the Turkish letters the default table lacks.
_TURKISH_SHIFT = _EXTENSION | frozenset("ĞİŞçğış")

# (one SMS, each part of a long one), in septets or UTF-16 units.
LIMITS: dict[Encoding, tuple[int, int]] = {
    "gsm7": (160, 153),
    "gsm7-turkish": (155, 149),
    "ucs2": (70, 67),
}


@dataclass(frozen=True)
class SmsLength:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _widths(text: str) -> tuple[Encoding, list[int]]:
    if all(c in _BASIC or c in _EXTENSION for c in text):
        return "gsm7", [1 if c in _BASIC else 2 for c in text]
    if all(c in _BASIC or c in _TURKISH_SHIFT for c in text):
        return "gsm7-turkish", [1 if c in _BASIC else 2 for c in text]
    return "ucs2", [2 if ord(c) > 0xFFFF else 1 for c in text]


def sms_length(text: str) -> SmsLength:
    encoding, widths = _widths(text)
    units = sum(widths)
    single, part = LIMITS[encoding]
    if units == 0:
        return SmsLength(encoding, 0, 0)
    if units <= single:
        return SmsLength(encoding, units, 1)
    segments, room = 1, part
    for width in widths:
        if width > room:
            segments, room = segments + 1, part
        room -= width
    return SmsLength(encoding, units, segments)

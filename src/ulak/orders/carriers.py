"""Tracking links for carriers that did not send one: a public tracking page per carrier,
the parcel's tracking number URL-encoded into it.

A shop names its carrier however its platform does ("Yurtiçi Kargo", "YURTICI",
"yurtici-kargo", "MNG Kargo A.Ş."), so names are matched forgivingly: Turkish letters
folded to ASCII, case and punctuation ignored, then the carrier's known aliases looked for
as whole words. A carrier no pattern knows gets no link (never a guess).

The patterns are the carriers' public tracking pages as shops commonly link them (ulak
has no network to check them; the README's "Order tracking page" says which were seen in
a carrier's own integration notes). MNG Kargo now runs as DHL eCommerce Türkiye, so that
name is MNG's, while "DHL" alone is DHL Express.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str
    # `{}` is where the URL-encoded tracking number goes.
    pattern: str
    # Folded names (see `fold`) that name this carrier: whole words of the shop's name.
    aliases: tuple[str, ...]


CARRIERS: tuple[Carrier, ...] = (
    Carrier(
        "yurtici",
        "Yurtiçi Kargo",
        "https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code={}",
        ("yurtici", "yk"),
    ),
    Carrier(
        "aras",
        "Aras Kargo",
        "https://kargotakip.araskargo.com.tr/mainpage.aspx?code={}",
        ("aras",),
    ),
    Carrier(
        "mng",
        "MNG Kargo",
        "https://kargotakip.mngkargo.com.tr/?takipNo={}",
        ("mng", "dhl ecommerce"),
    ),
    Carrier(
        "ptt",
        "PTT Kargo",
        "https://gonderitakip.ptt.gov.tr/Track/Verify?q={}",
        ("ptt", "ptt kargo", "ptt posta"),
    ),
    Carrier(
        "surat",
        "Sürat Kargo",
        "https://suratkargo.com.tr/KargoTakip/?kargotakipno={}",
        ("surat",),
    ),
    Carrier(
        "hepsijet",
        "HepsiJET",
        "https://www.hepsijet.com/gonderi-takibi/{}",
        ("hepsijet", "hepsi jet"),
    ),
    Carrier("ups", "UPS", "https://www.ups.com/track?tracknum={}", ("ups",)),
    Carrier(
        "dhl",
        "DHL",
        "https://www.dhl.com/tr-tr/home/tracking.html?tracking-id={}&submit=1",
        ("dhl", "dhl express"),
    ),
    Carrier("fedex", "FedEx", "https://www.fedex.com/fedextrack/?trknbr={}", ("fedex", "fed ex")),
)

_FOLD = str.maketrans(
    {
        "ç": "c",
        "ğ": "g",
        "ı": "i",
        "ö": "o",
        "ş": "s",
        "ü": "u",
        "â": "a",
        "î": "i",
        "û": "u",
    }
)


def fold(name: str) -> str:
    """A carrier name as words of lowercase ASCII letters and digits: "Yurtiçi Kargo A.Ş."
    → "yurtici kargo a s"; "HEPSİJET" → "hepsijet"."""
    # Turkish dotted capital İ lowercases to "i" + a combining dot; drop the dot.
    lowered = name.replace("İ", "i").replace("I", "ı").lower().replace("\u0307", "")
    lowered = lowered.translate(_FOLD)
    return " ".join(re.findall(r"[a-z0-9]+", lowered))


# Words a shop adds to a carrier's name, also run together with it ("YurticiKargo").
_SUFFIXES = re.compile(r"(kargo|cargo|express|ekspres|as|tr|turkiye)+$")


@lru_cache(maxsize=1024)
def carrier_of(name: str | None) -> Carrier | None:
    """The known carrier a shop's name for it names, or None."""
    if not name:
        return None
    words = fold(name)
    padded = f" {words} "
    # Run together and without the usual suffixes: "Yurt İçi", "YurticiKargo", "HepsiJetTR".
    joined = words.replace(" ", "")
    bare = {joined, _SUFFIXES.sub("", joined)} | {_SUFFIXES.sub("", w) for w in words.split()}
    for carrier in CARRIERS:
        for alias in carrier.aliases:
            if f" {alias} " in padded or alias.replace(" ", "") in bare:
                return carrier
    return None


def tracking_url(carrier: str | None, tracking_number: str | None) -> str | None:
    """The carrier's public tracking page for this number, or None (no number, or a
    carrier no pattern knows). The number is URL-encoded whole: `/`, `?`, `&`, `#` and
    quotes in it stay inside the one parameter or path segment."""
    if not tracking_number or not tracking_number.strip():
        return None
    known = carrier_of(carrier)
    if known is None:
        return None
    return known.pattern.format(quote(tracking_number.strip(), safe=""))

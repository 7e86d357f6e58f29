"""Tracking links built from a carrier's pattern, for carriers that sent none."""

from __future__ import annotations

import pytest

from ulak.orders.carriers import CARRIERS, carrier_of, fold, tracking_url


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        (
            "Yurtiçi Kargo",
            "https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code=1234567890",
        ),
        ("Aras Kargo", "https://kargotakip.araskargo.com.tr/mainpage.aspx?code=1234567890"),
        ("MNG Kargo", "https://kargotakip.mngkargo.com.tr/?takipNo=1234567890"),
        ("PTT Kargo", "https://gonderitakip.ptt.gov.tr/Track/Verify?q=1234567890"),
        ("Sürat Kargo", "https://suratkargo.com.tr/KargoTakip/?kargotakipno=1234567890"),
        ("HepsiJET", "https://www.hepsijet.com/gonderi-takibi/1234567890"),
        ("UPS", "https://www.ups.com/track?tracknum=1234567890"),
        ("DHL", "https://www.dhl.com/tr-tr/home/tracking.html?tracking-id=1234567890&submit=1"),
        ("FedEx", "https://www.fedex.com/fedextrack/?trknbr=1234567890"),
    ],
)
def test_each_carrier_gets_its_tracking_page(carrier: str, expected: str) -> None:
    assert tracking_url(carrier, "1234567890") == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("yurtici", "yurtici"),
        ("YURTİÇİ KARGO", "yurtici"),
        ("Yurt İçi Kargo", "yurtici"),
        ("yurtici-kargo", "yurtici"),
        ("YurticiKargo", "yurtici"),
        ("  yurtiçi kargo a.ş. ", "yurtici"),
        ("ARAS", "aras"),
        ("aras_kargo", "aras"),
        ("MNG Kargo A.Ş.", "mng"),
        ("DHL eCommerce", "mng"),
        ("ptt", "ptt"),
        ("SÜRAT KARGO", "surat"),
        ("surat", "surat"),
        ("HEPSİJET", "hepsijet"),
        ("Hepsi Jet", "hepsijet"),
        ("hepsijet express", "hepsijet"),
        ("UPS Kargo", "ups"),
        ("ups", "ups"),
        ("DHL Express", "dhl"),
        ("Fed Ex", "fedex"),
    ],
)
def test_carrier_names_are_matched_forgivingly(name: str, code: str) -> None:
    found = carrier_of(name)
    assert found is not None
    assert found.code == code


@pytest.mark.parametrize(
    "name",
    [None, "", "Kargo", "Trendyol Express", "upsilon", "Darasa", "Paraşüt", "Kendi kuryemiz"],
)
def test_an_unknown_carrier_gets_no_link(name: str | None) -> None:
    assert carrier_of(name) is None
    assert tracking_url(name, "1234567890") is None


def test_no_tracking_number_no_link() -> None:
    assert tracking_url("Aras Kargo", None) is None
    assert tracking_url("Aras Kargo", "   ") is None


def test_the_tracking_number_is_encoded_whole_into_the_pattern() -> None:
    number = 'A1/../../x?y=1&z=2#frag "><script>'
    assert tracking_url("Aras", number) == (
        "https://kargotakip.araskargo.com.tr/mainpage.aspx?code="
        "A1%2F..%2F..%2Fx%3Fy%3D1%26z%3D2%23frag%20%22%3E%3Cscript%3E"
    )
    # In a path segment too: no way out of it.
    assert tracking_url("HepsiJET", "../../admin?x=1") == (
        "https://www.hepsijet.com/gonderi-takibi/..%2F..%2Fadmin%3Fx%3D1"
    )
    # Around the number, spaces the shop left are dropped; inside it, encoded.
    assert tracking_url("UPS", " 1Z 999 ") == "https://www.ups.com/track?tracknum=1Z%20999"


def test_every_pattern_is_https_with_one_place_for_the_number() -> None:
    for carrier in CARRIERS:
        assert carrier.pattern.startswith("https://")
        assert carrier.pattern.count("{}") == 1
        assert all(fold(alias) == alias for alias in carrier.aliases)


def test_turkish_letters_fold_to_ascii() -> None:
    assert fold("ÇĞIİÖŞÜ çğıiöşü") == "cgiiosu cgiiosu"

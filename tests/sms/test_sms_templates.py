"""SMS templates: the shipped ones in Turkish and English, a store's own through `ulak
templates set`, and `ulak journeys validate` warning past the store's segment limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import create_store_with_cli, ulak_cli
from ulak.messages.sms import SAMPLE_BRAND, length_warnings, shipped_sms_templates, sms_sample
from ulak.sms.length import SmsLength

LINK = "http://ulak.test/s/xxxxxxxxxx"


@pytest.mark.parametrize(
    ("name", "locale", "text", "length"),
    [
        (
            "birthday_sms",
            "tr",
            "Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe! Size özel %15 indirim kodu:"
            f" DOGUMGUNU-AB3D-EF6H {LINK}",
            SmsLength("gsm7-turkish", 131, 1),
        ),
        (
            "birthday_sms",
            "en",
            "Ayşe'nin Dükkanı: Happy birthday, Ayşe! %15 off, just for you:"
            f" DOGUMGUNU-AB3D-EF6H {LINK}",
            SmsLength("gsm7-turkish", 115, 1),
        ),
        (
            "special_day_sms",
            "tr",
            "Ayşe'nin Dükkanı: Anneler Günü kutlu olsun Ayşe! %15 indirim kodunuz:"
            f" DOGUMGUNU-AB3D-EF6H {LINK}",
            SmsLength("gsm7-turkish", 122, 1),
        ),
        (
            "special_day_sms",
            "en",
            f"Ayşe'nin Dükkanı: Happy Mother's Day, Ayşe! %15 off: DOGUMGUNU-AB3D-EF6H {LINK}",
            SmsLength("gsm7-turkish", 105, 1),
        ),
    ],
)
def test_every_shipped_sms_template_renders(
    name: str, locale: str, text: str, length: SmsLength
) -> None:
    assert sms_sample(
        name, locale=locale, brand=SAMPLE_BRAND, overrides={}, base_url="http://ulak.test"
    ) == (text, length)


def test_the_shipped_sms_templates() -> None:
    assert shipped_sms_templates() == ("birthday_sms", "special_day_sms")


JOURNEY = """\
key: long-note
name: Long note
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: sms
    template: note_sms
"""


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url, "ULAK_PUBLIC_URL": "http://ulak.test"}


def test_a_store_sms_template_is_checked_and_validate_warns_past_the_limit(
    env: dict[str, str], tmp_path: Path
) -> None:
    store = str(create_store_with_cli(env)["id"])
    broken = tmp_path / "broken.txt"
    broken.write_text("{{ customer.first_name ", encoding="utf-8")
    refused = ulak_cli("templates", "set", "note_sms", str(broken), "--store", store, env=env)
    assert refused.returncode == 2
    assert "note_sms (tr, store override), line 1" in refused.stderr
    # 3 segments in Turkish (ş: 2 septets each, 149 a part); fits 2 in English.
    long_tr = tmp_path / "note.tr.txt"
    long_tr.write_text("ş" * 150 + " {{ store.store_name }}", encoding="utf-8")
    short_en = tmp_path / "note.en.txt"
    short_en.write_text("Hello {{ customer.first_name }}", encoding="utf-8")
    for path, locale in ((long_tr, "tr"), (short_en, "en")):
        saved = ulak_cli(
            "templates", "set", "note_sms", str(path), "--store", store, "--locale", locale, env=env
        )
        assert saved.returncode == 0, saved.stderr
    journey = tmp_path / "journey.yaml"
    journey.write_text(JOURNEY, encoding="utf-8")
    checked = ulak_cli("journeys", "validate", str(journey), "--store", store, env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.splitlines() == [
        "warning: template note_sms (tr) takes 3 SMS segments on a sample (319 septets,"
        " gsm7-turkish), over the limit of 2"
    ]
    # A limit of 3 takes it.
    raised = ulak_cli("stores", "sms", "set", "--store", store, "--segment-limit", "3", env=env)
    assert raised.returncode == 0, raised.stderr
    again = ulak_cli("journeys", "validate", str(journey), "--store", store, env=env)
    assert again.stderr == ""


def test_validate_counts_the_opt_out_line_of_a_commercial_sms() -> None:
    # 140 GSM-7 characters: one segment alone, two with "Stop SMS: <short link>".
    source = {"en": {"note_sms": "a" * 140}}
    common: dict[str, Any] = {
        "brand": SAMPLE_BRAND,
        "overrides": source,
        "limit": 1,
        "base_url": "http://ulak.test",
    }
    assert length_warnings(["note_sms"], **common) == []
    assert length_warnings(["note_sms"], commercial={"note_sms"}, **common) == [
        "template note_sms (en) takes 2 SMS segments on a sample (180 septets, gsm7),"
        " over the limit of 1"
    ]

"""The shipped birthday and special-day journeys text customers with a phone and SMS
consent too, and `ulak simulate` shows those SMS with `channel: sms`."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from tests.journeys.test_simulation import event, run, scenario, sent
from tests.support import ulak_cli

PROFILE = (
    "customer: {id: c-1042, email: ayse@example.com, phone: '+905321234567',"
    " first_name: Ayşe, birthday: '1990-03-05'}"
)
SMS_CONSENT = event(
    "+0s", "consent.updated", "{channel: sms, status: granted, source: checkout}", PROFILE
)


def test_a_birthday_sms_goes_to_a_customer_with_a_phone_and_sms_consent() -> None:
    signup = event("+0s", "customer.created", "{}", customer=PROFILE)
    timeline = run(scenario(signup, SMS_CONSENT, journeys="[birthday]", run_until="+5d"))
    assert sent(timeline) == [
        ("2026-03-05T10:00:00+03:00", "birthday", "birthday", "ayse@example.com"),
        ("2026-03-05T10:00:00+03:00", "birthday", "birthday_sms", "+905321234567"),
    ]
    email, sms = timeline.messages
    assert (email.channel, sms.channel) == ("email", "sms")
    code = re.search(r"DOGUMGUNU-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", email.text)
    assert code is not None
    greeting, opt_out = sms.text.split("\n")
    assert greeting == (
        f"Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe! Size özel %15 indirim kodu: {code[0]}"
    )
    # A commercial SMS: the way to refuse more, as a short link of ulak's.
    assert re.fullmatch(r"SMS iptali: http://127\.0\.0\.1:8000/s/[A-Za-z0-9]{10}", opt_out)
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_no_sms_without_sms_consent_or_a_phone() -> None:
    no_phone = PROFILE.replace(" phone: '+905321234567',", "")
    for profile, extra in ((PROFILE, ()), (no_phone, (SMS_CONSENT.replace(PROFILE, no_phone),))):
        signup = event("+0s", "customer.created", "{}", customer=profile)
        timeline = run(scenario(signup, *extra, journeys="[birthday]", run_until="+5d"))
        assert [m.channel for m in timeline.messages] == ["email"]
        # Left out by the step's guard, not kept as skipped: most customers have neither.
        assert timeline.unsent == []


def test_simulate_prints_sms_with_their_channel() -> None:
    signup = event("+0s", "customer.created", "{}", customer=PROFILE)
    text = scenario(signup, SMS_CONSENT, journeys="[birthday]", run_until="+5d")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.yaml"
        path.write_text(text, encoding="utf-8")
        result = ulak_cli("simulate", str(path), "--json", env={})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [(m["template"], m["channel"], m["to"]) for m in shown] == [
        ("birthday", "email", "ayse@example.com"),
        ("birthday_sms", "sms", "+905321234567"),
    ]

"""Date-relative journeys and the store's special days through `ulak simulate`: exact local
send times, and each way out of a wait until a date."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from tests.journeys.test_simulation import event, run, scenario, sent
from ulak.journeys.simulation import Ended

TO = "ayse@example.com"


def customer(ref: str = "c-1042", email: str = TO, **more: str) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in {"id": ref, "email": email, **more}.items())
    return f"customer: {{{fields}}}"


def signup(at: str = "+0s", **more: str) -> str:
    return event(at, "customer.created", "{}", customer=customer(**more))


def consented(ref: str, email: str) -> str:
    """The customer grants consent to commercial email (the scenario's own customer,
    c-1042, has by default)."""
    granted = "{channel: email, status: granted, source: checkout}"
    return event("+0s", "consent.updated", granted, customer=customer(ref, email))


def journey_file(folder: Path, text: str) -> str:
    (folder / "journey.yaml").write_text(text, encoding="utf-8")
    return "[journey.yaml]"


def test_a_membership_anniversary_greets_at_ten_each_year(tmp_path: Path) -> None:
    journeys = journey_file(
        tmp_path,
        """\
key: anniversary
name: Üyelik yıldönümü
legal_class: commercial
trigger:
  date: {attribute: member_since, yearly: true}
reentry: always
steps:
  - wait: {until: "10:00"}
  - send: email
    template: birthday
""",
    )
    joined = signup(attributes="{member_since: '2024-03-05'}")
    timeline = run(scenario(joined, journeys=journeys, run_until="+370d"), base=tmp_path)
    assert sent(timeline) == [
        ("2026-03-05T10:00:00+03:00", "anniversary", "birthday", TO),
        ("2027-03-05T10:00:00+03:00", "anniversary", "birthday", TO),
    ]
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


def test_three_days_before_a_date_in_the_customers_own_time_zone(tmp_path: Path) -> None:
    journeys = journey_file(
        tmp_path,
        """\
key: ending
name: Aboneliğiniz bitiyor
legal_class: commercial
trigger:
  date: {attribute: subscription_ends, offset: -3d}
steps:
  - wait: {until: "10:00"}
  - send: email
    template: birthday
""",
    )
    new_york = signup(timezone="America/New_York", attributes="{subscription_ends: '2026-03-20'}")
    # The shop moves her date a day later before it comes.
    moved = signup(
        "+1d", timezone="America/New_York", attributes="{subscription_ends: '2026-03-21'}"
    )
    timeline = run(scenario(new_york, moved, journeys=journeys, run_until="+30d"), base=tmp_path)
    assert sent(timeline) == [
        # 10:00 in New York (daylight saving time from 8 March), 17:00 in Istanbul.
        ("2026-03-18T17:00:00+03:00", "ending", "birthday", TO),
    ]
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_a_special_day_greets_at_ten_in_each_customers_time_zone() -> None:
    ayse = signup(first_name="Ayşe")
    john = signup(
        ref="c-7",
        email="john@example.com",
        first_name="John",
        locale="en",
        timezone="America/New_York",
    )
    text = scenario(
        ayse, john, consented("c-7", "john@example.com"), journeys="[special-days]", run_until="+4d"
    )
    # Friday 8 May 2026: Anneler Günü (the second Sunday of May) is on the 10th.
    timeline = run(text.replace("2026-03-02T09:00:00", "2026-05-08T09:00:00"))
    assert sent(timeline) == [
        ("2026-05-10T10:00:00+03:00", "special-days", "special_day", TO),
        # 10:00 in New York.
        ("2026-05-10T17:00:00+03:00", "special-days", "special_day", "john@example.com"),
    ]
    turkish, english = timeline.messages
    assert turkish.subject == "Anneler Günü kutlu olsun, Ayşe!"
    assert re.search(r"Bu güne özel %10 indirim kodunuz: OZELGUN-\w{4}-\w{4}\n", turkish.text)
    assert "17 Mayıs 2026 tarihine kadar geçerlidir" in turkish.text
    assert english.subject == "Happy Mother's Day, John!"
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


WAIT_UNTIL_DATE = """\
key: renewal
name: Yenileme hatırlatması
legal_class: commercial
trigger:
  event: customer.created
reentry: always
steps:
  - wait: {until_date: {attribute: subscription_ends, offset: -3d}, at: "09:30"}
  - send: email
    template: birthday
"""


def test_a_wait_until_a_date_attribute_and_each_way_out(tmp_path: Path) -> None:
    journeys = journey_file(tmp_path, WAIT_UNTIL_DATE)
    events = [
        signup(attributes="{subscription_ends: '2026-03-20'}"),
        # Three days before was yesterday: it goes on at once (within the send window).
        signup(ref="c-2", email="b@example.com", attributes="{subscription_ends: '2026-03-04'}"),
        consented("c-2", "b@example.com"),
        signup(ref="c-3", email="c@example.com"),
        signup(ref="c-4", email="d@example.com", attributes="{subscription_ends: soon}"),
    ]
    timeline = run(scenario(*events, journeys=journeys, run_until="+30d"), base=tmp_path)
    assert sent(timeline) == [
        ("2026-03-02T09:00:00+03:00", "renewal", "birthday", "b@example.com"),
        ("2026-03-17T09:30:00+03:00", "renewal", "birthday", TO),
    ]
    start = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert timeline.endings == [
        Ended(
            at=start,
            journey="renewal",
            customer="c-3",
            status="exited",
            reason="wait until_date: the customer has no subscription_ends",
        ),
        Ended(
            at=start,
            journey="renewal",
            customer="c-4",
            status="exited",
            reason="wait until_date: attribute 'subscription_ends' is not a date (YYYY-MM-DD):"
            " 'soon'",
        ),
    ]
    assert (timeline.unsent, timeline.unfinished) == ([], [])

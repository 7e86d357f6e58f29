"""The sending policy's decision for one message: the consent matrix, sending hours across
time zones and DST changes, rolling frequency caps, marketplace relay addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ulak.consent.service import ConsentState
from ulak.journeys.definition import JourneyFileError, load_journey
from ulak.journeys.service import library
from ulak.policy.relays import is_relay
from ulak.policy.service import (
    DAY,
    SEND,
    WEEK,
    Candidate,
    Cap,
    ChannelRules,
    Hours,
    Postpone,
    Rules,
    Skip,
    decide,
    decide_all,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 12:00 in Istanbul
NO_LIMITS = Rules(zone="Europe/Istanbul")


def message(
    *,
    legal_class: str = "commercial",
    channel: str = "email",
    consent: str | None = "granted",
    recipient_type: str = "individual",
    to: str | None = None,
    zone: str | None = None,
    id_: int = 1,
    priority: int = 50,
    over_cap: str = "postpone",
) -> Candidate:
    state = (
        ConsentState(consent, "checkout", NOW - DAY, NOW - DAY, recipient_type)
        if consent is not None
        else None
    )
    return Candidate(
        id=id_,
        store_id=1,
        customer_id=7,
        channel=channel,
        legal_class=legal_class,
        to_address=to or ("ayse@example.com" if channel == "email" else "+905321234567"),
        due_at=NOW,
        priority=priority,
        over_cap=over_cap,
        consent=state,
        recipient_type=recipient_type,
        zone=zone,
    )


def _expected(
    legal_class: str, channel: str, status: str, recipient: str, relaxed: bool
) -> Skip | None:
    if legal_class == "informational" or status == "granted":
        return None
    if status == "revoked":
        return Skip(f"consent to commercial {channel} revoked (checkout)")
    if recipient == "merchant" and relaxed:
        return None
    return Skip(f"no consent to commercial {channel} on record")


MATRIX = [
    (legal_class, channel, status, recipient, relaxed)
    for legal_class in ("informational", "commercial")
    for channel in ("email", "sms")
    for status in ("none", "granted", "revoked")
    for recipient in ("individual", "merchant")
    for relaxed in (False, True)
]


@pytest.mark.parametrize(("legal_class", "channel", "status", "recipient", "relaxed"), MATRIX)
def test_consent_matrix(
    legal_class: str, channel: str, status: str, recipient: str, relaxed: bool
) -> None:
    """class × channel × status × recipient type × the store's merchant relaxation."""
    candidate = message(
        legal_class=legal_class,
        channel=channel,
        consent=None if status == "none" else status,
        recipient_type=recipient,
    )
    rules = Rules(merchant_opt_out=relaxed)
    expected = _expected(legal_class, channel, status, recipient, relaxed)
    assert decide(candidate, rules, now=NOW) == (expected or SEND)


def test_the_matrix_covers_every_combination_once() -> None:
    assert len(set(MATRIX)) == 2 * 2 * 3 * 2 * 2
    # The only ones sent without a grant: informational, and unrecorded merchants relaxed.
    sent = {m for m in MATRIX if _expected(*m) is None}
    assert {m for m in sent if m[0] == "commercial" and m[2] != "granted"} == {
        ("commercial", channel, "none", "merchant", True) for channel in ("email", "sms")
    }


SMS_HOURS = Rules(
    zone="Europe/Istanbul", channels={"sms": ChannelRules(Hours.parse("09:00-20:00"))}
)


@pytest.mark.parametrize(
    ("zone", "now", "until"),
    [
        # Istanbul (UTC+3 all year): 21:30 local -> 09:00 local next day.
        ("Europe/Istanbul", "2026-11-23T18:30:00+00:00", "2026-11-24T06:00:00+00:00"),
        # Before the window opens the same day: 07:10 local -> 09:00 local.
        ("Europe/Istanbul", "2026-11-23T04:10:00+00:00", "2026-11-23T06:00:00+00:00"),
        # Tokyo (UTC+9): 02:00 UTC is 11:00 there, inside; 12:00 UTC is 21:00, outside.
        ("Asia/Tokyo", "2026-11-23T12:00:00+00:00", "2026-11-24T00:00:00+00:00"),
        # Berlin, the night clocks go forward (29 March 2026, 02:00 -> 03:00): 22:00 CET
        # on the 28th waits for 09:00 CEST, which is 07:00 UTC, not 08:00.
        ("Europe/Berlin", "2026-03-28T21:00:00+00:00", "2026-03-29T07:00:00+00:00"),
        # New York, the night clocks go back (1 November 2026): 21:00 EDT on 31 October
        # waits for 09:00 EST, 14:00 UTC (it was 13:00 UTC the day before).
        ("America/New_York", "2026-11-01T01:00:00+00:00", "2026-11-01T14:00:00+00:00"),
    ],
)
def test_an_sms_outside_its_hours_waits_for_the_next_opening_in_the_recipients_zone(
    zone: str, now: str, until: str
) -> None:
    at = datetime.fromisoformat(now)
    decision = decide(message(channel="sms", zone=zone), SMS_HOURS, now=at)
    reason = f"quiet hours: sms only 09:00-20:00 ({zone})"
    assert decision == Postpone(datetime.fromisoformat(until), reason)


def test_inside_the_hours_it_goes_and_informational_messages_are_never_held() -> None:
    inside = datetime(2026, 11, 23, 16, 59, tzinfo=UTC)  # 19:59 in Istanbul
    assert decide(message(channel="sms"), SMS_HOURS, now=inside) == SEND
    night = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    informational = message(channel="sms", legal_class="informational", consent=None)
    assert decide(informational, SMS_HOURS, now=night) == SEND
    # Email has no hours by default: the same moment sends it.
    assert decide(message(channel="email"), SMS_HOURS, now=night) == SEND


def test_the_customers_own_zone_wins_and_an_unknown_one_falls_back_to_the_stores() -> None:
    at = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 17:00 Istanbul, 23:00 Tokyo
    assert decide(message(channel="sms"), SMS_HOURS, now=at) == SEND
    assert isinstance(
        decide(message(channel="sms", zone="Asia/Tokyo"), SMS_HOURS, now=at), Postpone
    )
    assert decide(message(channel="sms", zone="Mars/Olympus"), SMS_HOURS, now=at) == SEND


def test_hours_across_midnight_and_bad_windows() -> None:
    night = Hours.parse("22:00-06:00")
    assert str(night) == "22:00-06:00"
    rules = Rules(zone="UTC", channels={"sms": ChannelRules(night)})
    assert decide(message(channel="sms"), rules, now=NOW.replace(hour=23)) == SEND
    assert decide(message(channel="sms"), rules, now=NOW.replace(hour=12)) == Postpone(
        NOW.replace(hour=22), "quiet hours: sms only 22:00-06:00 (UTC)"
    )
    for bad in ("9-20", "09:00", "09:00-09:00", "25:00-26:00"):
        with pytest.raises(ValueError, match="is not a window of local hours"):
            Hours.parse(bad)


CAPPED = Rules(channels={"email": ChannelRules(None, (Cap(1, DAY, "day"), Cap(3, WEEK, "week")))})


def test_caps_count_rolling_windows_and_the_latest_cap_decides() -> None:
    one_day = "frequency cap: 1 commercial email a day"
    # One sent 10 hours ago: the next may go 24 hours after it.
    earlier = [NOW - timedelta(hours=10)]
    assert decide(message(), CAPPED, now=NOW, released=earlier) == Postpone(
        NOW + timedelta(hours=14), one_day
    )
    # Three in the last week (6, 4 and 2 days ago): the week's cap opens 7 days after the
    # oldest of them, later than the day's.
    week = [NOW - timedelta(days=d) for d in (6, 4, 2)]
    assert decide(message(), CAPPED, now=NOW, released=week) == Postpone(
        NOW + DAY, "frequency cap: 3 commercial email a week"
    )
    # A week and a second ago no longer counts.
    assert decide(message(), CAPPED, now=NOW, released=[NOW - WEEK - timedelta(seconds=1)]) == SEND
    # A cap of 0 is no cap; caps never touch informational messages.
    uncapped = Rules(channels={"email": ChannelRules(None, (Cap(0, DAY, "day"),))})
    assert decide(message(), uncapped, now=NOW, released=earlier * 5) == SEND
    assert decide(message(legal_class="informational"), CAPPED, now=NOW, released=week) == SEND
    # A journey that says so skips instead.
    assert decide(message(over_cap="skip"), CAPPED, now=NOW, released=earlier) == Skip(one_day)


def test_a_cap_and_quiet_hours_together_wait_for_both() -> None:
    rules = Rules(
        zone="Europe/Istanbul",
        channels={"sms": ChannelRules(Hours.parse("09:00-20:00"), (Cap(1, WEEK, "week"),))},
    )
    # The slot frees at 21:00 Istanbul a week after the last one: then the window's next
    # opening, 09:00 the day after; the cap is the reason it waited.
    last = datetime(2026, 11, 16, 18, 0, tzinfo=UTC)
    assert decide(message(channel="sms"), rules, now=NOW, released=[last]) == Postpone(
        datetime(2026, 11, 24, 6, 0, tzinfo=UTC), "frequency cap: 1 commercial sms a week"
    )


def test_the_higher_priority_takes_the_slot_and_the_others_wait() -> None:
    low = message(id_=1, priority=20)
    high = message(id_=2, priority=80)
    other_customer = Candidate(**{**high.__dict__, "id": 3, "customer_id": 8})
    decisions = decide_all([low, high, other_customer], {1: CAPPED}, now=NOW, released={})
    assert decisions == {
        2: SEND,
        1: Postpone(NOW + DAY, "frequency cap: 1 commercial email a day"),
        3: SEND,
    }
    # A tie of priority: the one due first, then the lower id.
    tie = decide_all([message(id_=5), message(id_=4)], {1: CAPPED}, now=NOW, released={})
    assert tie == {4: SEND, 5: Postpone(NOW + DAY, "frequency cap: 1 commercial email a day")}


@pytest.mark.parametrize(
    ("address", "relay"),
    [
        ("pf+dym24k@trendyolmail.com", True),
        ("PF+X@TrendyolMail.com", True),
        ("7yxwc3c8k00p1k3@marketplace.amazon.com", True),
        ("kr3b15szg6bmv7w@marketplace.amazon.de", True),
        ("abc@marketplace.amazon.com.tr", True),
        ("v4bd3xsd5i4lj45@scs.tiktokw.us", True),
        ("ayse@example.com", False),
        ("ayse@amazon.com", False),
        ("ayse@trendyol.com", False),
        ("+905321234567", False),
    ],
)
def test_marketplace_relay_addresses_get_no_commercial_message(address: str, relay: bool) -> None:
    assert is_relay(address) is relay
    channel = "sms" if address.startswith("+") else "email"
    commercial = decide(message(to=address, channel=channel), NO_LIMITS, now=NOW)
    assert commercial == (Skip("marketplace relay address") if relay else SEND)
    informational = message(to=address, channel=channel, legal_class="informational")
    assert decide(informational, NO_LIMITS, now=NOW) == SEND


def test_a_journey_names_its_priority_and_what_it_does_over_a_cap() -> None:
    source = """key: test
name: Test
legal_class: commercial
trigger: {event: order.placed}
steps:
  - send: email
    template: order_delivered
"""
    defaults = load_journey(source)
    assert (defaults.priority, defaults.over_cap) == (50, "postpone")
    chosen = load_journey(source + "priority: 90\nover_cap: skip\n")
    assert (chosen.priority, chosen.over_cap) == (90, "skip")
    with pytest.raises(JourneyFileError) as caught:
        load_journey(source + "priority: 101\nover_cap: drop\n", "j.yaml")
    assert [str(p).split(":")[:2] for p in caught.value.problems] == [
        ["j.yaml", "8"],
        ["j.yaml", "9"],
    ]


def test_the_shipped_commercial_journeys_rank_as_the_readme_says() -> None:
    ranks = {
        (journey := load_journey(source)).key: journey.priority
        for _, source in library()
        if load_journey(source).legal_class == "commercial"
    }
    assert ranks == {
        "abandoned-cart": 80,
        "welcome": 70,
        "birthday": 60,
        "replenishment": 60,
        "satisfaction-make-good": 60,
        "thank-you": 50,
        "review-request": 30,
        "special-days": 30,
        "win-back": 20,
    }

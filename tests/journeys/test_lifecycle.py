"""The shipped lifecycle journeys (abandoned cart, birthday, win-back) through `ulak simulate`:
their clock-driven triggers fire at exact moments, and each exit holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from tests.journeys.test_simulation import PLACED, event, run, scenario, sent
from ulak.journeys.simulation import Ended, Timeline, Unfinished, Unsent

TO = "ayse@example.com"
CUSTOMER = "customer: {id: c-1042, email: ayse@example.com, first_name: Ayşe}"
ITEMS = (
    "[{title: Seramik kupa, quantity: 2, price: '249.95',"
    " image_url: 'https://cdn.dukkan.example/kupa.jpg'}]"
)
CART = event(
    "+0s",
    "cart.updated",
    f"{{cart_id: k1, items: {ITEMS}, total: '499.90',"
    " recovery_url: 'https://dukkan.example/sepet/k1'}",
    customer=CUSTOMER,
)


def test_abandoned_cart_reminds_at_1_24_and_72_hours_of_idleness() -> None:
    timeline = run(scenario(CART, journeys="[abandoned-cart]", run_until="+5d"))
    assert sent(timeline) == [
        ("2026-03-02T10:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
        ("2026-03-03T09:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
        ("2026-03-05T09:00:00+03:00", "abandoned-cart", "abandoned_cart_last", TO),
    ]
    first, _, last = timeline.messages
    assert first.subject == "Sepetinizde ürünler sizi bekliyor"
    assert last.subject == "Sepetiniz yakında boşalabilir"
    # Only the last reminder brings a code, from the store's cart template (10 %, 7 days).
    assert re.search(
        r"Siparişinizi tamamlamanız için %10 indirim: SEPET-\w{4}-\w{4} "
        r"\(12 Mart 2026 tarihine kadar, tek kullanımlık\)\.",
        last.text,
    )
    assert "indirim" not in first.text
    for message in timeline.messages:
        assert "- Seramik kupa × 2: 499,90 ₺" in message.text
        assert "Sepet toplamı: 499,90 ₺" in message.text
        assert "Sepetinize dönün: https://dukkan.example/sepet/k1" in message.text
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


def test_a_cart_update_moves_the_first_reminder() -> None:
    later = CART.replace('"+0s"', '"+40m"')
    timeline = run(scenario(CART, later, journeys="[abandoned-cart]", run_until="+3h"))
    assert sent(timeline) == [
        ("2026-03-02T10:40:00+03:00", "abandoned-cart", "abandoned_cart", TO),
    ]


def test_a_purchase_during_the_cart_wait_exits() -> None:
    placed = PLACED.replace('"+0s"', '"+3h"')
    timeline = run(scenario(CART, placed, journeys="[abandoned-cart]", run_until="+5d"))
    assert sent(timeline) == [
        ("2026-03-02T10:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
    ]
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            journey="abandoned-cart",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.placed",
        )
    ]
    assert (timeline.unsent, timeline.unfinished) == ([], [])


def test_a_purchase_before_the_cart_is_abandoned_sends_nothing() -> None:
    placed = PLACED.replace('"+0s"', '"+30m"')
    timeline = run(scenario(CART, placed, journeys="[abandoned-cart]", run_until="+5d"))
    assert (timeline.messages, timeline.endings, timeline.unfinished) == ([], [], [])


def test_an_emptied_cart_exits() -> None:
    emptied = event("+2h", "cart.updated", "{cart_id: k1, items: []}", customer=CUSTOMER)
    timeline = run(scenario(CART, emptied, journeys="[abandoned-cart]", run_until="+5d"))
    assert [m.template for m in timeline.messages] == ["abandoned_cart"]
    assert [(e.journey, e.reason) for e in timeline.endings] == [
        ("abandoned-cart", "exit_when: cart.updated")
    ]


SIGNUP = event("+0s", "customer.created", "{}", customer=CUSTOMER)
LATER_CONSENT = event(
    "+2h", "consent.updated", "{channel: email, status: granted, source: signup_form}", CUSTOMER
)


def test_welcome_at_once_at_sign_up_even_at_one_in_the_night() -> None:
    text = scenario(SIGNUP, journeys="[welcome]", run_until="+2d")
    timeline = run(text.replace("2026-03-02T09:00:00", "2026-03-02T01:00:00"))
    assert sent(timeline) == [("2026-03-02T01:00:00+03:00", "welcome", "welcome", TO)]
    assert re.search(r"HOSGELDIN-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", timeline.messages[0].text)
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_welcome_waits_for_consent_that_arrives_after_the_sign_up() -> None:
    timeline = run(scenario(SIGNUP, LATER_CONSENT, journeys="[welcome]", consent=None))
    assert sent(timeline) == [("2026-03-02T11:00:00+03:00", "welcome", "welcome", TO)]


def test_no_welcome_and_no_code_without_consent_within_a_day() -> None:
    late = LATER_CONSENT.replace('"+2h"', '"+1d1h"')
    timeline = run(scenario(SIGNUP, late, journeys="[welcome]", consent=None))
    assert timeline.messages == []
    # Nothing was made for her: no skipped message (nor the code it would have shown).
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_birthday_at_ten_in_the_customers_own_time_zone() -> None:
    # The store is in Istanbul; she lives in New York.
    profile = (
        "customer: {id: c-1042, email: ayse@example.com, first_name: Ayşe,"
        " birthday: '1990-03-05', timezone: America/New_York}"
    )
    signup = event("+0s", "customer.created", "{}", customer=profile)
    timeline = run(scenario(signup, journeys="[birthday]", run_until="+5d"))
    assert sent(timeline) == [
        # 10:00 in New York, 18:00 in Istanbul.
        ("2026-03-05T18:00:00+03:00", "birthday", "birthday", TO),
    ]
    (message,) = timeline.messages
    assert message.subject == "İyi ki doğdunuz, Ayşe!"
    # A single-use birthday code, valid for the week.
    assert re.search(
        r"Size özel %15 indirim kodunuz: DOGUMGUNU-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}\n",
        message.text,
    )
    assert "12 Mart 2026 tarihine kadar geçerlidir" in message.text
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_a_birthday_on_29_february_is_kept_on_28_february() -> None:
    profile = "customer: {id: c-1042, email: ayse@example.com, birthday: '2000-02-29'}"
    signup = event("+0s", "customer.created", "{}", customer=profile)
    text = scenario(signup, journeys="[birthday]", run_until="+400d")
    timeline = run(text.replace("2026-03-02T09:00:00", "2026-02-01T09:00:00"))
    assert [timeline.local(m.at).isoformat() for m in timeline.messages] == [
        "2026-02-28T10:00:00+03:00",
        "2027-02-28T10:00:00+03:00",
    ]


def test_win_back_when_a_customer_has_not_ordered_for_90_days() -> None:
    timeline = run(scenario(PLACED, journeys="[win-back]", run_until="+100d"))
    assert sent(timeline) == [
        ("2026-05-31T10:00:00+03:00", "win-back", "win_back", TO),
    ]
    assert timeline.messages[0].subject == "Sizi özledik, Ayşe"
    assert re.search(r"Size özel %15 indirim kodunuz: OZLEDIK-", timeline.messages[0].text)
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_an_order_during_win_back_exits() -> None:
    again = PLACED.replace('"+0s"', '"2026-05-31T09:30:00+03:00"').replace('"1001"', '"1002"')
    timeline = run(scenario(PLACED, again, journeys="[win-back]", run_until="+1d"))
    assert timeline.messages == []
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 5, 31, 6, 30, tzinfo=UTC),
            journey="win-back",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.placed",
        )
    ]
    assert timeline.unfinished == []


def test_a_new_stores_lifecycle_journeys_send_only_with_consent() -> None:
    with_consent = run(scenario(CART, run_until="+5d"))
    assert [(m.journey, m.template) for m in with_consent.messages] == [
        ("abandoned-cart", "abandoned_cart"),
        ("abandoned-cart", "abandoned_cart"),
        ("abandoned-cart", "abandoned_cart_last"),
    ]
    # Without consent each reminder is kept, skipped with the reason, and none leaves.
    without = run(scenario(CART, run_until="+5d", consent=None))
    assert without.messages == []
    assert [(u.template, u.status, u.reason) for u in without.unsent] == [
        ("abandoned_cart", "skipped", "no consent to commercial email on record"),
        ("abandoned_cart", "skipped", "no consent to commercial email on record"),
        ("abandoned_cart_last", "skipped", "no consent to commercial email on record"),
    ]
    assert without.unfinished == list[Unfinished]()


# Waits count from when the trigger happened, not from when ulak heard of it.

REVIEW = """\
key: review-request
name: Review request
legal_class: {legal_class}
trigger: {{event: order.delivered}}
reentry: once_per_order
steps:
  - wait: 7d
  - send: email
    template: order_delivered
"""


def delivered(at: str, occurred_at: str) -> str:
    return (
        f'  - at: "{at}"\n    event: {{type: order.delivered, customer: {{id: c-1042}},'
        f' occurred_at: "{occurred_at}", data: {{order_id: "1001"}}}}\n'
    )


def review_run(tmp_path: Path, *events: str, legal_class: str = "informational") -> Timeline:
    (tmp_path / "review.yaml").write_text(REVIEW.format(legal_class=legal_class), "utf-8")
    text = scenario(PLACED, *events, journeys="[review.yaml]", run_until="+20d")
    return run(text, base=tmp_path)


def test_a_delivery_reported_a_day_late_still_gets_its_email_7_days_after_delivery(
    tmp_path: Path,
) -> None:
    timeline = review_run(tmp_path, delivered("+3d", "2026-03-04T09:00:00+03:00"))
    assert sent(timeline) == [
        ("2026-03-11T09:00:00+03:00", "review-request", "order_delivered", TO),
    ]


def test_a_wait_that_ended_before_its_trigger_came_in_sends_at_once(tmp_path: Path) -> None:
    # Reported 7 days and 5 hours late: the email was due 5 hours ago, still in time.
    timeline = review_run(tmp_path, delivered("+9d5h", "2026-03-04T09:00:00+03:00"))
    assert sent(timeline) == [
        ("2026-03-11T14:00:00+03:00", "review-request", "order_delivered", TO),
    ]


def test_a_send_whose_moment_passed_long_ago_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    # Reported 9 days late: the informational email was due 2 days ago (it may go 24 h late).
    late = delivered("+11d", "2026-03-04T09:00:00+03:00")
    timeline = review_run(tmp_path, late)
    assert timeline.messages == []
    assert timeline.unsent == [
        Unsent(
            at=datetime(2026, 3, 13, 6, 0, tzinfo=UTC),
            journey="review-request",
            template="order_delivered",
            to=TO,
            customer="c-1042",
            status="skipped",
            reason="too late: meant for 2026-03-11T06:00:00+00:00, 48h ago"
            " (informational sends go within 24h)",
        )
    ]
    # A commercial send may go up to 72 h late.
    (tmp_path / "commercial").mkdir()
    commercial = review_run(tmp_path / "commercial", late, legal_class="commercial")
    assert [timeline.local(m.at).isoformat() for m in commercial.messages] == [
        "2026-03-13T09:00:00+03:00"
    ]


def test_an_order_confirmation_for_an_order_reported_days_late_is_skipped() -> None:
    old = PLACED.replace('"+0s"', '"+3d"').replace(
        "type: order.placed", 'type: order.placed\n      occurred_at: "2026-03-02T09:00:00+03:00"'
    )
    timeline = run(scenario(old, journeys="[order-confirmation]"))
    assert timeline.messages == []
    assert [(u.template, u.status, u.reason) for u in timeline.unsent] == [
        (
            "order_confirmation",
            "skipped",
            "too late: meant for 2026-03-02T06:00:00+00:00, 72h ago"
            " (informational sends go within 24h)",
        )
    ]


def test_a_journey_says_how_late_its_sends_may_go(tmp_path: Path) -> None:
    (tmp_path / "prompt.yaml").write_text(
        "key: prompt\nname: Prompt\nlegal_class: informational\nsend_within: 2h\n"
        "trigger: {event: order.placed}\n"
        "steps:\n  - send: email\n    template: order_confirmation\n",
        "utf-8",
    )
    three_hours_late = PLACED.replace('"+0s"', '"+3h"').replace(
        "type: order.placed", 'type: order.placed\n      occurred_at: "2026-03-02T09:00:00+03:00"'
    )
    timeline = run(scenario(three_hours_late, journeys="[prompt.yaml]"), base=tmp_path)
    assert [u.reason for u in timeline.unsent] == [
        "too late: meant for 2026-03-02T06:00:00+00:00, 3.0h ago"
        " (informational sends go within 2.0h)"
    ]

"""The shipped lifecycle journeys (abandoned cart, birthday, win-back) through `ulak simulate`:
their clock-driven triggers fire at exact moments, and each exit holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
        # Due 24 h after the cart, 23 h after the first reminder: the store's default cap
        # (1 commercial email in any 24 hours) holds it until a day after the first.
        ("2026-03-03T10:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
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


# Thank you and follow-up: a thank-you a few hours after the order (not at night), usage
# tips after delivery (only with tips), and an incentive for the next order two weeks later.


def product_event(product_id: str, fields: str) -> str:
    return (
        f'  - at: "+0s"\n    event: {{type: product.updated, data: {{product_id: {product_id},'
        f' title: "{product_id}", {fields}}}}}\n'
    )


def order_of(at: str, customer: str, order_id: str, *products: str) -> str:
    items = ", ".join(
        f"{{product_id: {p}, title: {p.capitalize()}, quantity: 1, price: '100.00'}}"
        for p in products
    )
    data = f"{{order_id: '{order_id}', number: '#{order_id}', items: [{items}], total: '100.00'}}"
    return event(at, "order.placed", data, customer)


KUPA_TIPS = "tips: ['İlk kullanımdan önce ılık suyla yıkayın.', 'Bulaşık makinesine uygundur.']"
CATALOGUE = (
    product_event("kupa", f"url: 'https://dukkan.example/kupa', {KUPA_TIPS}")
    + product_event("pecete", "url: 'https://dukkan.example/pecete', price: '180.00'")
    + product_event("tabak", "url: 'https://dukkan.example/tabak', price: '90.00', inventory: 0")
)
# Another customer (without an email address: nothing is sent to them) bought kupa with
# pecete and tabak; tabak is out of stock.
OTHER = order_of("+0s", "customer: {id: c-7}", "900", "kupa", "pecete", "tabak")


def thank_you(*events: str, run_until: str = "+40d") -> Timeline:
    return run(scenario(*events, journeys="[thank-you]", run_until=run_until))


def delivered_now(at: str, order_id: str = "1001") -> str:
    return event(at, "order.delivered", f"{{order_id: '{order_id}'}}")


def test_thank_you_then_tips_after_delivery_then_an_incentive() -> None:
    timeline = thank_you(
        CATALOGUE,
        OTHER,
        order_of("+0s", CUSTOMER, "1001", "kupa"),  # Monday 09:00
        delivered_now("2026-03-04T15:00:00+03:00"),
    )
    assert sent(timeline) == [
        # Three hours after the order.
        ("2026-03-02T12:00:00+03:00", "thank-you", "thank_you", TO),
        # A day after the delivery, within 10:00-20:00.
        ("2026-03-05T15:00:00+03:00", "thank-you", "thank_you_tips", TO),
        # Two weeks after the tips.
        ("2026-03-19T15:00:00+03:00", "thank-you", "thank_you_offer", TO),
    ]
    thanks, tips, offer = timeline.messages
    assert thanks.subject == "Teşekkür ederiz, Ayşe"
    assert "#1001 numaralı siparişiniz için çok teşekkür ederiz." in thanks.text
    assert tips.subject == "Ürünlerinizden en iyi şekilde yararlanın"
    assert (
        "Kupa\n- İlk kullanımdan önce ılık suyla yıkayın.\n- Bulaşık makinesine uygundur.\n"
        in tips.text
    )
    assert offer.subject == "Bir sonraki siparişinize özel, Ayşe"
    assert re.search(r"Size özel %10 indirim kodunuz: TESEKKURLER-\w{4}-\w{4}\n", offer.text)
    assert "18 Nisan 2026 tarihine kadar geçerlidir" in offer.text
    # Bought with kupa: pecete; tabak is out of stock; kupa is hers.
    assert (
        "Aldıklarınızla birlikte sık tercih edilenler:\n"
        "- pecete: 180,00 ₺ (https://dukkan.example/pecete)\n\n"
    ) in offer.text
    assert "tabak" not in offer.text
    # The other customer has no address: their thank-you is kept as skipped.
    assert [(u.journey, u.template, u.reason) for u in timeline.unsent] == [
        ("thank-you", "thank_you", "the customer has no email address")
    ]
    assert timeline.endings == []
    assert timeline.failed_events == []


def test_an_order_at_night_is_thanked_at_nine_the_next_morning() -> None:
    timeline = thank_you(
        CATALOGUE,
        order_of("2026-03-02T19:30:00+03:00", CUSTOMER, "1001", "kupa"),
        run_until="+1d",
    )
    # 19:30 + 3 h is 22:30: at night, so 09:00.
    assert sent(timeline) == [("2026-03-03T09:00:00+03:00", "thank-you", "thank_you", TO)]


def test_an_order_without_tips_gets_no_tips_email() -> None:
    timeline = thank_you(
        CATALOGUE,
        OTHER,
        order_of("+0s", CUSTOMER, "1001", "pecete"),
        delivered_now("2026-03-04T15:00:00+03:00"),
    )
    # No tips for pecete: the tips email is skipped by its guard, and the offer still
    # comes two weeks after the moment the tips would have gone.
    assert sent(timeline) == [
        ("2026-03-02T12:00:00+03:00", "thank-you", "thank_you", TO),
        ("2026-03-19T15:00:00+03:00", "thank-you", "thank_you_offer", TO),
    ]
    # Bought with pecete: kupa (no price in the catalogue) and tabak (out of stock).
    offer = timeline.messages[1].text
    assert "- kupa (https://dukkan.example/kupa)\n" in offer
    assert "tabak" not in offer
    assert [u.journey for u in timeline.unsent] == ["thank-you"]  # the other customer's
    assert timeline.endings == []


def test_a_cancelled_order_ends_the_thank_you_journey() -> None:
    cancelled = event("2026-03-03T10:00:00+03:00", "order.cancelled", "{order_id: '1001'}")
    timeline = thank_you(CATALOGUE, order_of("+0s", CUSTOMER, "1001", "kupa"), cancelled)
    assert sent(timeline) == [("2026-03-02T12:00:00+03:00", "thank-you", "thank_you", TO)]
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 3, 3, 7, 0, tzinfo=UTC),
            journey="thank-you",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.cancelled",
        )
    ]
    assert timeline.unfinished == []


def test_an_order_never_delivered_gets_only_the_thank_you() -> None:
    timeline = thank_you(CATALOGUE, order_of("+0s", CUSTOMER, "1001", "kupa"))
    assert sent(timeline) == [("2026-03-02T12:00:00+03:00", "thank-you", "thank_you", TO)]
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_the_order_confirmation_never_pays_for_recommendations_or_tips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def costly(*_: object, **__: object) -> None:
        raise AssertionError("computed for a template that does not read it")

    monkeypatch.setattr("ulak.journeys.context.recommend", costly)
    monkeypatch.setattr("ulak.journeys.context.tips_for", costly)
    timeline = run(scenario(CATALOGUE, PLACED, journeys="[order-confirmation]"))
    assert sent(timeline) == [
        ("2026-03-02T09:00:00+03:00", "order-confirmation", "order_confirmation", TO)
    ]
    assert timeline.failed_events == []


# Replenishment: a reminder on the day what was bought runs out, with a reorder link.

REORDER_STORE = (
    "currency: TRY, reorder_url: 'https://dukkan.example/sepet/{variant_id}:{quantity},...'}"
)


def product(at: str, product_id: str, variant_id: str, title: str, price: str, days: int) -> str:
    return (
        f'  - at: "{at}"\n    event: {{type: product.updated, data: {{product_id: {product_id},'
        f" variant_id: '{variant_id}', title: {title}, price: '{price}',"
        f" url: 'https://dukkan.example/{product_id}',"
        f" image_url: 'https://cdn.dukkan.example/{product_id}.jpg', replenish_days: {days}}}}}\n"
    )


COFFEE = product("+0s", "kahve", "kahve/250g", "Filtre kahve", "189.90", 15)
FILTERS = product("+0s", "filtre", "f-100", "Kağıt filtre", "49.90", 30)


TITLES = {"kahve": "Filtre kahve", "filtre": "Kağıt filtre", "kupa": "Kupa"}


def bought(at: str, order_id: str, *items: tuple[str, str, int]) -> str:
    lines = ", ".join(
        f"{{product_id: {p}, variant_id: '{v}', title: {TITLES[p]}, quantity: {q}, price: '10.00'}}"
        for p, v, q in items
    )
    data = f"{{order_id: '{order_id}', items: [{lines}], total: '10.00'}}"
    return event(at, "order.placed", data, CUSTOMER)


def reorder_scenario(*events: str, run_until: str, reorder_url: bool = True) -> str:
    text = scenario(*events, journeys="[replenishment]", run_until=run_until)
    return text.replace("currency: TRY}", REORDER_STORE) if reorder_url else text


def test_replenishment_reminds_at_ten_on_the_day_it_runs_out_with_a_reorder_link() -> None:
    # Two bags of 15 days each, bought on 2 March: they run out on 1 April.
    order = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    timeline = run(reorder_scenario(COFFEE, order, run_until="+40d"))
    assert sent(timeline) == [
        ("2026-04-01T10:00:00+03:00", "replenishment", "replenishment", TO),
    ]
    (message,) = timeline.messages
    assert message.subject == "Filtre kahve bitmek üzere mi?"
    assert "- Filtre kahve × 2: 189,90 ₺\n" in message.text
    # The shop's pattern, the variant id percent-encoded so its "/" adds no path.
    assert (
        "Tek tıkla yeniden sipariş verin: https://dukkan.example/sepet/kahve%2F250g:2\n"
        in message.text
    )
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


def test_without_a_reorder_pattern_the_reminder_links_each_products_page() -> None:
    order = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    timeline = run(reorder_scenario(COFFEE, order, run_until="+40d", reorder_url=False))
    (message,) = timeline.messages
    assert "- Filtre kahve × 2: 189,90 ₺\n  https://dukkan.example/kahve\n" in message.text
    assert "sepet" not in message.text


def test_products_running_out_on_one_day_share_one_reminder_and_one_link() -> None:
    # Coffee (2 × 15 days) in the morning, filters (30 days) in the evening: both run out
    # on 1 April, so one email lists both, and its link reorders both.
    morning = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    evening = bought("+11h", "1002", ("filtre", "f-100", 1))
    timeline = run(reorder_scenario(COFFEE, FILTERS, morning, evening, run_until="+40d"))
    assert sent(timeline) == [
        ("2026-04-01T10:00:00+03:00", "replenishment", "replenishment", TO),
    ]
    (message,) = timeline.messages
    assert message.subject == "Aldığınız ürünler bitmek üzere mi?"
    assert "- Filtre kahve × 2: 189,90 ₺\n" in message.text
    assert "- Kağıt filtre × 1: 49,90 ₺\n" in message.text
    assert "https://dukkan.example/sepet/kahve%2F250g:2,f-100:1\n" in message.text


def test_buying_the_product_again_before_the_day_moves_the_reminder() -> None:
    first = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    again = bought("+20d", "1002", ("kahve", "kahve/250g", 1))
    timeline = run(reorder_scenario(COFFEE, first, again, run_until="+20d"))
    # The second bag (15 days from 22 March) runs out on 6 April; 1 April passes quietly.
    assert sent(timeline) == [
        ("2026-04-06T10:00:00+03:00", "replenishment", "replenishment", TO),
    ]
    assert "- Filtre kahve × 1: 189,90 ₺\n" in timeline.messages[0].text


def test_buying_the_product_on_the_morning_of_the_reminder_exits() -> None:
    first = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    # 1 April, 08:00: after the day began (the trigger), before the 10:00 email.
    again = bought("2026-04-01T08:00:00+03:00", "1002", ("kahve", "kahve/250g", 2))
    timeline = run(reorder_scenario(COFFEE, first, again, run_until="+1d"))
    assert timeline.messages == []
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 4, 1, 5, 0, tzinfo=UTC),
            journey="replenishment",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.placed",
        )
    ]
    assert timeline.unfinished == []


def test_an_order_of_other_products_that_morning_keeps_the_reminder() -> None:
    first = bought("+0s", "1001", ("kahve", "kahve/250g", 2))
    other = bought("2026-04-01T08:00:00+03:00", "1002", ("kupa", "k-1", 1))
    timeline = run(reorder_scenario(COFFEE, first, other, run_until="+1d"))
    assert sent(timeline) == [
        ("2026-04-01T10:00:00+03:00", "replenishment", "replenishment", TO),
    ]
    assert timeline.endings == []


# Win-back also reaches sign-ups who never bought.

SIGNUP = event("+0s", "customer.created", "{}", customer=CUSTOMER)


def test_win_back_reaches_a_sign_up_who_never_bought_after_14_days() -> None:
    timeline = run(scenario(SIGNUP, journeys="[win-back]", run_until="+30d"))
    assert sent(timeline) == [
        ("2026-03-16T10:00:00+03:00", "win-back", "win_back", TO),
    ]
    (message,) = timeline.messages
    assert message.subject == "İlk siparişiniz sizi bekliyor, Ayşe"
    assert "Henüz bir sipariş vermediniz" in message.text
    assert "Bir süredir sizden haber alamadık" not in message.text
    assert re.search(r"Size özel %15 indirim kodunuz: OZLEDIK-", message.text)
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_the_store_says_how_long_a_sign_up_may_go_without_buying() -> None:
    text = scenario(SIGNUP, journeys="[win-back]", run_until="+30d")
    timeline = run(text.replace("currency: TRY}", "currency: TRY, never_bought_days: 3}"))
    assert sent(timeline) == [
        ("2026-03-05T10:00:00+03:00", "win-back", "win_back", TO),
    ]


def test_a_sign_up_who_orders_on_day_10_gets_no_never_bought_win_back() -> None:
    order = PLACED.replace('"+0s"', '"+10d"')
    timeline = run(scenario(SIGNUP, order, journeys="[win-back]", run_until="+30d"))
    assert (timeline.messages, timeline.unsent, timeline.endings) == ([], [], [])
    assert timeline.unfinished == []


def test_a_sign_up_who_ordered_lapses_90_days_after_the_order() -> None:
    order = PLACED.replace('"+0s"', '"+1d"')
    timeline = run(scenario(SIGNUP, order, journeys="[win-back]", run_until="+100d"))
    assert sent(timeline) == [
        ("2026-06-01T10:00:00+03:00", "win-back", "win_back", TO),
    ]
    assert timeline.messages[0].subject == "Sizi özledik, Ayşe"
    assert "Bir süredir sizden haber alamadık" in timeline.messages[0].text


def test_an_order_between_the_never_bought_moment_and_the_email_exits() -> None:
    order = PLACED.replace('"+0s"', '"2026-03-16T09:30:00+03:00"')
    timeline = run(scenario(SIGNUP, order, journeys="[win-back]", run_until="+1d"))
    assert timeline.messages == []
    assert [(e.journey, e.status, e.reason) for e in timeline.endings] == [
        ("win-back", "exited", "exit_when: order.placed")
    ]


# Welcome: once per person, also when a guest who ordered signs up.

GUEST = "customer: {email: ayse@example.com}"
SIGNED_UP = "customer: {id: c-1042, email: ayse@example.com, first_name: Ayşe}"


def welcomes(timeline: Timeline) -> list[tuple[str, str | None, str, str]]:
    return [m for m in sent(timeline) if m[1] == "welcome"]


def test_a_guest_who_ordered_then_signs_up_gets_one_welcome() -> None:
    guest_order = PLACED.replace(CUSTOMER, GUEST)
    signup = event("+1d", "customer.created", "{}", customer=SIGNED_UP)
    timeline = run(scenario(guest_order, signup, journeys="[welcome]", run_until="+2d"))
    assert sent(timeline) == [
        ("2026-03-03T09:00:00+03:00", "welcome", "welcome", TO),
    ]


def test_two_sign_up_events_for_one_person_give_one_welcome() -> None:
    signup = event("+0s", "customer.created", "{}", customer=SIGNED_UP)
    again = event("+1h", "customer.created", "{}", customer=SIGNED_UP)
    timeline = run(scenario(signup, again, journeys="[welcome]", run_until="+1d"))
    assert sent(timeline) == [
        ("2026-03-02T09:00:00+03:00", "welcome", "welcome", TO),
    ]


def test_two_signed_up_profiles_found_to_be_one_person_in_the_same_batch_get_one_welcome() -> None:
    # Welcomed by email; an hour later the shop creates the account (no email yet) and, at
    # the same moment, an order names both: the profiles merge before the account's
    # welcome runs, which would otherwise go to the address welcomed an hour ago.
    by_email = event("+0s", "customer.created", "{}", customer=GUEST)
    account = event("+1h", "customer.created", "{}", customer="customer: {id: c-1042}")
    linking = PLACED.replace(CUSTOMER, SIGNED_UP)
    # The email's consent only: the two profiles stay apart until the order links them.
    text = scenario(
        by_email, account, linking, journeys="[welcome]", run_until="+1d", consent=GUEST
    )
    timeline = run(text)
    assert welcomes(timeline) == [
        ("2026-03-02T09:00:00+03:00", "welcome", "welcome", TO),
    ]
    assert timeline.unsent == []
    assert [(e.journey, e.status, e.reason) for e in timeline.endings] == [
        ("welcome", "exited", "customer merged: the merged profile went through it already")
    ]


def test_two_profiles_merged_after_both_were_welcomed_send_nothing_more() -> None:
    by_email = event("+0s", "customer.created", "{}", customer=GUEST)
    account = event("+1h", "customer.created", "{}", customer="customer: {id: c-1042}")
    linking = PLACED.replace('"+0s"', '"+2h"').replace(CUSTOMER, SIGNED_UP)
    text = scenario(
        by_email, account, linking, journeys="[welcome]", run_until="+1d", consent=GUEST
    )
    timeline = run(text)
    assert welcomes(timeline) == [
        ("2026-03-02T09:00:00+03:00", "welcome", "welcome", TO),
    ]
    # The account, without consent of its own, waited for it; merged into the welcomed
    # profile, it exits without a second welcome.
    assert timeline.unsent == []
    assert [(e.journey, e.status, e.reason) for e in timeline.endings] == [
        ("welcome", "exited", "customer merged: the merged profile went through it already")
    ]


def test_a_cart_id_used_again_after_its_order_is_abandoned_again() -> None:
    # Segment's default cart id is the person's own: each of their carts has the same id.
    placed = PLACED.replace('"+0s"', '"+3h"').replace(
        'order_id: "1001"', 'order_id: "1001"\n        cart_id: k1'
    )
    added = event(
        "+3d",
        "cart.updated",
        "{cart_id: k1, change: add, items: [{title: Bakır çaydanlık, quantity: 1,"
        " price: '750.00'}], recovery_url: 'https://dukkan.example/sepet/k1'}",
        customer=CUSTOMER,
    )
    timeline = run(scenario(CART, placed, added, journeys="[abandoned-cart]", run_until="+2d"))
    assert sent(timeline) == [
        ("2026-03-02T10:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
        # The second cart (its line put in 3 days after the order at 12:00, times being
        # relative to the event before): reminded 1 h and 24 h after, as a cart of its own.
        ("2026-03-05T13:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
        ("2026-03-06T13:00:00+03:00", "abandoned-cart", "abandoned_cart", TO),
    ]
    first, second, third = timeline.messages
    assert "- Seramik kupa × 2: 499,90 ₺" in first.text
    for message in (second, third):
        assert "- Bakır çaydanlık × 1: 750,00 ₺\nSepet toplamı: 750,00 ₺" in message.text
        assert "Seramik kupa" not in message.text
    assert [(e.journey, e.reason) for e in timeline.endings] == [
        ("abandoned-cart", "exit_when: order.placed")
    ]
    # The second cart's last reminder is still to come (72 h of idleness), as for the first.
    assert timeline.unfinished == [
        Unfinished(
            journey="abandoned-cart",
            customer="c-1042",
            next_run_at=datetime(2026, 3, 8, 9, 0, tzinfo=UTC),
            waiting_for=None,
            failure=None,
        )
    ]
    assert timeline.unsent == []
    assert timeline.failed_events == []

"""The review request journey through `ulak simulate`: asked a store's delay after
delivery, reminded once, and stopped by a refund or cancellation."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.journeys.test_simulation import CUSTOMER, event, run, scenario, sent
from ulak.journeys.simulation import Ended

TO = "ayse@example.com"
PLACED = f"""\
  - at: "+0s"
    event:
      type: order.placed
      {CUSTOMER}
      data:
        order_id: "1001"
        number: "#1001"
        items:
          - {{product_id: p-1, title: Seramik kupa, quantity: 2, price: "249.95"}}
          - {{product_id: p-2, title: Bakır cezve, quantity: 1, price: "400.00"}}
          - {{product_id: p-1, title: Seramik kupa, quantity: 1, price: "249.95"}}
        total: "899.90"
"""
DELIVERED = event("+1d", "order.delivered", '{order_id: "1001"}', customer=CUSTOMER)


def test_asked_seven_days_after_delivery_and_reminded_five_days_later() -> None:
    timeline = run(scenario(PLACED, DELIVERED, journeys="[review-request]", run_until="+20d"))
    assert sent(timeline) == [
        ("2026-03-10T09:00:00+03:00", "review-request", "review_request", TO),
        ("2026-03-15T09:00:00+03:00", "review-request", "review_reminder", TO),
    ]
    request, reminder = timeline.messages
    assert request.subject == "Siparişinizi nasıl buldunuz? – #1001"
    # Each product once, with the form's link (stars open it with the product chosen).
    assert request.text.count("- Seramik kupa") == 1
    assert "- Bakır cezve" in request.text
    assert "Değerlendirmemi yaz: http" in request.text
    assert "/review/" in request.text
    assert "Bir sorun mu var?" in request.text
    assert "/return/" in request.text
    assert reminder.subject == "Bir dakikanız var mı? – #1001"
    assert (timeline.unsent, timeline.unfinished) == ([], [])
    assert timeline.failed_events == []


def test_a_refund_after_the_request_stops_the_reminder() -> None:
    refunded = event("+10d", "order.refunded", '{order_id: "1001"}', customer=CUSTOMER)
    timeline = run(
        scenario(PLACED, DELIVERED, refunded, journeys="[review-request]", run_until="+20d")
    )
    assert sent(timeline) == [
        ("2026-03-10T09:00:00+03:00", "review-request", "review_request", TO),
    ]
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 3, 13, 6, 0, tzinfo=UTC),  # each "at" counts from the last
            journey="review-request",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.refunded",
        )
    ]


def test_a_cancellation_before_the_moment_asks_nothing() -> None:
    cancelled = event("+3d", "order.cancelled", '{order_id: "1001"}', customer=CUSTOMER)
    timeline = run(
        scenario(PLACED, DELIVERED, cancelled, journeys="[review-request]", run_until="+20d")
    )
    assert (timeline.messages, timeline.endings, timeline.unfinished) == ([], [], [])


def test_another_orders_refund_does_not_stop_it() -> None:
    other = event("+10d", "order.refunded", '{order_id: "999"}', customer=CUSTOMER)
    timeline = run(
        scenario(PLACED, DELIVERED, other, journeys="[review-request]", run_until="+20d")
    )
    assert [m.template for m in timeline.messages] == ["review_request", "review_reminder"]

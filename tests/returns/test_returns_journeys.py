"""The shipped returns journeys through `ulak simulate`: each step of a return emails the
customer at once, and a refused request or step emails nothing."""

from __future__ import annotations

from tests.journeys.test_simulation import PLACED, event, run, scenario, sent

REF = "R-7KQ2-9XMD"
TO = "ayse@example.com"
JOURNEYS = "[order-delivered, returns, return-updates]"
REQUEST = (
    "{order_id: '1001', reference: "
    + REF
    + ", items: [{line: 0, quantity: 1}], reason: damaged, resolution: refund}"
)


def updated(status: str, extra: str = "") -> str:
    return "{reference: " + REF + ", status: " + status + (", " + extra if extra else "") + "}"


def test_a_return_from_request_to_refund_emails_each_step() -> None:
    timeline = run(
        scenario(
            PLACED,
            event("+1d", "order.delivered", "{order_id: '1001'}"),
            event("+3d", "return.requested", REQUEST),
            event(
                "+1d",
                "return.updated",
                updated("approved", "instructions: 'Kargo şubesine bırakın', label: YK-RET-42"),
            ),
            event("+2d", "return.updated", updated("received")),
            event("+1h", "return.updated", updated("refunded")),
            journeys=JOURNEYS,
        )
    )
    assert sent(timeline) == [
        ("2026-03-03T09:00:00+03:00", "order-delivered", "order_delivered", TO),
        ("2026-03-06T09:00:00+03:00", "returns", "return_requested", TO),
        ("2026-03-07T09:00:00+03:00", "return-updates", "return_updated", TO),
        ("2026-03-09T09:00:00+03:00", "return-updates", "return_updated", TO),
        ("2026-03-09T10:00:00+03:00", "return-updates", "return_updated", TO),
    ]
    assert [m.subject for m in timeline.messages[1:]] == [
        f"Sipariş #1001: iade talebiniz alındı – {REF}",
        f"Sipariş #1001: iade talebiniz onaylandı – {REF}",
        f"Sipariş #1001: iade ettiğiniz ürünler bize ulaştı – {REF}",
        f"Sipariş #1001: iade ödemeniz yapıldı – {REF}",
    ]
    approved, refunded = timeline.messages[2].text, timeline.messages[4].text
    assert "Kargo şubesine bırakın" in approved
    assert "İade kodu / etiket: YK-RET-42" in approved
    # One cup of two, at the order's price.
    assert "249,95 ₺ tutarı ödeme yönteminize iade ettik" in refunded
    assert timeline.failed_events == []


def test_a_late_request_and_a_refund_after_a_rejection_email_nothing() -> None:
    timeline = run(
        scenario(
            PLACED,
            event("+1d", "order.delivered", "{order_id: '1001'}"),
            # Delivered on 3 March: 17 March is the last day, the 18th is too late.
            event("2026-03-18T00:00:00+03:00", "return.requested", REQUEST),
            journeys=JOURNEYS,
        )
    )
    assert [m.template for m in timeline.messages] == ["order_delivered"]

    timeline = run(
        scenario(
            PLACED,
            event("+1d", "order.delivered", "{order_id: '1001'}"),
            event("2026-03-17T23:59:00+03:00", "return.requested", REQUEST),
            event("+1d", "return.updated", updated("rejected", "reason: 'Ürün kullanılmış'")),
            event("+1d", "return.updated", updated("refunded")),
            journeys=JOURNEYS,
        )
    )
    assert sent(timeline)[1:] == [
        ("2026-03-17T23:59:00+03:00", "returns", "return_requested", TO),
        ("2026-03-18T23:59:00+03:00", "return-updates", "return_updated", TO),
    ]
    rejected = timeline.messages[2]
    assert rejected.subject == f"Sipariş #1001: iade talebiniz hakkında – {REF}"
    assert "Nedeni: Ürün kullanılmış" in rejected.text

"""Data a journey may not give its message, and ulak's own emails to the shop."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.messages.test_rendering import BRAND, TAG
from ulak.messages.formatting import Formatter
from ulak.messages.rendering import SHOP_ALERTS, TemplateError, render_email

USES = """{% block subject %}x{% endblock %}{% block body %}x{% endblock %}
{% block text %}{{ SOURCE }}{% endblock %}"""


def text(source: str, **context: Any) -> str:
    overrides = {"order_delivered": USES.replace("{{ SOURCE }}", source)}
    mail = render_email(
        "order_delivered", locale="tr", brand=BRAND, context=context, overrides=overrides
    )
    return mail.text.split("\n\n--")[0]


def test_a_template_may_ask_whether_there_is_a_coupon_or_a_cart() -> None:
    source = "{% if coupon %}{{ coupon.code }}{% else %}none{% endif %}/"
    source += "{% if cart is defined %}{{ cart['items']|length }}{% else %}no cart{% endif %}"
    assert text(source) == "none/no cart"
    assert text(source, coupon={"code": "HG-1"}, cart={"items": [{"title": "Kupa"}]}) == "HG-1/1"
    assert text("{{ coupon|default('yok') }}") == "yok"


@pytest.mark.parametrize(
    ("source", "context", "reason"),
    [
        ("{{ coupon.code }}", {}, "coupon: no coupon was issued earlier in this journey"),
        ("Kod: {{ coupon }}", {}, "coupon: no coupon was issued earlier in this journey"),
        ("{% for i in cart['items'] %}{{ i.title }}{% endfor %}", {}, "cart: this journey has"),
        (
            "{% for i in cart.items %}{{ i.title }}{% endfor %}",
            {"cart": {"items": []}},
            "cart: the",
        ),
    ],
)
def test_using_data_the_journey_did_not_give_fails_the_email(
    source: str, context: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        text(source, **context)
    assert caught.value.message.startswith(
        f"order_delivered (tr, store override), line 2: {reason}"
    )


@pytest.mark.parametrize(
    ("locale", "percent", "money"),
    [("tr", "%12,5", "50,00 ₺"), ("en", "12.5%", "₺50.00")],
)
def test_percent_and_money_as_each_language_writes_them(
    locale: str, percent: str, money: str
) -> None:
    fmt = Formatter(locale=locale, timezone="Europe/Istanbul", currency="TRY")
    assert (fmt.percent(Decimal("12.50")), fmt.money(Decimal(50))) == (percent, money)
    assert fmt.percent(Decimal("10.0000")) == {"tr": "%10", "en": "10%"}[locale]


ALERTS: dict[str, dict[str, Any]] = {
    "shop_alert": {
        "template": "order_shipped",
        "reason": "line 3: division by zero",
        "since": "2026-11-30T08:00",
    },
    "shop_alert_customer": {
        "reason": "NPS 3: call them",
        "journey": "survey",
        "customer": {"name": "Ayşe Yılmaz", "email": "ayse@example.com", "ref": "ayse@example.com"},
    },
    "shop_alert_coupons": {"template": "welcome", "since": "2026-11-30T08:00"},
    "shop_alert_privacy": {
        "kind": "erase",
        "requested_at": "2026-11-30 08:00 UTC",
        "customer": {"name": "Ayşe Yılmaz", "email": "ayse@example.com", "ref": "ayse@example.com"},
    },
    "shop_alert_survey": {
        "kind": "nps",
        "score": 3,
        "top": 10,
        "comment": "Kargo çok geç geldi.",
        "order_id": "1001",
        "customer": {"name": "Ayşe Yılmaz", "email": "ayse@example.com"},
        "replaced": 0,
    },
}


@pytest.mark.parametrize("template", sorted(SHOP_ALERTS))
@pytest.mark.parametrize("locale", ["tr", "en"])
def test_every_alert_to_the_shop_renders(template: str, locale: str) -> None:
    alert = {**ALERTS[template], "store_id": 7}
    mail = render_email(template, locale=locale, brand=BRAND, context={"alert": alert, "store": {}})
    assert mail.subject.startswith("ulak: ")
    assert mail.preheader
    assert TAG.search(mail.text) is None
    for shown in ("None", "Undefined", "{{", "{%"):
        assert shown not in mail.text
        assert shown not in mail.html
    for key, value in alert.items():
        # A time is shown in the store's zone, a survey's kind by its name ("NPS").
        if isinstance(value, str) and value != "2026-11-30T08:00" and key != "kind":
            assert value in mail.text


def test_the_customer_alert_leaves_out_what_is_unknown() -> None:
    alert = {"reason": "x", "journey": "j", "customer": {}, "store_id": 1}
    mail = render_email(
        "shop_alert_customer", locale="en", brand=BRAND, context={"alert": alert, "store": {}}
    )
    assert mail.text.split("\n--")[0] == "Your journey j says:\n\n  x\n"


def test_the_survey_alert_leaves_out_what_is_unknown() -> None:
    alert = {"kind": "csat", "score": 2, "top": 5, "order_id": "9", "customer": {}}
    mail = render_email(
        "shop_alert_survey", locale="en", brand=BRAND, context={"alert": alert, "store": {}}
    )
    assert mail.subject == "ulak: an unhappy survey answer, 2/5"
    assert mail.text.split("\n--")[0] == (
        "A customer answered your satisfaction survey with 2 of 5. They got an apology with"
        " your contacts; a personal word from you helps most.\n\nThey left no comment.\n\n"
        "Order: 9\n"
    )

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from ulak.messages import rendering
from ulak.messages.rendering import (
    SAMPLE_EVENTS,
    Brand,
    RenderedEmail,
    TemplateError,
    check_template_source,
    render_email,
    resolve_locale,
    sample_context,
    shipped_templates,
    template_variables,
)

TAG = re.compile(r"</?[a-zA-Z][^>]*>")

BRAND = Brand(
    store_name="Ayşe'nin Dükkanı",
    locale="tr",
    timezone="Europe/Istanbul",
    currency="TRY",
    logo_url=None,
    brand_color="#c2410c",
    postal_address="Moda Cad. 12\nKadıköy/İstanbul",
    contact_email="merhaba@aysenin.example",
    contact_phone="+90 216 555 01 02",
    website_url="https://aysenin.example",
)


def full_context() -> dict[str, Any]:
    return sample_context()


def minimal_context() -> dict[str, Any]:
    return {
        "customer": {"email": "ayse@example.com"},
        "order": {"order_id": "ord_1", "number": "1001", "total": Decimal("1249.90")},
    }


def render(template: str, locale: str = "tr", **kwargs: Any) -> RenderedEmail:
    kwargs.setdefault("context", full_context())
    kwargs.setdefault("brand", BRAND)
    return render_email(template, locale=locale, **kwargs)


# Informational: about an order, a parcel or a product the customer asked about.
ORDER_MAILS = [
    "back_in_stock",
    "back_in_stock_confirm",
    "delivery_problem",
    "order_confirmation",
    "order_delivered",
    "order_preparing",
    "order_shipped",
    "return_requested",
    "return_updated",
    "survey_follow_up",
    "survey_request",
    "survey_review",
]
LIFECYCLE_MAILS = [
    "abandoned_cart",
    "abandoned_cart_last",
    "birthday",
    "replenishment",
    "review_reminder",
    "review_request",
    "thank_you",
    "thank_you_offer",
    "thank_you_tips",
    "special_day",
    "survey_make_good",
    "welcome",
    "win_back",
]


def test_shipped_templates_are_the_order_and_lifecycle_mails() -> None:
    assert shipped_templates() == tuple(sorted(ORDER_MAILS + LIFECYCLE_MAILS))


@pytest.mark.parametrize("template", ORDER_MAILS)
@pytest.mark.parametrize("locale", ["tr", "en"])
@pytest.mark.parametrize("context", [full_context, minimal_context])
def test_every_template_renders(template: str, locale: str, context: Any) -> None:
    event = SAMPLE_EVENTS.get(template)
    mail = render(template, locale, context=context() | ({"event": event} if event else {}))

    about = "Seramik Kupa" if template.startswith("back_in_stock") else "#1001"
    assert about in mail.subject
    assert about in mail.html
    assert about in mail.text
    assert mail.preheader
    assert mail.preheader in mail.html
    assert TAG.search(mail.text) is None
    assert "None" not in mail.html
    assert "None" not in mail.text
    assert "Undefined" not in mail.text
    # Greeting by first name when known, a neutral one otherwise.
    hello = {"tr": "Merhaba", "en": "Hi" if context is full_context else "Hello"}[locale]
    name = " Ayşe," if context is full_context else ","
    assert mail.text.startswith(hello + name + "\n")
    # CSS is inlined onto elements, not left to a <style> block: a phone's padding, which
    # a wider screen's @media rule widens.
    assert '<td class="content" style="padding: 28px 20px;' in mail.html
    assert "<style>@media only screen and (min-width: 620px)" in mail.html


def least_context() -> dict[str, Any]:
    """The least a lifecycle journey's message has: the customer's address, and a cart
    reminder's cart (a reminder without one fails its step: tests/messages/
    test_missing_data.py)."""
    item = {"title": "Kupa", "quantity": 1, "price": Decimal("10")}
    return {"customer": {"email": "a@b.example"}, "cart": {"cart_id": "c1", "items": [item]}}


@pytest.mark.parametrize("template", LIFECYCLE_MAILS)
@pytest.mark.parametrize("locale", ["tr", "en"])
@pytest.mark.parametrize("context", [full_context, least_context])
def test_every_lifecycle_template_renders(template: str, locale: str, context: Any) -> None:
    event = SAMPLE_EVENTS.get(template)
    mail = render(
        template,
        locale,
        context=context() | ({"event": event} if event else {}),
        unsubscribe_url="https://u.example/x",
    )
    assert mail.subject
    assert mail.preheader
    assert mail.preheader in mail.html
    assert TAG.search(mail.text) is None
    for part in (mail.html, mail.text):
        assert "None" not in part
        assert "Undefined" not in part
    full = context is full_context
    hello = {"tr": "Merhaba", "en": "Hi" if full else "Hello"}[locale]
    assert mail.text.startswith(hello + (" Ayşe," if full else ",") + "\n")
    assert "https://u.example/x" in mail.text


@pytest.mark.parametrize("template", ["abandoned_cart", "abandoned_cart_last"])
def test_cart_reminders_list_the_cart_with_its_recovery_link(template: str) -> None:
    mail = render(template)
    assert "- Seramik Kupa × 2: 500,00 ₺" in mail.text
    assert "- Keten Önlük × 1: 750,00 ₺" in mail.text
    assert "Sepet toplamı: 1.250,00 ₺" in mail.text
    assert "https://aysenin.example/sepet/cart_1" in mail.text
    assert 'href="https://aysenin.example/sepet/cart_1"' in mail.html
    assert 'src="https://cdn.aysenin.example/kupa.jpg"' in mail.html
    english = render(template, "en")
    assert "Cart total: ₺1,250.00" in english.text


def test_turkish_confirmation_shows_what_the_customer_bought() -> None:
    mail = render("order_confirmation")

    assert mail.subject == "Siparişiniz alındı – #1001"
    assert mail.preheader == (
        "Ayşe'nin Dükkanı siparişiniz için teşekkürler. Sipariş özetiniz bu e-postada."
    )
    for part in (mail.html, mail.text):
        assert "1.249,90 ₺" in part
        assert "23 Kasım 2026" in part
        assert "Seramik Kupa" in part
        assert "Keten Önlük" in part
        assert "500,00 ₺" in part  # 2 × 250,00
        assert "-50,00 ₺" in part
        assert "208,32 ₺" in part
        assert "Kadıköy/İstanbul" in part
    assert "- Seramik Kupa × 2: 500,00 ₺" in mail.text
    assert "Toplam: 1.249,90 ₺" in mail.text
    # The unit price beside the quantity; the line's total in its own column.
    muted = '<span class="muted" style="color: #6b7280;font-size: 14px;">'
    assert f"{muted}2 adet × 250,00 ₺</span>" in mail.html
    assert f"{muted}1 adet × 750,00 ₺</span>" in mail.html
    assert "- Seramik Kupa × 2: 500,00 ₺ (birim fiyat 250,00 ₺)\n" in mail.text
    assert "- Keten Önlük × 1: 750,00 ₺\n" in mail.text
    assert '<img src="https://cdn.aysenin.example/kupa.jpg"' in mail.html
    assert "Siparişiniz kargoya verildiğinde" in mail.text
    # The sample's country code as a name, its payment method and its page.
    assert "\n34710 Kadıköy/İstanbul\nTürkiye\n" in mail.text
    assert "Ödeme yöntemi: Kredi kartı\n" in mail.text
    assert "Siparişinizi görüntüleyin: https://aysenin.example/hesabim/siparis/1001" in mail.text
    assert ">Siparişinizi görüntüleyin</a>" in mail.html


def test_english_confirmation_uses_english_formats() -> None:
    mail = render("order_confirmation", "en")

    assert mail.subject == "Your order #1001 is confirmed"
    assert "₺1,249.90" in mail.text
    assert "November 23, 2026" in mail.text
    assert "- Seramik Kupa × 2: ₺500.00 (each ₺250.00)" in mail.text
    assert "Qty: 2 × ₺250.00" in mail.html
    assert "\nTürkiye\n" in mail.text
    assert "Payment method: Credit card\n" in mail.text
    assert ">View your order</a>" in mail.html


def test_minimal_confirmation_leaves_out_what_is_unknown() -> None:
    mail = render("order_confirmation", context=minimal_context())

    assert "Toplam: 1.249,90 ₺" in mail.text
    assert "İndirim" not in mail.text
    assert "KDV" not in mail.text
    assert "Teslimat adresi" not in mail.html
    assert "<img" not in mail.html
    assert 'class="items"' not in mail.html


def test_free_shipping_says_so() -> None:
    context = full_context()
    context["order"]["shipping"] = Decimal("0")

    assert "Kargo: Ücretsiz" in render("order_confirmation", context=context).text
    assert "Shipping: Free" in render("order_confirmation", "en", context=context).text


def test_other_currency_uses_its_symbol() -> None:
    context = full_context()
    context["order"]["currency"] = "EUR"

    assert "Toplam: 1.249,90 €" in render("order_confirmation", context=context).text
    assert "Total: €1,249.90" in render("order_confirmation", "en", context=context).text


def test_shipped_mail_has_a_tracking_button() -> None:
    mail = render("order_shipped")

    assert mail.subject == "Siparişiniz kargoya verildi – #1001"
    assert mail.preheader == "Siparişiniz Yurtiçi Kargo ile yola çıktı. Takip numaranız: YK123456"
    button = re.search(
        r'<td class="button-cell" bgcolor="#c2410c" style="([^"]+)">'
        r'<a class="button" target="_blank" href="https://kargo.example/YK123456" style="([^"]+)">'
        r"Kargonuzu takip edin</a></td>",
        mail.html,
    )
    assert button is not None
    # A table cell painted in the brand colour (Outlook draws a cell's bgcolor, not a
    # link's background), the link's text readable on it: white on the dark orange.
    assert "background-color: #c2410c;" in button.group(1)
    assert "color: #ffffff;" in button.group(2)
    assert "padding: 14px 28px;" in button.group(2)
    assert "Kargo firması: Yurtiçi Kargo" in mail.text
    assert "Tahmini teslim tarihi: 25 Kasım 2026" in mail.text
    assert "Kargonuzu takip edin: https://kargo.example/YK123456" in mail.text
    assert "- Keten Önlük × 1" in mail.text
    english = render("order_shipped", "en")
    assert ">Track your package</a>" in english.html


def test_shipped_mail_without_shipment_has_no_button() -> None:
    mail = render("order_shipped", context=minimal_context())

    assert 'class="button"' not in mail.html
    assert "Takip numarası" not in mail.text
    assert mail.preheader == "Siparişiniz yola çıktı."


def test_delivered_mail_offers_help() -> None:
    mail = render("order_delivered")

    assert mail.subject == "Siparişiniz teslim edildi – #1001"
    assert (
        "bize merhaba@aysenin.example adresinden ya da +90 216 555 01 02 numaralı telefondan "
        "ulaşabilirsiniz." in mail.text
    )
    no_contact = replace(BRAND, contact_email=None, contact_phone=None)
    assert "bu e-postayı yanıtlamanız yeterli" in render("order_delivered", brand=no_contact).text


def test_layout_header_and_footer() -> None:
    mail = render("order_preparing")

    assert '<td class="header" style="background-color: #c2410c;' in mail.html
    assert ">Ayşe'nin Dükkanı</a>" in mail.html  # the store name stands in for a logo
    assert '<a href="mailto:merhaba@aysenin.example"' in mail.html
    assert '<a href="tel:+902165550102"' in mail.html
    assert "Moda Cad. 12, Kadıköy/İstanbul" in mail.html
    assert mail.text.endswith(
        "--\nAyşe'nin Dükkanı\nModa Cad. 12, Kadıköy/İstanbul\n"
        "E-posta: merhaba@aysenin.example · Telefon: +90 216 555 01 02\n"
        "https://aysenin.example\n"
    )

    with_logo = render(
        "order_preparing", brand=replace(BRAND, logo_url="https://cdn.example/logo.png")
    )
    assert '<img src="https://cdn.example/logo.png" alt="Ayşe\'nin Dükkanı"' in with_logo.html


def test_unsubscribe_link_only_for_commercial_mail() -> None:
    informational = render("order_delivered")
    assert "abonelikten" not in informational.html.lower()
    assert "Abonelikten" not in informational.text

    commercial = render("order_delivered", unsubscribe_url="https://ulak.example/u/tok")
    assert re.search(
        r'<a href="https://ulak.example/u/tok" style="[^"]*">abonelikten çıkabilirsiniz</a>',
        commercial.html,
    )
    assert commercial.text.endswith("Abonelikten çıkmak için: https://ulak.example/u/tok\n")


def test_brand_colour_cannot_inject_css() -> None:
    brand = replace(BRAND, brand_color="red; } body { display: none")
    mail = render("order_preparing", brand=brand)

    assert "red;" not in mail.html
    assert '<td class="header" style="background-color: #1f2937;' in mail.html


def test_locale_fallback() -> None:
    assert resolve_locale("tr-TR", "en") == "tr"
    assert resolve_locale("en_GB", "tr") == "en"
    assert resolve_locale("de", "tr") == "tr"
    assert resolve_locale("de", "fr-FR") == "en"
    assert resolve_locale(None, "") == "en"
    assert render("order_preparing", "de-DE").subject == "Siparişiniz hazırlanıyor – #1001"
    english_store = replace(BRAND, locale="en")
    assert render("order_preparing", "fr", brand=english_store).subject == (
        "We're preparing your order #1001"
    )


def test_autoescape_of_customer_data() -> None:
    context = full_context()
    context["customer"]["first_name"] = "<script>alert(1)</script>"
    mail = render("order_confirmation", context=context)

    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    # Plain text is not HTML: the name stays as typed, not as entities.
    assert mail.text.startswith("Merhaba <script>alert(1)</script>,")


def test_plain_text_parts_are_not_escaped() -> None:
    brand = replace(BRAND, store_name="Çay & Kahve")
    mail = render("order_confirmation", brand=brand)

    assert mail.preheader.startswith("Çay & Kahve siparişiniz")
    assert "Çay &amp; Kahve" in mail.html


OVERRIDE = """{% block subject %}Teşekkürler {{ customer.first_name }}!{% endblock %}
{% block body %}<p>Toplam: {{ order.total|money }} · {{ order.items|length }} ürün</p>{% endblock %}
{% block text %}Toplam: {{ order.total|money }}{% endblock %}
"""


def test_override_replaces_the_shipped_template() -> None:
    mail = render("order_confirmation", overrides={"order_confirmation": OVERRIDE})

    assert mail.subject == "Teşekkürler Ayşe!"
    assert mail.preheader == ""
    assert "Toplam: 1.249,90 ₺ · 2 ürün" in mail.html
    assert mail.text.startswith("Toplam: 1.249,90 ₺\n\n--\n")
    assert "Sipariş numarası" not in mail.html


def test_layout_override() -> None:
    layout = "<html><body><h1>{{ store.store_name }}</h1>{{ body }}</body></html>"
    mail = render("order_preparing", overrides={"layout": layout})

    assert mail.html.startswith("<html><head></head><body><h1>Ayşe'nin Dükkanı</h1>")
    assert 'class="footer"' not in mail.html


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "''.__class__",
        "cycler.__init__.__globals__",
        "order.__class__",
    ],
)
def test_sandbox_escape_in_override_is_refused(expression: str) -> None:
    source = OVERRIDE.replace("Teşekkürler", "{{ " + expression + " }}")

    with pytest.raises(TemplateError, match=r"order_confirmation \(tr, store override\)"):
        render("order_confirmation", overrides={"order_confirmation": source})


def test_override_cannot_change_the_context() -> None:
    source = OVERRIDE.replace("Teşekkürler", "{{ order['items'].clear() }}")
    context = full_context()

    with pytest.raises(TemplateError, match="unsafe"):
        render("order_confirmation", context=context, overrides={"order_confirmation": source})
    assert len(context["order"]["items"]) == 2


def test_syntax_error_names_the_line() -> None:
    source = "{% block subject %}Merhaba{% endblock %}\n\n{% block body %}{% if %}{% endblock %}"

    with pytest.raises(TemplateError) as caught:
        render("order_confirmation", overrides={"order_confirmation": source})
    assert caught.value.message.startswith("order_confirmation (tr, store override), line 3: ")
    assert caught.value.details == {
        "template": "order_confirmation (tr, store override)",
        "line": 3,
    }


def test_runtime_error_names_the_line() -> None:
    source = OVERRIDE.replace("{% block text %}", "{% block text %}\n\n{{ 'kupa'|money }}\n")

    with pytest.raises(TemplateError, match=r"store override\), line 5: not a number: 'kupa'"):
        render("order_confirmation", overrides={"order_confirmation": source})


def test_check_template_source() -> None:
    for name in shipped_templates():
        check_template_source(
            (rendering.TEMPLATE_DIR / f"{name}.tr.html").read_text(encoding="utf-8"), name=name
        )
    check_template_source("<html>{{ body }}</html>", name="layout")

    with pytest.raises(TemplateError, match=r"^order_shipped, line 2: "):
        check_template_source("{% block subject %}x{% endblock %}\n{{ x | }}", name="order_shipped")
    with pytest.raises(TemplateError, match="unknown_filter"):
        check_template_source("{{ x|unknown_filter }}", name="order_shipped")
    with pytest.raises(TemplateError, match="missing block"):
        check_template_source("{% block subject %}x{% endblock %}", name="order_shipped")


def test_a_template_imports_ulaks_shared_blocks_and_nothing_else() -> None:
    own = (
        '{% from "_blocks.html" import product_rows %}{% block subject %}x{% endblock %}'
        "{% block body %}{{ product_rows(recommendations) }}{% endblock %}"
        "{% block text %}x{% endblock %}"
    )
    mail = render(
        "order_confirmation", context=full_context(), overrides={"order_confirmation": own}
    )
    assert 'href="https://aysenin.example/pecete"' in mail.html
    assert "Keten Peçete</a>" in mail.html
    for reach in ("layout.html", "order_confirmation.tr.html", "../../../etc/passwd", "_nope.html"):
        source = own.replace("_blocks.html", reach)
        with pytest.raises(TemplateError, match=re.escape(reach)):
            render("order_confirmation", overrides={"order_confirmation": source})


def test_unknown_template() -> None:
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        render("nope")
    with pytest.raises(TemplateError, match="unknown template"):
        render("../../etc/passwd")


def test_compiled_templates_are_reused() -> None:
    render("order_shipped")
    misses = rendering._compile.cache_info().misses

    render("order_shipped", context=minimal_context())
    render("order_shipped", "tr-TR")

    assert rendering._compile.cache_info().misses == misses


SPINS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
# Loops over a value of its own run no other code: each step of every loop is checked.
SPINS_OVER_TEXT = (
    '{% set s = "x" * 999999 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}'
)
CPU_BOUND = (SPINS, SPINS_OVER_TEXT)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ 'a' * 10**9 }}", "builds a value over 1,000,000 long"),
        ("{{ [0] * 10**8 }}", "builds a value over 1,000,000 long"),
        ("{{ 7 ** 10000000 }}", "raises to a power over 1,000"),
        ("{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}", "renders more than 1,000,000"),
        (SPINS, "took more than 0.3 s of CPU"),
        (SPINS_OVER_TEXT, "took more than 0.3 s of CPU"),
        ("{{ ((9 ** 1000) ** 1000) ** 8 }}", "raises to a power of over 100,000 bits"),
        ("{{ '%099999999d' % 1 }}", "formats a value wider than 1,000,000"),
        ("{{ '%099999999d'|format(1) }}", "formats a value wider than 1,000,000"),
        ("{{ 'x'.ljust(10**10) }}", "asks for a size over 1,000,000"),
        ("{{ 'x'|center(10**10) }}", "asks for a size over 1,000,000"),
        ("{{ ('x' * 999999)|replace('x', 'y' * 999999) }}", "replaces into a value over"),
        ("{{ ('x' * 999999).replace('x', 'y' * 999999) }}", "replaces into a value over"),
    ],
)
def test_a_store_template_over_a_limit_fails_alone(
    body: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CPU cases get a short bound to be quick; every other case gets a long one, so that
    # on a loaded machine its own bound (not the CPU's) is the one it meets.
    monkeypatch.setattr(rendering, "RENDER_CPU_SECONDS", 0.3 if body in CPU_BOUND else 60.0)
    monkeypatch.setattr(rendering, "_over_limit", {})
    layout = "<html><body><h1>{{ store.store_name }}</h1>{{ body }}</body></html>"
    source = OVERRIDE.replace("<p>Toplam", body + "<p>Toplam")
    overrides = {"order_confirmation": source, "layout": layout}
    with pytest.raises(TemplateError, match=re.escape(reason)) as first:
        render("order_confirmation", overrides=overrides)
    assert first.value.message.startswith("order_confirmation (tr, store override)")
    # A template that used up its CPU fails at once afterwards; the other bounds are
    # quick to reach again (and may hold for one large order only).
    with pytest.raises(TemplateError) as again:
        render("order_confirmation", overrides=overrides)
    once_more = " (not rendered again)" if body in CPU_BOUND else ""
    assert again.value.message == f"{first.value.message}{once_more}"
    # Everyone else's mail renders as before, in the same process, with the same layout.
    assert render("order_confirmation").subject == "Siparişiniz alındı – #1001"
    assert render("order_shipped", overrides={"layout": layout}).html.startswith(
        "<html><head></head><body><h1>Ayşe'nin Dükkanı</h1>"
    )
    assert render("order_confirmation", overrides={"order_confirmation": OVERRIDE}).subject == (
        "Teşekkürler Ayşe!"
    )


def test_a_template_reads_the_costly_values_only_when_it_names_them() -> None:
    assert {"recommendations", "tips"} & template_variables("order_confirmation", "tr", {}) == set()
    assert {"coupon", "recommendations"} <= template_variables("thank_you_offer", "en", {})
    assert "tips" in template_variables("thank_you_tips", "tr", {})
    # The store's own version is the one read.
    own = {"order_confirmation": "{% block subject %}{{ recommendations|length }}{% endblock %}"}
    assert template_variables("order_confirmation", "tr", own) == {"recommendations"}
    assert template_variables("no_such_template", "tr", {}) == frozenset()


@pytest.mark.parametrize("locale", ["tr", "en"])
def test_the_thank_you_offer_lists_its_recommendations(locale: str) -> None:
    mail = render("thank_you_offer", locale)
    assert "- Keten Peçete: 180,00 ₺ (https://aysenin.example/pecete)" in mail.text
    assert 'src="https://cdn.aysenin.example/pecete.jpg"' in mail.html


def test_the_replenishment_reminder_shows_each_item_and_the_reorder_link() -> None:
    event = SAMPLE_EVENTS["replenishment"]
    mail = render("replenishment", context=full_context() | {"event": event})
    assert mail.subject == "Aldığınız ürünler bitmek üzere mi?"
    assert "- Seramik Kupa × 2: 250,00 ₺\n" in mail.text
    # No price in the catalogue: none shown.
    assert "- Filtre Kahve × 1\n" in mail.text
    link = "https://aysenin.example/sepet/v-1:2,v-2:1"
    assert f"Tek tıkla yeniden sipariş verin: {link}\n" in mail.text
    assert f'href="{link}"' in mail.html
    assert 'src="https://cdn.aysenin.example/kupa.jpg"' in mail.html
    # With the link, the products' own pages are only behind their names.
    assert "https://aysenin.example/kupa" not in mail.text
    assert 'href="https://aysenin.example/kupa"' in mail.html
    english = render("replenishment", "en", context=full_context() | {"event": event})
    assert english.subject == "Running low on what you bought?"
    assert f"Reorder in one click: {link}\n" in english.text


def test_without_a_reorder_link_the_reminder_links_each_products_page() -> None:
    data = {**SAMPLE_EVENTS["replenishment"]["data"]}
    del data["reorder_url"]
    event = {"type": "replenishment.due", "data": data}
    mail = render("replenishment", context=full_context() | {"event": event})
    assert "- Seramik Kupa × 2: 250,00 ₺\n  https://aysenin.example/kupa\n" in mail.text
    assert "sepet" not in mail.text
    assert "sepet" not in mail.html


def test_win_back_tells_a_sign_up_who_never_bought_from_a_customer_who_lapsed() -> None:
    never = {"type": "customer.lapsed", "data": {"never_bought": True, "orders": 0, "days": 14}}
    lapsed = {"type": "customer.lapsed", "data": {"never_bought": False, "orders": 2}}
    first = render("win_back", context=full_context() | {"event": never})
    back = render("win_back", context=full_context() | {"event": lapsed})
    assert first.subject == "İlk siparişiniz sizi bekliyor, Ayşe"
    assert back.subject == "Sizi özledik, Ayşe"
    assert "Henüz bir sipariş vermediniz" in first.text
    assert "Bir süredir sizden haber alamadık" in back.text
    english = render("win_back", "en", context=full_context() | {"event": never})
    assert english.subject == "Your first order is waiting, Ayşe"
    # With products picked for them (bought with theirs, else the store's best sellers).
    picked = {"event": lapsed, "recommendations": sample_context("win_back")["recommendations"]}
    for mail, heading in (
        (render("win_back", context=full_context() | picked), "Size önerdiklerimiz:"),
        (render("win_back", "en", context=full_context() | picked), "Picked for you:"),
    ):
        assert f"{heading}\n- Keten Peçete: 180,00 ₺ (https://aysenin.example/pecete)\n" in (
            mail.text
        )
        assert 'src="https://cdn.aysenin.example/pecete.jpg"' in mail.html
    none = render("win_back", context=full_context() | {"event": lapsed, "recommendations": []})
    assert "Size önerdiklerimiz" not in none.text  # none to show: no heading


def test_a_store_templates_bare_button_link_still_shows_as_a_button() -> None:
    # Written before the table-cell button: a link with the class alone.
    source = """{% block subject %}Kargoda{% endblock %}
{% block body %}<p><a class="button" href="https://aysenin.example/takip">Takip</a></p>
{% endblock %}
{% block text %}Kargoda{% endblock %}"""
    mail = render("order_shipped", overrides={"order_shipped": source})

    button = re.search(
        r'<a class="button" href="https://aysenin.example/takip" style="([^"]+)">', mail.html
    )
    assert button is not None
    assert "background-color: #c2410c;" in button.group(1)
    assert "color: #ffffff;" in button.group(1)

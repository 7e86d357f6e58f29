"""Shopify's webhook payloads (Admin REST resources, API versions 2024-01 to 2025-10), as
far as ulak reads them. Every model ignores the fields it does not name: Shopify adds
fields in each version, and a new one must not refuse a webhook.

A field Shopify really leaves out or null (a POS order's customer, a custom line item's
product, a checkout's email) is optional here and handled by the mapping; a field of the
wrong type (money as a JSON number, an id as an object) is refused with its path, since
Shopify's own payloads never carry one (see `shopify.py` for why that answer is a 422)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


def _decimal_string(value: Any) -> Any:
    # Shopify writes every amount as a decimal string ("249.95"); a JSON number is not
    # its format, and a float would lose cents.
    if not isinstance(value, str):
        raise ValueError('Shopify sends money as a decimal string like "249.95"')
    try:
        Decimal(value)
    except InvalidOperation as error:
        raise ValueError(f"not a decimal amount: {value[:40]!r}") from error
    return value


MoneyText = Annotated[Decimal, BeforeValidator(_decimal_string)]
# Shopify's ids are 64-bit integers in JSON.
ShopifyId = Annotated[int, Field(ge=1, lt=2**63)]


class Resource(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Amount(Resource):
    amount: MoneyText
    currency_code: str | None = None


class MoneySet(Resource):
    shop_money: Amount
    presentment_money: Amount | None = None


class MarketingConsent(Resource):
    """`email_marketing_consent` / `sms_marketing_consent` of a customer."""

    # subscribed, not_subscribed, unsubscribed, pending, redacted, invalid
    state: str | None = None
    # single_opt_in, confirmed_opt_in, unknown
    opt_in_level: str | None = None
    consent_updated_at: AwareDatetime | None = None
    consent_collected_from: str | None = None


class Customer(Resource):
    id: ShopifyId | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    email_marketing_consent: MarketingConsent | None = None
    sms_marketing_consent: MarketingConsent | None = None
    # Before 2022-04: one flag for email marketing.
    accepts_marketing: bool | None = None
    accepts_marketing_updated_at: AwareDatetime | None = None


class LineItem(Resource):
    product_id: ShopifyId | None = None
    variant_id: ShopifyId | None = None
    sku: str | None = None
    title: str | None = None
    name: str | None = None
    variant_title: str | None = None
    quantity: int = 1
    price: MoneyText
    price_set: MoneySet | None = None


class Fulfillment(Resource):
    id: ShopifyId
    order_id: ShopifyId | None = None
    # pending, open, success, cancelled, error, failure
    status: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    email: str | None = None
    tracking_company: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipment_status: str | None = None
    line_items: list[LineItem] = Field(default_factory=list)


class Transaction(Resource):
    # sale, capture, authorization, void, refund
    kind: str | None = None
    # pending, failure, success, error
    status: str | None = None
    amount: MoneyText | None = None
    currency: str | None = None


class Refund(Resource):
    id: ShopifyId
    order_id: ShopifyId | None = None
    created_at: AwareDatetime | None = None
    processed_at: AwareDatetime | None = None
    note: str | None = None
    transactions: list[Transaction] = Field(default_factory=list)


class DiscountCode(Resource):
    code: str


class ShippingLine(Resource):
    price: MoneyText | None = None
    price_set: MoneySet | None = None


class Order(Resource):
    id: ShopifyId
    name: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    processed_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    cancel_reason: str | None = None
    financial_status: str | None = None
    currency: str | None = None
    presentment_currency: str | None = None
    # subtotal_price is after discounts; ulak's subtotal is before them (the confirmation
    # prints Subtotal, -Discount, Shipping, Total): total_line_items_price is that one.
    total_line_items_price: MoneyText | None = None
    total_line_items_price_set: MoneySet | None = None
    total_discounts: MoneyText | None = None
    total_discounts_set: MoneySet | None = None
    total_tax: MoneyText | None = None
    total_tax_set: MoneySet | None = None
    total_price: MoneyText
    total_price_set: MoneySet | None = None
    total_shipping_price_set: MoneySet | None = None
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    discount_codes: list[DiscountCode] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)
    customer: Customer | None = None
    customer_locale: str | None = None
    shipping_address: dict[str, Any] | None = None
    order_status_url: str | None = None
    source_name: str | None = None
    payment_gateway_names: list[str] = Field(default_factory=list)
    checkout_token: str | None = None
    fulfillments: list[Fulfillment] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)


class Checkout(Resource):
    token: str = Field(min_length=1, max_length=150)
    email: str | None = None
    phone: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    currency: str | None = None
    presentment_currency: str | None = None
    total_price: MoneyText | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    abandoned_checkout_url: str | None = None
    customer: Customer | None = None
    customer_locale: str | None = None


class Variant(Resource):
    id: ShopifyId
    title: str | None = None
    sku: str | None = None
    price: MoneyText | None = None
    inventory_quantity: int | None = None
    image_id: ShopifyId | None = None


class Image(Resource):
    id: ShopifyId | None = None
    src: str
    variant_ids: list[int] = Field(default_factory=list)


class Product(Resource):
    id: ShopifyId
    title: str | None = None
    handle: str | None = None
    # Comma-separated, as Shopify writes them.
    tags: str | None = None
    updated_at: AwareDatetime | None = None
    variants: list[Variant] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    image: Image | None = None

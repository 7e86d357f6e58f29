"""Which column of a CSV export holds which of ulak's fields: the presets for Shopify's and
WooCommerce's exports, recognised by their headers, and a store's own map (`--columns`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ulak.errors import Invalid

# ulak's own field names per kind: a CSV with these headers needs no map.
FIELDS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id", "email", "phone", "first_name", "last_name", "locale", "timezone", "birthday",
    ),
    "products": (
        "product_id", "variant_id", "sku", "title", "url", "image_url", "price", "currency",
        "inventory", "tags", "replenish_days",
    ),
    "orders": (
        "order_id", "number", "customer_id", "email", "phone", "first_name", "last_name",
        "placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "refunded_at",
        "status", "subtotal", "discount", "shipping", "tax", "total", "currency",
        "discount_codes", "channel", "payment_method",
        "item_product_id", "item_variant_id", "item_sku", "item_title", "item_quantity",
        "item_price",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A platform's export: its name, the headers that identify it, ulak's field → its
    column."""

    name: str
    kind: str
    marks: tuple[str, ...]
    columns: Mapping[str, str]


PRESETS: tuple[Preset, ...] = (
    Preset(
        "shopify",
        "orders",
        ("Name", "Lineitem name", "Created at"),
        {
            "order_id": "Id",
            "number": "Name",
            "email": "Email",
            "phone": "Billing Phone",
            "placed_at": "Created at",
            "paid_at": "Paid at",
            "shipped_at": "Fulfilled at",
            "cancelled_at": "Cancelled at",
            "status": "Financial Status",
            "subtotal": "Subtotal",
            "discount": "Discount Amount",
            "shipping": "Shipping",
            "tax": "Taxes",
            "total": "Total",
            "currency": "Currency",
            "discount_codes": "Discount Code",
            "payment_method": "Payment Method",
            # Shopify's order export names no product id: the SKU stands for it.
            "item_product_id": "Lineitem sku",
            "item_sku": "Lineitem sku",
            "item_title": "Lineitem name",
            "item_quantity": "Lineitem quantity",
            "item_price": "Lineitem price",
        },
    ),
    Preset(
        "shopify",
        "customers",
        ("First Name", "Last Name", "Email", "Total Orders"),
        {
            "id": "Customer ID",
            "email": "Email",
            "phone": "Phone",
            "first_name": "First Name",
            "last_name": "Last Name",
        },
    ),
    Preset(
        "shopify",
        "products",
        ("Handle", "Title", "Variant Price"),
        {
            "product_id": "Handle",
            "variant_id": "Variant SKU",
            "sku": "Variant SKU",
            "title": "Title",
            "price": "Variant Price",
            "inventory": "Variant Inventory Qty",
            "image_url": "Image Src",
            "tags": "Tags",
        },
    ),
    Preset(
        "woocommerce",
        "products",
        ("ID", "Type", "SKU", "Name", "Regular price"),
        {
            "product_id": "ID",
            "sku": "SKU",
            "title": "Name",
            "price": "Regular price",
            "inventory": "Stock",
            "image_url": "Images",
            "tags": "Tags",
        },
    ),
    Preset(
        "woocommerce",
        "orders",
        ("order_id", "order_date", "order_total", "line_item_1"),
        {
            "order_id": "order_id",
            "number": "order_number",
            "customer_id": "customer_id",
            "email": "customer_email",
            "phone": "billing_phone",
            "first_name": "billing_first_name",
            "last_name": "billing_last_name",
            "placed_at": "order_date",
            "paid_at": "paid_date",
            "status": "status",
            "subtotal": "order_subtotal",
            "discount": "discount_total",
            "shipping": "shipping_total",
            "tax": "tax_total",
            "total": "order_total",
            "currency": "order_currency",
            "payment_method": "payment_method",
        },
    ),
    Preset(
        "woocommerce",
        "customers",
        ("customer_id", "user_email"),
        {
            "id": "customer_id",
            "email": "user_email",
            "phone": "billing_phone",
            "first_name": "first_name",
            "last_name": "last_name",
        },
    ),
)


def columns_for(kind: str, header: Sequence[str], given: Mapping[str, str] | None) -> Preset:
    """The map for a file's header: the one given (`--columns`), else the platform preset its
    header matches, else ulak's own field names."""
    present = set(header)
    if given is not None:
        unknown = sorted(set(given) - set(FIELDS[kind]))
        if unknown:
            raise Invalid(
                f"the column map names fields {kind} do not have: {', '.join(unknown)} "
                f"(known: {', '.join(FIELDS[kind])})"
            )
        missing = sorted(column for column in given.values() if column not in present)
        if missing:
            raise Invalid(f"the file has no column {', '.join(repr(c) for c in missing)}")
        return Preset("columns", kind, (), dict(given))
    for preset in PRESETS:
        if preset.kind == kind and present.issuperset(preset.marks):
            return preset
    own = {field: field for field in FIELDS[kind] if field in present}
    if not own:
        raise Invalid(
            f"the header names none of ulak's {kind} fields and matches no known export "
            f"(Shopify, WooCommerce); give a column map with --columns"
        )
    return Preset("ulak", kind, (), own)


def load_columns(path: Path) -> dict[str, str]:
    """A column map file: JSON `{"field": "Column"}`, or lines `field = Column`."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise Invalid(f"{path}: not JSON ({error.msg}, line {error.lineno})") from error
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise Invalid(f'{path}: a column map is {{"field": "Column", ...}}')
        return loaded
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        field, equals, column = line.partition("=")
        if not equals or not field.strip() or not column.strip():
            raise Invalid(f"{path}, line {number}: expected `field = Column`")
        found[field.strip()] = column.strip()
    return found

"""Reading an export, streaming: CSV (through a column map) or JSON lines in ulak's own
event-data shape, each record checked by the events' own schemas and turned into what the
owning features import. A bad record is reported with the line it starts on and skipped."""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any, get_args
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ulak.catalog.bulk import ImportedProduct
from ulak.customers.bulk import Profile
from ulak.events.schemas import Channel, OrderPlacedData, ProductData
from ulak.imports.checks import (
    BadRecord,
    amount,
    checked_text,
    identifier,
    integer,
    known_zone,
    moment,
    money,
    normalized_email,
    normalized_phone,
)
from ulak.imports.columns import Preset, columns_for
from ulak.orders.bulk import ImportedOrder

Record = Profile | ImportedProduct | ImportedOrder

# Order statuses ulak keeps, and the later ones a history may name.
STATUSES = ("placed", "paid", "preparing", "shipped", "delivered", "cancelled", "refunded")
# Platforms' own words for an order's state (Shopify's financial status, WooCommerce's
# status) and the status of ulak's that each means.
PLATFORM_STATUS = {
    "paid": "paid",
    "partially_paid": "paid",
    "partially_refunded": "paid",
    "refunded": "refunded",
    "voided": "cancelled",
    "processing": "paid",
    "completed": "delivered",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "shipped": "shipped",
    "delivered": "delivered",
    "preparing": "preparing",
}


@dataclass(frozen=True)
class Read:
    """One record of the file: `end` records have been read once it is (the run's cursor
    after it is written), `line` is where it starts; a record or why it was skipped."""

    end: int
    line: int
    record: Record | None
    error: str | None = None


@dataclass(frozen=True)
class Place:
    """What the reader needs of the store."""

    zone: ZoneInfo
    phone_region: str
    currency: str


class Counted:
    """A binary file read as text lines, counting the bytes consumed (for the progress
    bar's ETA: a text file cannot tell its position while iterated)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0
        self._decode = codecs.getincrementaldecoder("utf-8-sig")()

    def __iter__(self) -> Iterator[str]:
        for chunk in self.raw:
            self.consumed += len(chunk)
            yield self._decode.decode(chunk)


def read(
    raw: IO[bytes],
    kind: str,
    *,
    place: Place,
    columns: Mapping[str, str] | None,
    start: int = 0,
) -> tuple[Counted, Iterator[Read]]:
    """The records of a file from record number `start` on (the ones before were read by an
    earlier run), and the counter of bytes read."""
    counted = Counted(raw)
    first = raw.peek(64)[:64] if hasattr(raw, "peek") else b""
    if first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return counted, _json_lines(counted, kind, place, start)
    return counted, _csv(counted, kind, place, columns, start)


def _json_lines(counted: Counted, kind: str, place: Place, start: int) -> Iterator[Read]:
    for number, line in enumerate(counted, start=1):
        if number <= start:
            continue
        if not line.strip():
            yield Read(number, number, None, None)
            continue
        try:
            loaded = json.loads(line)
            if not isinstance(loaded, dict):
                raise BadRecord("a line is one JSON object")
            record = _from_json(kind, loaded, place)
        except (json.JSONDecodeError, BadRecord, ValidationError) as error:
            yield Read(number, number, None, _reason(error))
        else:
            yield Read(number, number, record)


def _from_json(kind: str, data: dict[str, Any], place: Place) -> Record:
    if kind == "customers":
        return _profile(data, place)
    if kind == "products":
        return _product(ProductData.model_validate(data))
    customer = data.pop("customer", None)
    placed_at = moment(data.pop("occurred_at", None), place.zone, "occurred_at")
    if placed_at is None:
        raise BadRecord("occurred_at: an order needs the moment it was placed")
    history = data.pop("statuses", None) or []
    order = OrderPlacedData.model_validate(data)
    statuses: list[tuple[str, datetime]] = []
    if not isinstance(history, list):
        raise BadRecord("statuses: a list of {status, occurred_at}")
    for change in history:
        if not isinstance(change, dict) or change.get("status") not in STATUSES[1:]:
            raise BadRecord(f"statuses: each is {{status, occurred_at}}, status one of "
                            f"{', '.join(STATUSES[1:])}")  # fmt: skip
        at = moment(change.get("occurred_at"), place.zone, "statuses.occurred_at")
        statuses.append((str(change["status"]), at or placed_at))
    if customer is not None and not isinstance(customer, dict):
        raise BadRecord("customer: an object")
    profile = _profile(customer, place) if customer is not None else None
    return _order(order, profile, placed_at, statuses, place)


def _csv(
    counted: Counted,
    kind: str,
    place: Place,
    given: Mapping[str, str] | None,
    start: int,
) -> Iterator[Read]:
    rows = csv.reader(counted)
    header = next(rows, None)
    if header is None:
        return
    preset = columns_for(kind, [h.strip() for h in header], given)
    where = {
        field: index
        for index, name in enumerate(h.strip() for h in header)
        for field, column in preset.columns.items()
        if column == name
    }
    items = [i for i, name in enumerate(header) if re.fullmatch(r"line_item_\d+", name.strip())]
    # WooCommerce: a variation names its product as `id:123` in Parent.
    parent = (
        header.index("Parent")
        if preset.name == "woocommerce" and kind == "products" and "Parent" in header
        else None
    )
    # Shopify: a product's title is on its first row only.
    title = ("", "")
    count = 0
    group: list[tuple[int, dict[str, str]]] = []
    group_key = ""
    for row in rows:
        line = rows.line_num
        count += 1
        if count <= start and kind != "products":
            continue
        values = {field: row[index].strip() for field, index in where.items() if index < len(row)}
        if kind == "products":
            if parent is not None and parent < len(row) and row[parent].strip():
                values["variant_id"] = values.get("product_id", "")
                values["product_id"] = row[parent].strip().removeprefix("id:")
            if values.get("title"):
                title = (values.get("product_id", ""), values["title"])
            elif title[0] == values.get("product_id"):
                values["title"] = title[1]
            if count <= start:
                # Read, not imported: a resume starting inside a product's rows still
                # needs the title its first row gave.
                continue
        if kind != "orders":
            yield _one(count, line, kind, values, preset, place)
            continue
        if items:
            values["line_items"] = "\n".join(row[i] for i in items if i < len(row) and row[i])
        key = values.get("number") or values.get("order_id") or ""
        if group and key == group_key and key:
            group.append((line, values))
            continue
        if group:
            # This row starts the next order: the one gathered ends with the row before.
            yield _order_of(count - 1, group, preset, place)
        group, group_key = [(line, values)], key
    if group:
        yield _order_of(count, group, preset, place)


def _one(
    count: int, line: int, kind: str, values: dict[str, str], preset: Preset, place: Place
) -> Read:
    try:
        if kind == "customers":
            record: Record = _profile(values, place)
        else:
            product = _product_values(values, preset)
            if product is None:  # a Shopify image row: no variant of its own
                return Read(count, line, None, None)
            record = _product(ProductData.model_validate(product))
    except (BadRecord, ValidationError) as error:
        return Read(count, line, None, _reason(error))
    return Read(count, line, record)


def _product_values(values: dict[str, str], preset: Preset) -> dict[str, Any] | None:
    data: dict[str, Any] = {k: v for k, v in values.items() if v}
    if preset.name == "shopify" and not data.get("price"):
        return None
    if "tags" in data:
        data["tags"] = [t.strip() for t in data["tags"].split(",") if t.strip()]
    if "image_url" in data:  # WooCommerce lists every image: the first is the main one
        data["image_url"] = data["image_url"].split(",")[0].strip()
    if "inventory" in data:
        data["inventory"] = integer(data["inventory"], "inventory")
    data.pop("sku", None)
    return data


def _order_of(
    end: int, group: list[tuple[int, dict[str, str]]], preset: Preset, place: Place
) -> Read:
    line = group[0][0]
    try:
        return Read(end, line, _csv_order(group, preset, place))
    except (BadRecord, ValidationError) as error:
        return Read(end, line, None, _reason(error))


def _csv_order(group: list[tuple[int, dict[str, str]]], preset: Preset, place: Place) -> Record:
    first = group[0][1]
    items: list[dict[str, Any]] = []
    for _, values in group:
        if values.get("item_title"):
            item: dict[str, Any] = {
                "title": values["item_title"],
                "quantity": integer(values.get("item_quantity") or "1", "item_quantity"),
                "price": values.get("item_price") or "0",
            }
            for field in ("product_id", "variant_id", "sku"):
                if values.get(f"item_{field}"):
                    item[field] = values[f"item_{field}"]
            items.append(item)
        if values.get("line_items"):
            items.extend(_woocommerce_items(values["line_items"]))
    order_id = first.get("order_id") or first.get("number")
    if not order_id:
        raise BadRecord("an order needs its id or number")
    data: dict[str, Any] = {"order_id": order_id, "items": items}
    for field in ("number", "subtotal", "discount", "shipping", "tax", "total", "currency",
                  "channel", "payment_method"):  # fmt: skip
        if first.get(field):
            data[field] = first[field]
    if first.get("currency"):
        data["currency"] = first["currency"].upper()
    if first.get("discount_codes"):
        data["discount_codes"] = [c.strip() for c in first["discount_codes"].split(",") if c]
    order = _checked_order(data)
    placed_at = moment(first.get("placed_at"), place.zone, "placed_at")
    if placed_at is None:
        raise BadRecord("placed_at: an order needs the moment it was placed")
    statuses: list[tuple[str, datetime]] = []
    for status in STATUSES[1:]:
        at = moment(first.get(f"{status}_at"), place.zone, f"{status}_at")
        if at is not None:
            statuses.append((status, at))
    said = PLATFORM_STATUS.get((first.get("status") or "").strip().lower())
    if said is not None and all(status != said for status, _ in statuses):
        # A state the export names without its moment: as late as anything known.
        statuses.append((said, max([placed_at, *(at for _, at in statuses)])))
    customer: dict[str, str] = {
        k: first[k] for k in ("email", "phone", "first_name", "last_name") if first.get(k)
    }
    if first.get("customer_id") and first["customer_id"] != "0":  # WooCommerce's guest
        customer["id"] = first["customer_id"]
    profile = None
    if customer.get("id") or customer.get("email") or customer.get("phone"):
        profile = _profile(customer, place)
    return _order(order, profile, placed_at, statuses, place)


_CHANNELS = frozenset(get_args(Channel))
_CURRENCY = re.compile(r"[A-Z]{3}")


def _checked_order(data: dict[str, Any]) -> dict[str, Any]:
    """A CSV order checked as `OrderPlacedData` checks one (the same limits and messages
    where they matter), field by field: pydantic's Decimal checks (digits and places of
    each amount) were a third of reading an order."""
    identifier(data["order_id"], "order_id")
    checked_text(data.get("number"), "number", 100)
    checked_text(data.get("payment_method"), "payment_method", 100)
    amounts = {
        field: amount(data[field], field)
        for field in ("subtotal", "discount", "shipping", "tax", "total")
        if data.get(field) is not None
    }
    if "total" not in amounts:
        raise BadRecord("total: an order needs its total")
    currency = data.get("currency")
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise BadRecord(f"currency: {currency!r} is no currency code (TRY, EUR ...)")
    channel = data.get("channel", "web")
    if channel not in _CHANNELS:
        raise BadRecord(f"channel: one of {', '.join(sorted(_CHANNELS))}")
    items = []
    for n, item in enumerate(data["items"]):
        title = checked_text(item.get("title"), f"items.{n}.title", 500)
        if title is None:
            raise BadRecord(f"items.{n}.title: a line needs its title")
        quantity = item.get("quantity", 1)
        if not 1 <= quantity <= 1_000_000:
            raise BadRecord(f"items.{n}.quantity: from 1 to 1000000")
        for field in ("product_id", "variant_id"):
            if item.get(field) is not None:
                identifier(item[field], f"items.{n}.{field}")
        checked_text(item.get("sku"), f"items.{n}.sku", 200)
        price = amount(item.get("price", ""), f"items.{n}.price")
        items.append({**item, "price": price, "quantity": quantity})
    return {**data, **amounts, "items": items, "channel": channel}


def _woocommerce_items(cells: str) -> list[dict[str, Any]]:
    """WooCommerce (Import Export Suite) line items: one column each, as
    `name:Kupa|product_id:33|variation_id:0|sku:K-1|quantity:2|total:18.00|sub_total:20.00`."""
    items = []
    for cell in cells.split("\n"):
        fields = dict(part.split(":", 1) for part in cell.split("|") if ":" in part)
        quantity = integer(fields.get("quantity") or "1", "line item quantity")
        amount = money(fields.get("sub_total") or fields.get("total") or "0", "line item total")
        item: dict[str, Any] = {
            "title": fields.get("name", ""),
            "quantity": quantity,
            "price": str((amount / max(quantity, 1)).quantize(Decimal("0.01"))),
        }
        if fields.get("product_id"):
            item["product_id"] = fields["product_id"]
        if fields.get("variation_id") not in (None, "", "0"):
            item["variant_id"] = fields["variation_id"]
        if fields.get("sku"):
            item["sku"] = fields["sku"]
        items.append(item)
    return items


def _profile(data: Mapping[str, Any], place: Place) -> Profile:
    """A customer as `CustomerIn` reads one (the same limits), checked field by field:
    the pydantic model checked each email twice (its own `EmailStr`, then the normalising),
    a third of an order's reading."""
    external_id = checked_text(data.get("id"), "id", 200, minimum=1)
    if external_id is not None and "\x00" in external_id:
        raise BadRecord("id: must not contain a NUL character")
    email = phone = None
    if (given := checked_text(data.get("email"), "email", 320)) is not None:
        email = normalized_email(given)
        if email is None:
            raise BadRecord(f"email: {given!r} is no email address")
    if (given := checked_text(data.get("phone"), "phone", 40)) is not None:
        phone = normalized_phone(given, place.phone_region)
        if phone is None:
            raise BadRecord(f"phone: {given!r} is no phone number")
    if not (external_id or email or phone):
        raise BadRecord("a customer needs at least one of id, email or phone")
    zone = checked_text(data.get("timezone"), "timezone", 64)
    if zone is not None and not known_zone(zone):
        raise BadRecord(f"timezone: unknown time zone {zone!r}")
    birthday = None
    if (text := checked_text(data.get("birthday"), "birthday", 10)) is not None:
        try:
            birthday = date.fromisoformat(text)
        except ValueError:
            raise BadRecord(f"birthday: {text!r} is no date (YYYY-MM-DD)") from None
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise BadRecord("attributes: an object")
    return Profile(
        external_id=external_id,
        email=email,
        phone=phone,
        first_name=checked_text(data.get("first_name"), "first_name", 200),
        last_name=checked_text(data.get("last_name"), "last_name", 200),
        locale=checked_text(data.get("locale"), "locale", 16),
        timezone=zone,
        birthday=birthday,
        attributes=attributes,
    )


def _product(data: ProductData) -> ImportedProduct:
    known = {"product_id", "variant_id", "title", "url", "image_url", "price", "currency",
             "inventory", "tags", "tips", "replenish_days"}  # fmt: skip
    return ImportedProduct(
        product_id=data.product_id,
        variant_id=data.variant_id or "",
        title=data.title,
        url=data.url,
        image_url=data.image_url,
        price=data.price,
        currency=data.currency,
        inventory=data.inventory,
        tags=list(data.tags),
        tips=list(data.tips),
        replenish_days=data.replenish_days,
        data={k: v for k, v in data.model_dump(mode="json").items() if k not in known},
    )


def _order(
    data: OrderPlacedData | dict[str, Any],
    customer: Profile | None,
    placed_at: datetime,
    statuses: list[tuple[str, datetime]],
    place: Place,
) -> ImportedOrder:
    """The order to import, from JSON lines' validated `OrderPlacedData` or a CSV order's
    checked values (`_checked_order`)."""
    if isinstance(data, OrderPlacedData):
        values = {**data.model_dump(exclude={"items"}), "data": data.model_extra or {}}
        values["items"] = [item.model_dump() for item in data.items]
    else:
        values = data
    history = sorted([("placed", placed_at), *statuses], key=lambda change: change[1])
    return ImportedOrder(
        order_id=values["order_id"],
        number=values.get("number") or values["order_id"],
        customer=customer,
        status=history[-1][0],
        channel=values.get("channel") or "web",
        subtotal=values.get("subtotal"),
        discount=values.get("discount"),
        shipping=values.get("shipping"),
        tax=values.get("tax"),
        total=values["total"],
        currency=values.get("currency") or place.currency,
        discount_codes=list(values.get("discount_codes") or []),
        cart_id=values.get("cart_id"),
        shipping_address=values.get("shipping_address"),
        payment_method=values.get("payment_method"),
        order_url=values.get("order_url"),
        data=values.get("data") or {},
        placed_at=placed_at,
        items=values["items"],
        history=history,
    )


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON ({error.msg})"
    return str(error)

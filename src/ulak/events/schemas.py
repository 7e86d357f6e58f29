"""The event contract (see shared/events.md): the envelope and the data of each known type."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ulak.catalog.schemas import BackInStockConfirmData
from ulak.fields import Email, WebUrl, ZoneName
from ulak.preferences.schemas import PreferencesData, PrivacyRequestData
from ulak.returns.schemas import ReturnRequestedData, ReturnUpdatedData
from ulak.reviews.schemas import ReviewDueData, ReviewModeratedData, ReviewSubmittedData
from ulak.surveys.schemas import SurveyAnsweredData


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('money must be a decimal string like "1249.90", not a JSON number')
    return value


# Amounts are never negative (a discount or a refund is an amount taken off), and fit the
# money column (NUMERIC(18, 4) on PostgreSQL).
Money = Annotated[Decimal, BeforeValidator(_no_float), Field(max_digits=18, decimal_places=4, ge=0)]


def _plausible_moment(value: datetime) -> datetime:
    # Every later date computed from it (a wait of days, a send time in the store's zone)
    # must stay within what a datetime holds: 9999-12-31 failed at send time, six times.
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year - 1}")
    return value


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Moment = Annotated[AwareDatetime, AfterValidator(_plausible_moment)]
# Quantities of one line: far beyond any real order, well within 64 bits.
Quantity = Annotated[int, Field(ge=1, le=1_000_000)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold one, and no shop's id has one: a 422 rather than a 500.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Id = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]


class Loose(BaseModel):
    # Unknown fields are kept: shops send more than we read.
    model_config = ConfigDict(extra="allow")


class CustomerIn(Loose):
    id: Id | None = None
    email: Email | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    first_name: Annotated[str, Field(max_length=200)] | None = None
    last_name: Annotated[str, Field(max_length=200)] | None = None
    locale: Annotated[str, Field(max_length=16)] | None = None
    timezone: ZoneName | None = None
    birthday: date | None = None
    attributes: dict[str, Any] | None = None
    previous_ids: Annotated[list[Id], Field(max_length=4)] | None = Field(
        default=None,
        description="Ids (`customer.id`) this person had before: a guest's or a device's"
        " (the Segment API's `anonymous:<anonymousId>`). A profile with one of them is merged"
        " into this customer's.",
    )

    @model_validator(mode="after")
    def _identified(self) -> CustomerIn:
        if not (self.id or self.email or self.phone):
            raise ValueError("a customer needs at least one of id, email or phone")
        return self


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    type: Annotated[str, Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=100)]
    occurred_at: Moment | None = None
    customer: CustomerIn | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Item(Loose):
    product_id: Id | None = None
    variant_id: Id | None = None
    sku: Annotated[str, Field(max_length=200)] | None = None
    title: Annotated[str, Field(min_length=1, max_length=500)]
    quantity: Quantity = 1
    price: Money
    url: WebUrl | None = None
    image_url: WebUrl | None = None


def _tips(value: Any) -> Any:
    # One text or a few: a shop with a single "how to use" field sends it as it is.
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [tip.strip() if isinstance(tip, str) else tip for tip in value]
    return value


# Usage tips of a product, shown to its buyers after delivery (a few short paragraphs).
Tips = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=1000)]],
    BeforeValidator(_tips),
    Field(max_length=5),
]


class ProductData(Loose):
    product_id: Id
    variant_id: Id | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    url: WebUrl | None = None
    image_url: WebUrl | None = None
    price: Money | None = None
    currency: Currency | None = None
    inventory: int | None = None
    tags: list[str] = Field(default_factory=list)
    replenish_days: Annotated[int, Field(ge=1)] | None = None
    tips: Tips = Field(
        default_factory=list,
        description="How to use the product: a text, or a list of up to 5; shown to its"
        " buyers after delivery (`thank-you` journey). Without them, the store's text per tag.",
    )


class ProductViewedData(Loose):
    product_id: Id
    variant_id: Id | None = None


class BackInStockData(Loose):
    """back_in_stock.requested / back_in_stock.cancelled: a customer asks to hear when a
    product (or one variant; none for any of its variants) is back, or no longer."""

    product_id: Id
    variant_id: Id | None = None


class ConsentData(Loose):
    """consent.updated: the customer gave or took back consent to commercial messages on
    a channel (the law asks for it per channel, and keeps merchants apart from
    individuals). `source` says where (a sign-up form, the checkout box, İYS); `proof` is
    what the shop keeps to show it (a form's text and the IP, a call recording's id)."""

    channel: Literal["email", "sms", "call"]
    status: Literal["granted", "revoked"]
    source: Annotated[str, Field(min_length=1, max_length=100)]
    recipient_type: Literal["individual", "merchant"] = "individual"
    proof: Any = None

    def change(self) -> dict[str, Any]:
        """The change as `consent.service.record_change` takes it."""
        return {
            "channel": self.channel,
            "status": self.status,
            "source": self.source,
            "recipient_type": self.recipient_type,
            "proof": self.proof,
        }


class UnsubscribedData(Loose):
    """message.unsubscribed, from ulak's unsubscribe page: consent taken back."""

    channel: Literal["email", "sms", "call"] = "email"


class SmsReportData(Loose):
    """message.delivered / message.failed: an SMS gateway's delivery report, posted to
    ulak's report URL (`sms/api.py`)."""

    provider_id: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Annotated[str, Field(max_length=500)] | None = None


class BouncedData(Loose):
    """message.bounced: one of ulak's messages was not delivered, as the SMTP server
    answered (`source` smtp) or a delivery status notification reported (dsn). ulak writes
    these itself; a store can only name its own messages."""

    message_id: Annotated[int, Field(ge=1, lt=2**63)]
    kind: Literal["hard", "soft", "blocked"]
    status: Annotated[str, Field(max_length=20)] = ""
    diagnostic: Annotated[str, Field(max_length=1000)] = ""
    source: Literal["smtp", "dsn"] = "dsn"


class ComplainedData(Loose):
    """message.complained: the recipient reported one of ulak's messages as spam (an
    abuse report, ARF)."""

    message_id: Annotated[int, Field(ge=1, lt=2**63)]
    feedback_type: Annotated[str, Field(max_length=40)] = "abuse"


class CartData(Loose):
    cart_id: Id
    items: list[Item] = Field(default_factory=list)
    total: Money | None = None
    currency: Currency | None = None
    recovery_url: WebUrl | None = None
    change: Literal["replace", "add", "remove"] = Field(
        default="replace",
        description="`replace`: `items` is the whole cart. `add` / `remove`: `items` are"
        " lines put in or taken out (by variant, SKU or product; a removed quantity is taken"
        " off the line), as a tracker that sees one click at a time sends them (Segment's"
        " Product Added / Removed); the total is then the lines' sum unless `total` is given.",
    )


Channel = Literal[
    "web", "instagram", "facebook", "trendyol", "hepsiburada", "amazon", "ebay", "other"
]


class OrderPlacedData(Loose):
    order_id: Id
    number: Annotated[str, Field(max_length=100)] | None = None
    items: list[Item] = Field(default_factory=list)
    subtotal: Money | None = None
    discount: Money | None = None
    shipping: Money | None = None
    tax: Money | None = None
    total: Money
    currency: Currency | None = None
    discount_codes: list[str] = Field(default_factory=list)
    channel: Channel = "web"
    cart_id: Id | None = None
    shipping_address: dict[str, Any] | None = None
    payment_method: Annotated[str, Field(max_length=100)] | None = Field(
        default=None,
        description="How the customer paid: a common code (credit_card, debit_card,"
        " bank_transfer, cash_on_delivery, card_on_delivery, wallet, paypal, gift_card,"
        " store_credit), shown in the customer's language, or the shop's own wording.",
    )
    order_url: WebUrl | None = Field(
        default=None,
        description="The order's page on the shop, behind the emails' \"view your order\" button.",
    )


class OrderChangeData(Loose):
    order_id: Id
    amount: Money | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None


class OrderShippedData(Loose):
    order_id: Id
    shipment_id: Id | None = None
    carrier: Annotated[str, Field(max_length=100)] | None = None
    tracking_number: Annotated[str, Field(max_length=200)] | None = None
    tracking_url: WebUrl | None = None
    # An ISO date (or date and time), as the carrier gives it.
    estimated_delivery: Annotated[str, Field(max_length=40)] | None = None
    items: list[Item] = Field(default_factory=list)


ShipmentStatus = Literal[
    "pending",
    "info_received",
    "in_transit",
    "out_for_delivery",
    "attempt_failed",
    "available_for_pickup",
    "delivered",
    "exception",
    "returned_to_sender",
]


class ShipmentLine(Loose):
    """One line of an order in a parcel, named as the order named it (variant, SKU or
    product); its title, picture and price come from the order."""

    product_id: Id | None = None
    variant_id: Id | None = None
    sku: Annotated[str, Field(max_length=200)] | None = None
    title: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    quantity: Quantity = 1

    @model_validator(mode="after")
    def _named(self) -> ShipmentLine:
        if not (self.product_id or self.variant_id or self.sku or self.title):
            raise ValueError("a shipment line needs one of variant_id, sku, product_id or title")
        return self


class ShipmentUpdatedData(Loose):
    shipment_id: Id
    order_id: Id | None = None
    status: ShipmentStatus
    location: Annotated[str, Field(max_length=300)] | None = None
    message: Annotated[str, Field(max_length=1000)] | None = None
    estimated_delivery: Annotated[str, Field(max_length=40)] | None = None
    items: list[ShipmentLine] | None = Field(
        default=None,
        max_length=1000,
        description="The order's lines in this parcel, when an order ships in parts: its"
        " emails list only these. Without it, what the parcel held before (or the whole order).",
    )


class OrderDeliveredData(Loose):
    order_id: Id
    shipment_id: Id | None = None


DATA_MODELS: dict[str, type[BaseModel]] = {
    "product.updated": ProductData,
    "product.viewed": ProductViewedData,
    "cart.updated": CartData,
    "checkout.started": CartData,
    "order.placed": OrderPlacedData,
    "order.paid": OrderChangeData,
    "order.preparing": OrderChangeData,
    "order.cancelled": OrderChangeData,
    "order.refunded": OrderChangeData,
    "order.shipped": OrderShippedData,
    "shipment.updated": ShipmentUpdatedData,
    "order.delivered": OrderDeliveredData,
    "back_in_stock.requested": BackInStockData,
    "back_in_stock.cancelled": BackInStockData,
    "back_in_stock.confirm_requested": BackInStockConfirmData,
    "consent.updated": ConsentData,
    "message.unsubscribed": UnsubscribedData,
    "message.delivered": SmsReportData,
    "message.failed": SmsReportData,
    "message.bounced": BouncedData,
    "message.complained": ComplainedData,
    "preferences.updated": PreferencesData,
    "privacy.requested": PrivacyRequestData,
    "return.requested": ReturnRequestedData,
    "return.updated": ReturnUpdatedData,
    "survey.answered": SurveyAnsweredData,
    "review.submitted": ReviewSubmittedData,
    "review.moderated": ReviewModeratedData,
    "review.due": ReviewDueData,
}

# Delivery reports, which ulak makes of a gateway's callback (`sms/api.py`); not the API's.
FROM_GATEWAYS_ONLY = frozenset({"message.delivered", "message.failed"})
# Types about the catalogue rather than a person; every other event names its customer.
WITHOUT_CUSTOMER = frozenset({"product.updated"})

# Types only ulak itself writes (the sender, `ulak inbound`, POST /v1/inbound/email): a
# shop's event of these types would suppress an address, or revoke a consent, on a message
# id alone.
# A shop's review.submitted would publish a review no verified buyer wrote, its
# review.moderated approve one without the store's moderation (`/v1/reviews/...` sends it).
ULAK_ONLY = frozenset(
    {"message.bounced", "message.complained", "review.submitted", "review.moderated"}
)

MAX_BATCH = 1000
# Keys of the events ulak makes up (`ulak:`) or derives (`derived:`), and of those it maps
# from a platform's messages (`segment:<messageId>`, `shopify:`, `woocommerce:`; see
# `segment/` and `integrations/`): a shop that reuses its own ids ("order-1001" as a Segment
# messageId and as a /v1/events id) must not see the second taken for a duplicate of the first.
RESERVED_KEY_PREFIXES = ("ulak:", "derived:", "segment:", "shopify:", "woocommerce:")
_RESERVED_NAMES = ", ".join(f"'{p}'" for p in RESERVED_KEY_PREFIXES)


class Problem(BaseModel):
    path: str
    message: str


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def nul_problems(raw: Any, prefix: str = "") -> list[Problem]:
    """Where a NUL character is, in any key or text of a parsed body: PostgreSQL's jsonb
    and text cannot hold one, so such an event is refused on every database alike. Callers
    walk a body only when its raw bytes hold the escape (`b"\\u0000"`, the only way JSON
    carries one), so the usual event costs a byte search, not a walk."""
    found: list[Problem] = []

    def walk(value: Any, loc: tuple[int | str, ...]) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                found.append(Problem(path=_path(prefix, loc) or "(body)", message=NUL_MESSAGE))
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    found.append(Problem(path=_path(prefix, loc) or "(body)", message=NUL_MESSAGE))
                walk(item, (*loc, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*loc, index))

    walk(raw, ())
    return sorted(found, key=lambda p: p.path)


NUL_MESSAGE = "must not contain a NUL character"


def problems_of(error: ValidationError, prefix: str = "") -> list[Problem]:
    return [
        Problem(path=_path(prefix, tuple(e["loc"])) or "(body)", message=e["msg"])
        for e in error.errors(include_url=False)
    ]


def validate_event(
    raw: Any, prefix: str = "", *, own_keys: str | None = None
) -> tuple[EventIn | None, list[Problem]]:
    """Validate one event: the envelope, then the data of its type. `own_keys`: the
    reserved key prefix the caller (one of ulak's own routes) keys its events by."""
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as error:
        return None, problems_of(error, prefix)
    problems: list[Problem] = []
    if (
        event.id is not None
        and event.id.startswith(RESERVED_KEY_PREFIXES)
        and not (own_keys and event.id.startswith(own_keys))
    ):
        # ulak keys the events it makes up or derives so; a shop's event with such a key
        # could collide with one of them and be taken for a duplicate.
        problems.append(
            Problem(
                path=_path(prefix, ("id",)),
                message=f"ids starting with {_RESERVED_NAMES} are reserved for ulak's own",
            )
        )
    if event.type in FROM_GATEWAYS_ONLY:
        # A shop's own report could mark its SMS delivered that never were.
        problems.append(
            Problem(
                path=_path(prefix, ("type",)),
                message=f"{event.type} comes only from an SMS gateway's delivery report",
            )
        )
    if event.type in ULAK_ONLY:
        problems.append(
            Problem(
                path=_path(prefix, ("type",)),
                message=f"{event.type} is ulak's own: post bounce and complaint reports "
                "to /v1/inbound/email"
                if event.type.startswith("message.")
                else f"{event.type} is ulak's own: reviews come from the review page and "
                "the /v1/reviews routes",
            )
        )
    model = DATA_MODELS.get(event.type)
    if model is not None:
        try:
            model.model_validate(event.data)
        except ValidationError as error:
            problems += problems_of(error, _path(prefix, ("data",)))
    if event.customer is None and event.type not in WITHOUT_CUSTOMER:
        problems.append(
            Problem(
                path=_path(prefix, ("customer",)),
                message=f"a {event.type} event needs a customer with an id, email or phone",
            )
        )
    return (None if problems else event), problems


class Accepted(BaseModel):
    # The event's place in the request.
    index: int
    # Its idempotency key: the shop's `id`, or one ulak made up when it sent none.
    key: str
    # True when the store already had an event with this key: nothing new was stored.
    duplicate: bool
    # What was accepted but may not work everywhere, for the shop to hear of at once.
    warnings: list[Problem] = Field(default_factory=list)


def warnings_of(event: EventIn, prefix: str = "") -> list[Problem]:
    """What an accepted event holds that some later step may not manage."""
    email = event.customer.email if event.customer is not None else None
    if email is not None and not email.rpartition("@")[0].isascii():
        return [
            Problem(
                path=_path(prefix, ("customer", "email")),
                message="the part before @ is not ASCII: only a mail server that offers "
                "SMTPUTF8 takes it; where the server does not, this customer's emails fail",
            )
        ]
    return []


class Rejected(BaseModel):
    index: int
    errors: list[Problem]


class IngestResult(BaseModel):
    accepted: list[Accepted]
    rejected: list[Rejected]

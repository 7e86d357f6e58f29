from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from babel import Locale, UnknownLocaleError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ulak.fields import Email, WebUrl, ZoneName
from ulak.orders.reorder import check_pattern
from ulak.policy.service import Hours


def _no_control_characters(value: str) -> str:
    # A line break in a value that reaches a header (the From name) would end the header
    # and start another: every email of the store would then fail or carry a forged one.
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain control characters (line breaks, tabs)")
    return value


def _sending_hours(value: str) -> str:
    return str(Hours.parse(value))


def _known_locale(value: str) -> str:
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as error:
        raise ValueError(f"unknown locale {value!r}") from error
    return value


StoreName = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(_no_control_characters)
]
SenderName = Annotated[str, Field(max_length=200), AfterValidator(_no_control_characters)]
LocaleName = Annotated[str, AfterValidator(_known_locale)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Region = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]
# An idle cart becomes abandoned after 5 minutes to 30 days; a customer lapses after 1 to
# 3650 days without an order.
CartMinutes = Annotated[int, Field(ge=5, le=30 * 24 * 60)]
LapsedDays = Annotated[int, Field(ge=1, le=3650)]
# A sign-up who has not ordered after 1 to 365 days gets the win-back journey.
NeverBoughtDays = Annotated[int, Field(ge=1, le=365)]
# The sending policy (`policy/`): local hours a commercial message may arrive in, and a
# cap per customer and channel (0: none).
SendingHours = Annotated[str, AfterValidator(_sending_hours)]
CapCount = Annotated[int, Field(ge=0, le=100)]
# How long applied events are kept (KVKK/GDPR: no longer than needed). A week at least:
# journeys read recent events (wait_for, exit_when) only while they are pending or fresh.
KeepEventsDays = Annotated[int, Field(ge=7, le=3650)]
# The one-click reorder link's pattern (`orders/reorder.py`), checked when it is set.
ReorderUrl = Annotated[str, AfterValidator(check_pattern)]


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StoreName
    locale: LocaleName = "tr"
    timezone: ZoneName = "Europe/Istanbul"
    currency: Currency = "TRY"
    phone_region: Region = "TR"
    sender_name: SenderName | None = None
    sender_email: Email = "shop@example.com"
    reply_to: Email | None = None
    logo_url: WebUrl | None = None
    brand_color: Color = "#1f6feb"
    postal_address: str | None = None
    contact_email: Email | None = None
    contact_phone: str | None = None
    website_url: WebUrl | None = None
    back_in_stock_factor: Annotated[int, Field(ge=1, le=100)] = 3
    back_in_stock_daily_limit: Annotated[int, Field(ge=1, le=1000)] = 10
    abandoned_cart_minutes: CartMinutes = 60
    lapsed_days: LapsedDays = 90
    never_bought_days: NeverBoughtDays = 14
    keep_events_days: KeepEventsDays = 365
    reorder_url: ReorderUrl | None = None
    merchant_opt_out: bool = False
    sending_hours_email: SendingHours | None = None
    sending_hours_sms: SendingHours | None = "09:00-20:00"
    cap_email_day: CapCount = 1
    cap_email_week: CapCount = 3
    cap_sms_day: CapCount = 0
    cap_sms_week: CapCount = 1


# The settings a store may leave empty, and so may clear (`ulak stores update --clear`).
CLEARABLE = (
    "reply_to",
    "logo_url",
    "postal_address",
    "contact_email",
    "contact_phone",
    "website_url",
    # Without a pattern the replenishment reminder links the products' pages.
    "reorder_url",
    # Without sending hours a commercial message may arrive at any hour.
    "sending_hours_email",
    "sending_hours_sms",
)


class StoreUpdate(BaseModel):
    """The settings to change; those left out stay as they are, and one of `CLEARABLE`
    given as None is cleared."""

    model_config = ConfigDict(extra="forbid")

    name: StoreName | None = None
    locale: LocaleName | None = None
    timezone: ZoneName | None = None
    currency: Currency | None = None
    phone_region: Region | None = None
    sender_name: SenderName | None = None
    sender_email: Email | None = None
    reply_to: Email | None = None
    logo_url: WebUrl | None = None
    brand_color: Color | None = None
    postal_address: str | None = None
    contact_email: Email | None = None
    contact_phone: str | None = None
    website_url: WebUrl | None = None
    back_in_stock_factor: Annotated[int, Field(ge=1, le=100)] | None = None
    back_in_stock_daily_limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    abandoned_cart_minutes: CartMinutes | None = None
    lapsed_days: LapsedDays | None = None
    never_bought_days: NeverBoughtDays | None = None
    keep_events_days: KeepEventsDays | None = None
    reorder_url: ReorderUrl | None = None
    merchant_opt_out: bool | None = None
    sending_hours_email: SendingHours | None = None
    sending_hours_sms: SendingHours | None = None
    cap_email_day: CapCount | None = None
    cap_email_week: CapCount | None = None
    cap_sms_day: CapCount | None = None
    cap_sms_week: CapCount | None = None

    @model_validator(mode="after")
    def _clears_only_what_may_be_empty(self) -> StoreUpdate:
        for field in sorted(self.model_fields_set - set(CLEARABLE)):
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be cleared: it needs a value")
        return self


class StoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    locale: str
    timezone: str
    currency: str
    sender_name: str
    sender_email: str
    reply_to: str | None
    logo_url: str | None
    brand_color: str
    postal_address: str | None
    contact_email: str | None
    contact_phone: str | None
    website_url: str | None
    back_in_stock_factor: int
    back_in_stock_daily_limit: int
    abandoned_cart_minutes: int
    lapsed_days: int
    never_bought_days: int
    keep_events_days: int
    reorder_url: str | None
    merchant_opt_out: bool
    sending_hours_email: str | None
    sending_hours_sms: str | None
    cap_email_day: int
    cap_email_week: int
    cap_sms_day: int
    cap_sms_week: int


class StoreCreated(StoreOut):
    api_key: str


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself, which is kept only as a hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    store_id: int
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

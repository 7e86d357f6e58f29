from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    locale: str = "tr"
    timezone: str = "Europe/Istanbul"
    currency: str = Field(default="TRY", pattern=r"^[A-Z]{3}$")
    phone_region: str = Field(default="TR", pattern=r"^[A-Z]{2}$")
    sender_name: str | None = None
    sender_email: EmailStr = "shop@example.com"
    reply_to: EmailStr | None = None
    logo_url: str | None = None
    brand_color: str = Field(default="#1f6feb", pattern=r"^#[0-9a-fA-F]{6}$")
    postal_address: str | None = None
    contact_email: EmailStr | None = None
    contact_phone: str | None = None
    website_url: str | None = None

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value.replace("-", "_"))
        except (UnknownLocaleError, ValueError) as error:
            raise ValueError(f"unknown locale {value!r}") from error
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


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


class StoreCreated(StoreOut):
    api_key: str

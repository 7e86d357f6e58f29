from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

TemplateKey = Annotated[str, Field(max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
# Upper-case letters and digits: a code is read aloud and typed from an email.
Prefix = Annotated[str, Field(max_length=20, pattern=r"^[A-Z0-9]*$")]
Amount = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
MinimumOrder = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
# Amounts as the API shows them: two decimals on either database (PostgreSQL's NUMERIC
# would show 10.0000, SQLite the text it was given).
Shown = Annotated[Decimal, AfterValidator(lambda value: value.quantize(Decimal("0.01")))]
Kind = Literal["percent", "fixed"]
Source = Literal["generated", "pool"]


class TemplateChange(BaseModel):
    """The settings of a coupon template to set; those left out stay (a new template needs
    kind and amount). A minimum order of 0 means none."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = None
    amount: Amount | None = None
    minimum_order: MinimumOrder | None = None
    validity_days: int | None = Field(default=None, ge=1, le=3650)
    prefix: Prefix | None = None
    source: Source | None = None


class TemplateOut(BaseModel):
    key: str
    kind: Kind
    amount: Shown
    minimum_order: Shown | None
    validity_days: int
    prefix: str
    source: Source
    # Pool codes not yet issued (0 for generated codes, which never run out).
    available: int


class CouponCustomer(BaseModel):
    id: str | None
    email: str | None


class CouponOut(BaseModel):
    code: str
    # available: in the pool, not yet issued; issued; redeemed
    status: Literal["available", "issued", "redeemed"]
    template: str
    kind: Kind | None
    amount: Shown | None
    currency: str | None
    minimum_order: Shown | None
    issued_at: datetime | None
    expires_at: datetime | None
    expired: bool
    customer: CouponCustomer | None
    # The journey whose step issued it, and the first message to the customer after it.
    journey: str | None
    message_id: int | None
    order_id: str | None
    redeemed_at: datetime | None


class ImportReport(BaseModel):
    added: int
    already: int
    # (line number, what is wrong): when there are any, nothing was imported.
    problems: list[tuple[int, str]]

"""The data of `return.requested` (the returns page, or a shop's own portal) and
`return.updated` (the shop moves a request on)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

# As `events.schemas` has them; not imported from there, which imports this module.


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Id = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Quantity = Annotated[int, Field(ge=1, le=1_000_000)]


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('money must be a decimal string like "1249.90", not a JSON number')
    return value


Money = Annotated[Decimal, BeforeValidator(_no_float), Field(max_digits=18, decimal_places=4, ge=0)]


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


Resolution = Literal["refund", "exchange", "store_credit"]
Status = Literal["approved", "received", "refunded", "rejected"]
REFERENCE_PATTERN = r"^R-[0-9A-Z]{4}-[0-9A-Z]{4}$"


class ReturnLineIn(Loose):
    # The order's line, by its place in the order (0 first).
    line: Annotated[int, Field(ge=0, le=10_000)]
    quantity: Quantity
    # For an exchange: the variant of the same product wanted instead.
    exchange_variant_id: Id | None = None


class ReturnRequestedData(Loose):
    order_id: Id
    # Made by the page (shown to the customer at once); made by the worker when absent.
    reference: Annotated[str, Field(pattern=REFERENCE_PATTERN)] | None = None
    items: list[ReturnLineIn] = Field(min_length=1, max_length=500)
    reason: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)]
    comment: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] | None = None
    resolution: Resolution = "refund"


class ReturnUpdatedData(Loose):
    reference: Annotated[str, Field(pattern=REFERENCE_PATTERN)]
    status: Status
    # Why a return is rejected (required then; the customer reads it).
    reason: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_no_nul)] | None = (
        None
    )
    # On approval: how to send the items back, and the return label's reference or URL.
    instructions: Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)] | None = None
    label: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_nul)] | None = (
        None
    )
    # On refund: the amount refunded (default: the returned items' value).
    amount: Money | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> ReturnUpdatedData:
        if self.status == "rejected" and not self.reason:
            raise ValueError("a rejected return needs a reason the customer can read")
        return self

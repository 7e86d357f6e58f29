"""The catalog's own event data models (registered in `events.schemas.DATA_MODELS`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ulak.fields import WebUrl


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# As `events.schemas.Id` (not imported: that module imports this one).
Id = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]


class BackInStockConfirmData(BaseModel):
    """back_in_stock.confirm_requested: someone asked, on the store's back-in-stock form, to
    hear when a product is back. Nothing is subscribed yet: the shipped journey
    `confirm-back-in-stock` emails `confirm_url` (a signed page link of kind
    `back_in_stock`), and only opening it and confirming sends `back_in_stock.requested`.
    What the email shows of the product is the catalogue's at the time of the request."""

    model_config = ConfigDict(extra="allow")

    product_id: Id
    variant_id: Id | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    url: WebUrl | None = None
    image_url: WebUrl | None = None
    confirm_url: WebUrl

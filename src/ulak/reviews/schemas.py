"""The events of reviews: what the review page and the moderation API send through the
inbox, and what the worker applies (`service.apply_submitted`, `service.apply_moderated`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# An id of the shop's (as `events.schemas.Id`, which imports this module's models).
Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class PhotoIn(BaseModel):
    """A photo the page re-encoded (`photos.process`). Once applied, the stored event
    keeps only its `token` (the bytes live in `review_photos`)."""

    model_config = ConfigDict(extra="forbid")

    content_type: Literal["image/jpeg", "image/webp"]
    # Base64 of the re-encoded bytes (at most 1600 px a side: well under 10 MB).
    data: Annotated[str, Field(max_length=14_000_000)] | None = None
    width: Annotated[int, Field(ge=1, le=1600)]
    height: Annotated[int, Field(ge=1, le=1600)]
    token: Annotated[str, Field(max_length=32)] | None = None


class ReviewSubmittedData(BaseModel):
    """review.submitted: a customer reviewed a product of their order (ulak's own: only
    the review page, whose signed link proves the purchase, sends it)."""

    model_config = ConfigDict(extra="forbid")

    order_id: Id
    product_id: Id
    rating: Annotated[int, Field(ge=1, le=5)]
    title: Annotated[str, Field(max_length=200)] = ""
    body: Annotated[str, Field(max_length=5000)] = ""
    display_name: Annotated[str, Field(max_length=100)] = ""
    quote_ok: bool = False
    photos: list[PhotoIn] = Field(default_factory=list, max_length=3)
    # Set by the worker once stored.
    review_id: int | None = None


class ReviewModeratedData(BaseModel):
    """review.moderated: the shop approved, rejected (with a reason) or replied to a
    review through the API (ulak's own: only `/v1/reviews/{id}/...` sends it)."""

    model_config = ConfigDict(extra="forbid")

    review_id: Annotated[int, Field(ge=1, lt=2**63)]
    action: Literal["approve", "reject", "reply"]
    reason: Annotated[str, Field(max_length=2000)] | None = None
    reply: Annotated[str, Field(max_length=5000)] | None = None


class ReviewDueData(BaseModel):
    """review.due: the moment to ask for a review of a delivered order (a timer set at
    delivery + the longest delay among its products' tags)."""

    model_config = ConfigDict(extra="allow")

    order_id: Id

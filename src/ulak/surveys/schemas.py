"""The surveys feature's event data and the scales it asks on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Kind = Literal["csat", "nps"]

# The answers each scale allows.
SCALES: dict[str, range] = {"csat": range(1, 6), "nps": range(0, 11)}

# Event types: `survey.due` is derived from the timer an order's delivery sets (data:
# order_id, kind); `survey.answered` comes from the survey page (or the shop);
# `survey.make_good` is derived from a detractor's answer when the store gives a code.
DUE = "survey.due"
ANSWERED = "survey.answered"
MAKE_GOOD = "survey.make_good"

COMMENT_LIMIT = 2000


def detractor(kind: str, score: int) -> bool:
    """NPS 0-6, CSAT 1-2."""
    return score <= (6 if kind == "nps" else 2)


def promoter(kind: str, score: int) -> bool:
    """NPS 9-10, CSAT 5."""
    return score >= (9 if kind == "nps" else 5)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class SurveyAnsweredData(BaseModel):
    """`survey.answered`: a customer's score for an order, with an optional comment."""

    model_config = ConfigDict(extra="allow")

    order_id: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
    kind: Kind
    score: int
    comment: Annotated[str, Field(max_length=COMMENT_LIMIT), AfterValidator(_no_nul)] | None = None

    @model_validator(mode="after")
    def _score_on_scale(self) -> SurveyAnsweredData:
        scale = SCALES[self.kind]
        if self.score not in scale:
            raise ValueError(
                f"a {self.kind} score is {scale.start} to {scale.stop - 1}, not {self.score}"
            )
        if self.comment is not None:
            self.comment = self.comment.strip() or None
        return self

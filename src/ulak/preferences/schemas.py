"""The data of the events this feature applies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ulak.preferences.topics import OPTIONAL_TOPICS, Topic

TopicChannel = Literal["email", "sms"]


class Loose(BaseModel):
    # As `events.schemas.Loose` (which imports this module for DATA_MODELS).
    model_config = ConfigDict(extra="allow")


class PreferencesData(Loose):
    """preferences.updated: a customer turned topics on or off, per channel
    (`{"topics": {"email": {"offers": false}}}`), on ulak's preference page (`source`
    preferences_page) or the shop's own account page. Topics left out keep their state.
    Order updates are not optional: a change of them is refused."""

    topics: dict[TopicChannel, dict[Topic, bool]]
    source: Annotated[str, Field(min_length=1, max_length=100)] = "preferences_page"

    @field_validator("topics")
    @classmethod
    def _optional_only(
        cls, value: dict[TopicChannel, dict[Topic, bool]]
    ) -> dict[TopicChannel, dict[Topic, bool]]:
        for chosen in value.values():
            for topic in chosen:
                if topic not in OPTIONAL_TOPICS:
                    raise ValueError(f"{topic} is not optional: order updates always go")
        return value


class PrivacyRequestData(Loose):
    """privacy.requested: the customer asks for their data (export) or its erasure
    (KVKK art. 11, GDPR art. 15/17), from ulak's preference page. The shop is alerted and
    answers it; nothing is erased on this event alone."""

    kind: Literal["export", "erase"]
    source: Annotated[str, Field(min_length=1, max_length=100)] = "preferences_page"

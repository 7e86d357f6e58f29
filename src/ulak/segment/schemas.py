"""What the Segment-compatible API answers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Skipped(BaseModel):
    """A message of the request that became no event, and why."""

    # Its place in the batch (0 for a single call).
    index: int
    message_id: str | None = None
    reason: str


class SegmentAnswer(BaseModel):
    """Segment's answer, `{"success": true}`, and the messages ulak could not take (only
    when there are some; Segment's SDKs read nothing of a 200's body)."""

    success: bool = True
    skipped: list[Skipped] = Field(default_factory=list)

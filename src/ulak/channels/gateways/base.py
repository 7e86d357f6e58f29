"""What the SMS channel asks of a gateway, and what a gateway answers.

A gateway owns its wire format: the request it builds, the answers and error codes it
reads, its delivery reports (polled or posted back). It never sees the database; the SMS
channel records what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

RecipientType = Literal["individual", "merchant"]
ReportStatus = Literal["delivered", "failed", "pending"]


@dataclass(frozen=True)
class SmsRequest:
    """One text to one number."""

    reference: str  # ulak's id for the message; echoed where the gateway allows
    to: str  # E.164, "+905321234567"
    text: str
    sender: str  # the store's approved originator header, 3-11 characters
    commercial: bool  # İYS-filtered on gateways that filter (Netgsm iysfilter 11/12)
    recipient_type: RecipientType


@dataclass(frozen=True)
class SmsAccepted:
    """The gateway took the message; `provider_id` finds its delivery report later."""

    provider_id: str
    segments: int | None = None  # as the gateway counted them, where it says


class GatewayError(Exception):
    """The gateway did not take the message. `permanent`: sending it again cannot help
    (invalid number, blocked header, no credit, bad credentials); otherwise retry later
    (timeouts, 5xx, throttling), not before `retry_after` seconds when the gateway says."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class DeliveryReport:
    provider_id: str
    status: ReportStatus
    reason: str | None = None  # the provider's words for a failure
    at: datetime | None = None


class CallbackRefused(Exception):
    """A delivery-report callback that is not the gateway's (bad signature) or unreadable."""


class SmsGateway(Protocol):
    name: str

    async def send(self, request: SmsRequest) -> SmsAccepted:
        """Raises `GatewayError`."""
        ...

    async def poll_reports(self, provider_ids: Sequence[str]) -> list[DeliveryReport]:
        """Reports for these messages, for gateways that are polled; [] for those that
        only post back. Raises `GatewayError` when the gateway cannot answer now."""
        ...

    def parse_callback(
        self, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[DeliveryReport]:
        """A report the gateway posted to ulak. Raises `CallbackRefused`."""
        ...

    async def close(self) -> None: ...

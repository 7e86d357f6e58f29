"""What the three gateways share about HTTP: one request that turns every transport
failure into a retry, Retry-After, and Turkish numbers in the national form.

Nothing here may put a credential into a message: errors name the provider and what
went wrong, never the request (whose body or headers carry the secrets)."""

from __future__ import annotations

import base64
import email.utils
from datetime import timedelta, timezone
from typing import Any

import httpx

from ulak.channels.gateways.base import GatewayError

# Turkey has kept UTC+3 all year since 2016: a fixed offset, no tz database needed.
TURKEY = timezone(timedelta(hours=3))


async def call(
    client: httpx.AsyncClient, provider: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """The request, or a retryable GatewayError when the provider could not be reached or
    did not answer in the client's timeout. Only the exception's class is kept: httpx's
    own text is safe today, but a message of ours cannot leak what it never held."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise GatewayError(
            f"{provider} did not answer in time ({type(exc).__name__})",
            permanent=False,
            code="timeout",
        ) from None
    except httpx.HTTPError as exc:
        raise GatewayError(
            f"{provider} could not be reached ({type(exc).__name__})",
            permanent=False,
            code="network",
        ) from None


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds or an HTTP date, counted from the
    answer's own Date so that our clock's drift does not matter), None without one."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
        return max(0.0, (when - sent).total_seconds())
    except (TypeError, ValueError):  # absent, unreadable, or one naive and one aware
        return None


def server_error(provider: str, response: httpx.Response) -> GatewayError:
    return GatewayError(
        f"{provider} answered HTTP {response.status_code}",
        permanent=False,
        code=str(response.status_code),
        retry_after=retry_after(response),
    )


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is not one (a proxy's HTML page)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def turkish_mobile(provider: str, e164: str) -> str:
    """ "+905321234567" -> "5321234567", the 10-digit national form Turkish gateways take.
    Any other number cannot be sent by them: a permanent error."""
    digits = e164.removeprefix("+90")
    if not e164.startswith("+90") or len(digits) != 10 or not digits.isdigit():
        raise GatewayError(
            f"{provider} sends only to Turkish numbers (+90 and 10 digits)",
            permanent=True,
            code="number",
        )
    return digits

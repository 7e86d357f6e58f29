"""İYS's REST API (https://api.iys.org.tr), the calls ulak makes, with httpx.

Token: `POST /oauth2/token` (password grant; refresh grant while the refresh token lives).
Push: `POST /sps/{iysCode}/brands/{brandCode}/consents`, one consent per call. The bulk
endpoint (`…/consents/request`) answers with a request id to poll later, and says nothing of
the order its sub-requests are applied in; one call per change answers at once, so each
row's outcome (or İYS's error code) is known when the call returns and two changes of one
recipient reach İYS in the order they happened. Consent changes are rare next to messages
(a customer's click), so one call each is far below İYS's limits.
Query: `POST …/consents/status`. Pull: `GET …/consents/changes?source=IYS&after=&limit=`.

Errors are sorted into `Retry` (İYS away: timeouts, connection errors, 5xx, 429, refused
credentials, which an operator fixes; the change waits) and `Refused` (İYS answered 4xx with
its error code: the change is wrong for İYS and would be refused again). Neither carries a
credential or a token: their text is shown and logged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

# İYS answers in well under a second; a call still waiting after this is an outage.
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class Retry(Exception):
    """İYS could not take the call now; ask again later."""


class Refused(Exception):
    """İYS refused the call with an error code: asking again gets the same answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Token:
    access: str
    access_expires_at: datetime
    refresh: str | None
    refresh_expires_at: datetime | None


@dataclass(frozen=True)
class Consent:
    """One consent as İYS's API spells it."""

    consent_date: str  # "YYYY-MM-DD HH:mm:ss", GMT+3
    source: str
    recipient: str
    recipient_type: str
    status: str
    type: str

    def body(self) -> dict[str, str]:
        return {
            "consentDate": self.consent_date,
            "source": self.source,
            "recipient": self.recipient,
            "recipientType": self.recipient_type,
            "status": self.status,
            "type": self.type,
        }


@dataclass(frozen=True)
class Changes:
    after: str | None
    changes: list[dict[str, Any]]


def _error(response: httpx.Response) -> Retry | Refused:
    status = response.status_code
    if status >= 500 or status in (401, 403, 408, 429):
        return Retry(f"İYS answered {status}")
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return Refused(str(first.get("code") or status), str(first.get("message") or ""))
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return Refused(str(status), response.text[:300])


class IysClient:
    """One store's account; `token` is what it last had (None: ask for one)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        iys_code: str,
        brand_code: str,
        username: str,
        password: str,
        token: Token | None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.brand_path = f"/sps/{iys_code}/brands/{brand_code}"
        self.username = username
        self.password = password
        self.token = token

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.TimeoutException as error:
            raise Retry(f"İYS did not answer in time ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise Retry(f"İYS could not be reached ({type(error).__name__})") from None

    async def _fetch_token(self, now: datetime) -> Token:
        token = self.token
        if token is not None and token.access_expires_at > now:
            return token
        if token is not None and token.refresh and (token.refresh_expires_at or now) > now:
            body = {"refresh_token": token.refresh, "grant_type": "refresh_token"}
            response = await self._call("POST", "/oauth2/token", json=body)
            if response.status_code == 200:
                return self._keep(response, now)
        body = {"username": self.username, "password": self.password, "grant_type": "password"}
        response = await self._call("POST", "/oauth2/token", json=body)
        if response.status_code in (400, 401, 403):
            # Refused credentials wait for an operator (`ulak stores iys set`), like an outage.
            raise Retry(f"İYS refused the credentials ({response.status_code})")
        if response.status_code != 200:
            raise Retry(f"İYS answered {response.status_code} to the token request")
        return self._keep(response, now)

    def _keep(self, response: httpx.Response, now: datetime) -> Token:
        data = response.json()
        # A minute's margin: a token that expires on its way to İYS is refused.
        margin = timedelta(seconds=60)
        refresh_in = data.get("refresh_expires_in")
        self.token = Token(
            access=str(data["access_token"]),
            access_expires_at=now + timedelta(seconds=int(data.get("expires_in", 0))) - margin,
            refresh=data.get("refresh_token"),
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) - margin
            if refresh_in
            else None,
        )
        return self.token

    async def _authorized(
        self, method: str, path: str, *, now: datetime, **kwargs: Any
    ) -> httpx.Response:
        for attempt in range(2):
            token = await self._fetch_token(now)
            headers = {"Authorization": f"Bearer {token.access}"}
            response = await self._call(method, path, headers=headers, **kwargs)
            if response.status_code != 401 or attempt:
                return response
            # Revoked or expired early: a new one (by the refresh token if it lives), once.
            self.token = replace(token, access_expires_at=now - timedelta(seconds=1))
        raise AssertionError("unreachable")

    async def add(self, consent: Consent, *, now: datetime) -> str:
        """Register one consent; returns İYS's transaction id."""
        path = f"{self.brand_path}/consents"
        response = await self._authorized("POST", path, now=now, json=consent.body())
        if response.status_code != 200:
            raise _error(response)
        return str(response.json().get("transactionId", ""))

    async def status(
        self, *, recipient: str, recipient_type: str, type: str, now: datetime
    ) -> str | None:
        """The status İYS holds for a recipient (ONAY, RET); None: none on record."""
        body = {"recipient": recipient, "recipientType": recipient_type, "type": type}
        path = f"{self.brand_path}/consents/status"
        response = await self._authorized("POST", path, now=now, json=body)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response)
        status = response.json().get("status")
        return str(status) if status else None

    async def changes(self, *, after: str | None, limit: int, now: datetime) -> Changes:
        """Changes made at İYS itself (by the recipient: e-Devlet, the app, SMS to 3338)."""
        params: dict[str, str | int] = {"source": "IYS", "limit": limit}
        if after:
            params["after"] = after
        path = f"{self.brand_path}/consents/changes"
        response = await self._authorized("GET", path, now=now, params=params)
        if response.status_code != 200:
            error = _error(response)
            raise error if isinstance(error, Retry) else Retry(str(error))
        data = response.json()
        return Changes(after=data.get("after") or after, changes=list(data.get("list") or []))

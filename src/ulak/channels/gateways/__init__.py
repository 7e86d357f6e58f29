"""SMS gateways: each one speaks its provider's documented HTTP API (httpx) and nothing
else. `base.py` is the interface the SMS channel uses; one module per provider, each
listed in `PROVIDERS` with the credential fields a store gives it."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ulak.channels.gateways.base import SmsGateway

# provider name -> the names of the credentials a store sets for it (all required).
PROVIDERS: dict[str, tuple[str, ...]] = {}


def gateway_for(
    provider: str,
    credentials: Mapping[str, str],
    *,
    client: httpx.AsyncClient,
    base_url: str | None = None,
    callback_url: str | None = None,
) -> SmsGateway:
    """The gateway of `provider` with a store's credentials. `base_url` replaces the
    provider's public address (tests point it at a local fake); `callback_url` is where
    the provider posts delivery reports, for those that post them. Raises ValueError for
    an unknown provider or a missing credential."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown SMS provider {provider!r}; known: {', '.join(PROVIDERS)}")
    missing = [name for name in PROVIDERS[provider] if not credentials.get(name)]
    if missing:
        raise ValueError(f"{provider} needs {', '.join(missing)}")
    raise ValueError(f"{provider} has no gateway yet")

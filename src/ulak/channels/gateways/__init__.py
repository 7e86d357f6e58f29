"""SMS gateways: each one speaks its provider's documented HTTP API (httpx) and nothing
else. `base.py` is the interface the SMS channel uses; one module per provider, each
listed in `PROVIDERS` with the credential fields a store gives it."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ulak.channels.gateways.base import SmsGateway
from ulak.channels.gateways.iletimerkezi import IletiMerkeziGateway
from ulak.channels.gateways.netgsm import NetgsmGateway
from ulak.channels.gateways.twilio import TwilioGateway
from ulak.clock import Clock

# provider name -> the names of the credentials a store sets for it (all required).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "netgsm": ("usercode", "password"),
    "iletimerkezi": ("key", "hash"),
    "twilio": ("account_sid", "auth_token"),
}


def gateway_for(
    provider: str,
    credentials: Mapping[str, str],
    *,
    client: httpx.AsyncClient,
    base_url: str | None = None,
    callback_url: str | None = None,
    clock: Clock | None = None,
) -> SmsGateway:
    """The gateway of `provider` with a store's credentials. `base_url` replaces the
    provider's public address (tests point it at a local fake); `callback_url` is where
    the provider posts delivery reports, for those that post them; `clock` dates Netgsm's
    report queries (the system clock by default). The client's timeout is the gateway's:
    a timeout is a GatewayError to retry. Raises ValueError for an unknown provider or a
    missing credential."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown SMS provider {provider!r}; known: {', '.join(PROVIDERS)}")
    missing = [name for name in PROVIDERS[provider] if not credentials.get(name)]
    if missing:
        raise ValueError(f"{provider} needs {', '.join(missing)}")
    if provider == "netgsm":
        return NetgsmGateway(
            usercode=credentials["usercode"],
            password=credentials["password"],
            client=client,
            base_url=base_url,
            clock=clock,
        )
    if provider == "iletimerkezi":
        return IletiMerkeziGateway(
            key=credentials["key"], hash=credentials["hash"], client=client, base_url=base_url
        )
    return TwilioGateway(
        account_sid=credentials["account_sid"],
        auth_token=credentials["auth_token"],
        client=client,
        base_url=base_url,
        callback_url=callback_url,
    )

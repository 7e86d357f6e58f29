"""The SMS channel: a claimed SMS goes to its store's gateway (`channels/gateways/`), or to
the dev SMS inbox when the store has no provider.

Each store's setup is read once and kept for `SETUP_SECONDS` (a change of provider or
sender reaches the sender within that time; a read per message would cost a query per
SMS). Gateways share one httpx client, so connections to a provider are pooled across
stores. Credentials go from the setup to the gateway and nowhere else: nothing here logs
them, and a gateway's error carries only the provider's reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import monotonic

import httpx

from ulak.channels.gateways import gateway_for
from ulak.channels.gateways.base import GatewayError, RecipientType, SmsGateway, SmsRequest
from ulak.channels.service import Outcome
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.sms.service import GatewaySetup, capture, gateway_setup

log = logging.getLogger(__name__)

SETUP_SECONDS = 30.0


@dataclass(frozen=True)
class SmsOut:
    """A claimed SMS, as the channel sends it."""

    message_id: int
    store_id: int
    to: str
    text: str
    commercial: bool
    recipient_type: RecipientType = "individual"


class SmsChannel:
    def __init__(self, database: Database, settings: Settings, clock: Clock) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self._client: httpx.AsyncClient | None = None
        self._setups: dict[int, tuple[float, GatewaySetup, SmsGateway | None]] = {}

    async def deliver(self, sms: SmsOut) -> Outcome:
        try:
            setup, gateway = await self._gateway(sms.store_id)
        except ValueError as error:  # a provider unknown to this version, a credential gone
            return Outcome(f"SMS provider not usable: {error}", permanent=True)
        if gateway is None:
            return await self._capture(sms, setup)
        request = SmsRequest(
            reference=str(sms.message_id),
            to=sms.to,
            text=sms.text,
            sender=setup.sender,
            commercial=sms.commercial,
            recipient_type=sms.recipient_type,
        )
        try:
            accepted = await gateway.send(request)
        except GatewayError as error:
            # The gateway's reason names the provider and its code.
            return Outcome(
                error.reason,
                permanent=error.permanent,
                retry_after=error.retry_after,
            )
        except Exception as error:  # an unexpected failure is retried like a temporary one
            log.exception("SMS message %s could not be sent", sms.message_id)
            return Outcome(f"{type(error).__name__}: {error}")
        return Outcome(provider_id=accepted.provider_id)

    async def _capture(self, sms: SmsOut, setup: GatewaySetup) -> Outcome:
        async with self.database.transaction() as session:
            await capture(
                session,
                store_id=sms.store_id,
                message_id=sms.message_id,
                to=sms.to,
                sender=setup.sender,
                text=sms.text,
                at=self.clock.now(),
            )
        return Outcome()

    async def _gateway(self, store_id: int) -> tuple[GatewaySetup, SmsGateway | None]:
        kept = self._setups.get(store_id)
        if kept is not None and monotonic() - kept[0] < SETUP_SECONDS:
            return kept[1], kept[2]
        async with self.database.read() as session:
            setup = await gateway_setup(session, store_id=store_id)
        if kept is not None and kept[2] is not None and kept[1] == setup:
            gateway: SmsGateway | None = kept[2]
        else:
            gateway = None
            if setup.provider is not None:
                gateway = gateway_for(
                    setup.provider,
                    setup.credentials,
                    client=self.client,
                    base_url=self.settings.sms_gateway_url or None,
                    clock=self.clock,
                    callback_url=(
                        f"{self.settings.base_url}/v1/sms/reports/{setup.provider}/{setup.report_token}"
                    ),
                )
        self._setups[store_id] = (monotonic(), setup, gateway)
        return setup, gateway

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.sms_timeout_seconds,
                limits=httpx.Limits(max_connections=self.settings.smtp_pool_size),
            )
        return self._client

    async def close(self) -> None:
        for _, _, gateway in self._setups.values():
            if gateway is not None:
                await gateway.close()
        self._setups.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

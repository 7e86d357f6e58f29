"""The one settings object. Nothing else in ulak reads the environment."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ulak.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ULAK_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    # Links in messages point here; defaults to http://host:port.
    public_url: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    # smtp://user:pass@host:port (STARTTLS when offered) or smtps://...; empty = dev inbox.
    smtp_url: str = ""
    smtp_pool_size: int = Field(default=10, ge=1, le=100)
    smtp_timeout_seconds: float = 30.0
    # DKIM: selector and a PEM private key file (RSA or ed25519); signing is off when unset.
    dkim_selector: str = ""
    dkim_private_key_path: Path | None = None
    # SMS: replaces every SMS provider's public address (a local fake gateway in tests and
    # `bench/sms.py`); empty: each provider's own. How long one gateway request may take.
    sms_gateway_url: str = ""
    sms_timeout_seconds: float = Field(default=15.0, gt=0)
    # Largest request body the API accepts.
    max_body_bytes: int = 1_048_576
    # Workers: how many rows one claim takes, and how long a claim is held before it
    # comes back to other workers (a crashed worker's rows).
    batch_size: int = Field(default=100, ge=1, le=1000)
    lease_seconds: int = Field(default=120, ge=5)
    # How often idle workers look for due rows when nothing woke them.
    poll_seconds: float = Field(default=1.0, gt=0)
    # Worker processes `ulak serve` starts beside the API; 0 runs the workers inside the
    # API process (one core does everything).
    worker_processes: int = Field(default=1, ge=0, le=32)
    # Helper processes each worker process renders emails and builds their MIME in, so
    # the worker (on SQLite the database's one writer) keeps its core for the database;
    # with SMTP configured, a sender process beside them holds the SMTP conversations and
    # records each outcome the moment it is known (`messages/sending.py`). 0 does all of
    # that in the worker itself.
    helper_processes: int = Field(default=1, ge=0, le=32)
    # SQLite: how long a write waits for another process's write lock (an admin command
    # beside a running server) before it fails saying so.
    lock_timeout_seconds: float = Field(default=30.0, gt=0)
    send_max_attempts: int = Field(default=8, ge=1)
    # Bounces: the domain whose MX is `ulak inbound` (or a server that forwards to
    # POST /v1/inbound/email); set, each email's envelope sender is
    # bounce+<message tag>@<this domain> (VERP); empty, the store's sender address.
    bounce_domain: str = ""
    # Messages to one address in a row that soft-bounce (within 30 days; a delivery in
    # between starts again) before it is suppressed.
    soft_bounce_limit: int = Field(default=3, ge=1)
    # The operator's token for POST /v1/inbound/email (any store's reports); a store's own
    # API key posts only reports about its own messages. Empty: store keys only.
    inbound_token: str = Field(default="", repr=False)
    step_max_attempts: int = Field(default=6, ge=1)
    log_level: str = "info"

    @field_validator("database_url")
    @classmethod
    def _default_when_blank(cls, value: str) -> str:
        return value.strip() or DEFAULT_DATABASE_URL

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def public_url_warning(self) -> str | None:
        """Why links in messages are unsafe, when they are: not https, outside development
        (a base on this machine: localhost, a loopback address)."""
        parts = urlsplit(self.base_url)
        if parts.scheme == "https":
            return None
        host = (parts.hostname or "").lower()
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost" or host.endswith(".localhost")
        if local:
            return None
        return (
            f"ULAK_PUBLIC_URL is {self.base_url}, not https: the links in every email "
            "(unsubscribe, pages) travel in clear text and mailbox providers distrust them; "
            "set ULAK_PUBLIC_URL=https://... (the address customers reach ulak at)"
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()

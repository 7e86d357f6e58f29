"""Email out: build the MIME message, sign it with DKIM, send it over a pool of SMTP connections."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import dkim
import dkim.crypto

if TYPE_CHECKING:
    from ulak.config import Settings


@dataclass(frozen=True)
class OutgoingEmail:
    message_id: str  # the full header value, angle brackets included
    from_name: str
    from_address: str
    reply_to: str | None
    to_address: str
    subject: str
    html: str
    text: str
    date: datetime  # aware
    list_unsubscribe_url: str | None  # commercial mail only
    # RFC 2369's mailto beside the https link (commercial mail only), for clients that
    # offer unsubscribing by mail; the https one stays first, with RFC 8058's one click.
    list_unsubscribe_mailto: str | None = None
    # RFC 3834 `Auto-Submitted: auto-generated` on informational mail: it tells vacation
    # responders not to answer an order update. Commercial mail goes without it, as
    # mailbox providers expect of a newsletter.
    auto_submitted: bool = False
    # The message's signed tag, which DSNs and abuse reports return (`suppressions.verp`).
    tag: str = ""
    # The envelope sender (VERP), when not the From address.
    return_path: str | None = None


# Signed when present. Signing List-Unsubscribe(-Post) keeps the RFC 8058 one-click pair
# trustworthy for mailbox providers, which only honour it under a valid signature.
DKIM_HEADERS = (
    b"from",
    b"to",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"auto-submitted",
    b"mime-version",
    b"content-type",
)
# PKCS#8 (RFC 8410) wrapping of an ed25519 key: this fixed prefix, then the 32-byte seed.
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BODY = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.+?)-----END \1-----", re.DOTALL)
_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


class DkimSigner:
    """Signs with dkimpy, relaxed/relaxed. ed25519 is ~14x faster than RSA-2048 in dkimpy, but
    not every receiver verifies it yet, so RSA remains the safe default for a single key."""

    def __init__(self, selector: str, private_key_pem: bytes) -> None:
        if not _SELECTOR.match(selector):
            raise ValueError(f"invalid DKIM selector {selector!r}")
        self.selector = selector
        match = _PEM_BODY.search(private_key_pem)
        if match is None:
            raise ValueError("the DKIM key is not a PEM private key")
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except binascii.Error as exc:
            raise ValueError("the DKIM key's PEM body is not valid base64") from exc
        if match.group(1) == b"PRIVATE KEY" and der.startswith(_ED25519_PKCS8_PREFIX):
            try:
                import nacl.signing  # noqa: F401 - dkimpy signs ed25519 through PyNaCl
            except ImportError as exc:
                raise ValueError("ed25519 DKIM keys need PyNaCl (dkimpy[ed25519])") from exc
            self.algorithm = b"ed25519-sha256"
            # dkimpy takes an ed25519 key as the base64 of the raw seed, not PEM.
            self._key = base64.b64encode(der[len(_ED25519_PKCS8_PREFIX) :])
        else:
            # dkimpy's PEM reader wants LF line ends; it reads PKCS#1 and PKCS#8 RSA keys.
            self._key = private_key_pem.replace(b"\r\n", b"\n")
            try:
                dkim.crypto.parse_pem_private_key(self._key)
            except Exception as exc:
                raise ValueError("the DKIM key is neither an RSA nor an ed25519 key") from exc
            self.algorithm = b"rsa-sha256"

    def sign(self, raw: bytes, *, domain: str) -> bytes:
        signature: bytes = dkim.sign(
            raw,
            self.selector.encode("ascii"),
            domain.encode("idna"),
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self.algorithm,
            include_headers=list(DKIM_HEADERS),
            linesep=b"\r\n",
        )
        return signature + raw

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        selector, path = settings.dkim_selector, settings.dkim_private_key_path
        if not selector and path is None:
            return None
        if not selector or path is None:
            raise ValueError("DKIM needs both ULAK_DKIM_SELECTOR and ULAK_DKIM_PRIVATE_KEY_PATH")
        return cls(selector, path.read_bytes())


# A message is written here, not by the stdlib's email generator: its shape is always the
# same (a multipart/alternative of a text and an HTML part, both UTF-8 quoted-printable),
# and the generator's line-by-line writing was ~1 ms of the sender's CPU per message
# (`bench/stages.py --profile "send messages"`: `email.generator` was the largest part of
# `build_mime`); the stdlib's modern API (EmailMessage) took ~5.5 ms. Headers are still
# folded by compat32's rules (`_Policy`), and `tests/channels/test_email.py` checks that
# the stdlib's parser reads back exactly what was given. Bodies are quoted-printable, not
# 8bit: no 8BITMIME is needed on any hop (a downgrade there would break the DKIM body
# hash), and inlined-CSS HTML gets the soft line breaks SMTP's 998-character limit needs.

# Headers that hold a URL in angle brackets: folding a long one moves it to a continuation
# line, which some mailbox providers do not read there, so they stay on one line.
_UNFOLDED = frozenset({"list-unsubscribe"})


class _Policy(Compat32):
    def fold_binary(self, name: str, value: str) -> bytes:
        line = f"{name}: {value}"
        if (
            isinstance(value, str)
            and line.isascii()
            and "\r" not in line
            and "\n" not in line
            and (len(line) <= 78 or (name.lower() in _UNFOLDED and len(line) <= 998))
        ):
            # A short plain line as compat32 would write it, without building a Header to
            # find out: its folding was a third of the headers' CPU.
            return (line + self.linesep).encode("ascii")
        return super().fold_binary(name, value)


# SMTP's CRLF line ends.
_POLICY = _Policy(linesep="\r\n")


def _header(value: str) -> str:
    # Folded as RFC 2047 words; typeshed only knows str values.
    return value if value.isascii() else cast(str, Header(value, "utf-8"))


def _quoted_printable(body: str) -> bytes:
    """A body as UTF-8 quoted-printable by binascii's C encoder (the stdlib's own is pure
    Python, 5x slower), ending with a line break, with CRLF line ends. Every CR, LF or
    CRLF of the text is a line end, made one before encoding: the encoder drops a CR of
    "\\n\\r\\r\\n" (found by the property test in tests/channels/test_email.py)."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n")
    data = (lines if lines.endswith("\n") else lines + "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def build_mime(mail: OutgoingEmail, *, dkim: DkimSigner | None = None) -> bytes:
    if mail.date.tzinfo is None:
        raise ValueError("OutgoingEmail.date must be timezone-aware")
    # No quoted-printable line can contain "=_", since "=" there is always followed by two
    # hex digits or a line end: the boundary never occurs in a body.
    boundary = f"=_{secrets.token_hex(16)}".encode("ascii")
    headers: list[tuple[str, str]] = [
        ("From", formataddr((mail.from_name, mail.from_address), charset="utf-8")),
        ("To", mail.to_address),
    ]
    if mail.reply_to:
        headers.append(("Reply-To", mail.reply_to))
    headers += [
        ("Subject", _header(mail.subject)),
        ("Date", format_datetime(mail.date)),
        ("Message-ID", mail.message_id),
    ]
    if mail.tag:
        headers.append(("X-Ulak-Message", mail.tag))
    if mail.list_unsubscribe_url:
        targets = [mail.list_unsubscribe_url, mail.list_unsubscribe_mailto]
        headers.append(("List-Unsubscribe", ", ".join(f"<{t}>" for t in targets if t)))
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if mail.auto_submitted:
        headers.append(("Auto-Submitted", "auto-generated"))
    raw = [
        b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\nMIME-Version: 1.0\r\n'
        % boundary,
        *(_POLICY.fold_binary(name, value) for name, value in headers),
        b"\r\n",
    ]
    for body, subtype in ((mail.text, b"plain"), (mail.html, b"html")):
        raw += [
            b'--%s\r\nContent-Type: text/%s; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" % (boundary, subtype),
            _quoted_printable(body),
            b"\r\n",
        ]
    raw.append(b"--%s--\r\n" % boundary)
    message = b"".join(raw)
    if dkim is None:
        return message
    return dkim.sign(message, domain=mail.from_address.rpartition("@")[2])


class SendError(Exception):
    """permanent: the receiving side refused for good (5xx, a bounce); otherwise try later.
    bounce: the refusal came at RCPT or DATA, so it is about the recipient (or what was
    sent to them), not about our sender or the connection."""

    def __init__(
        self, message: str, *, permanent: bool, code: int | None = None, bounce: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.bounce = bounce


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False  # implicit TLS from the first byte (smtps)
    start_tls: bool | None = None  # None: upgrade when offered; True: require; False: never


_STARTTLS_OPTIONS = {"require": True, "off": False}


def parse_smtp_url(url: str) -> SmtpConfig:
    """smtp://[user:pass@]host[:port][?starttls=require|off] or smtps://... (implicit TLS).

    Error messages never repeat the URL: it may hold the password.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(
            f"unsupported SMTP URL scheme {scheme!r}: use smtp:// (STARTTLS when offered) "
            "or smtps:// (implicit TLS)"
        )
    if not parts.hostname:
        raise ValueError("the SMTP URL has no host")
    if parts.path not in ("", "/"):
        raise ValueError("the SMTP URL must not have a path")
    port = parts.port  # raises ValueError on a bad port
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - {"starttls"}
    if unknown:
        raise ValueError(f"unknown SMTP URL option(s): {', '.join(sorted(unknown))}")
    start_tls: bool | None = None
    if "starttls" in options:
        value = options["starttls"][-1].lower()
        if value not in _STARTTLS_OPTIONS:
            raise ValueError("starttls must be 'require' or 'off'")
        if scheme == "smtps":
            raise ValueError("starttls does not apply to smtps://, which is TLS from the start")
        start_tls = _STARTTLS_OPTIONS[value]
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=scheme == "smtps",
        start_tls=start_tls,
    )


class _NoSmtpUtf8(Exception):
    """A non-ASCII address, and a server that does not offer SMTPUTF8."""


async def _mail_options(client: aiosmtplib.SMTP, mail_from: str, rcpt_to: str) -> list[str]:
    """SMTPUTF8 (RFC 6531) for an address with non-ASCII characters, when the server offers
    it; without it such an address cannot be sent, and is refused before any command."""
    if (mail_from + rcpt_to).isascii():
        return []
    if not client.esmtp_extensions:
        await client.ehlo()
    if not client.supports_extension("smtputf8"):
        raise _NoSmtpUtf8(
            "the address has non-ASCII characters and the SMTP server does not offer "
            "SMTPUTF8 to send it"
        )
    return ["SMTPUTF8"]


def _permanent(code: int) -> bool:
    # 503 is a bad sequence of commands: a fault of ours, never the recipient's.
    return code >= 500 and code != 503


def _refusal(exc: Exception) -> SendError | None:
    """The server answered, and said no: permanent for 5xx, temporary otherwise."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused else 550
        text = refused.message if refused else "all recipients refused"
        return SendError(
            f"recipient refused: {code} {text}",
            permanent=_permanent(code),
            code=code,
            # 421 is the server hanging up, not a verdict on the recipient.
            bounce=code != 421,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(
        exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPAuthenticationError
    ):
        what = {
            aiosmtplib.SMTPSenderRefused: "sender refused",
            aiosmtplib.SMTPDataError: "message refused",
        }.get(type(exc), "SMTP error")
        return SendError(
            f"{what}: {exc.code} {exc.message}",
            permanent=_permanent(exc.code),
            code=exc.code,
            bounce=isinstance(exc, aiosmtplib.SMTPDataError) and exc.code != 421,
        )
    return None


class SmtpChannel:
    """Keeps up to pool_size connections open: a new connection per message costs ~40%."""

    def __init__(self, config: SmtpConfig, *, pool_size: int = 10, timeout: float = 30.0) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._config = config
        self._timeout = timeout
        self._idle: list[aiosmtplib.SMTP] = []
        # One permit per connection: a send holds its connection for the whole transaction.
        self._slots = asyncio.Semaphore(pool_size)
        self._closed = False
        self.connections_opened = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self._config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            use_tls=cfg.use_tls,
            start_tls=cfg.start_tls,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            # A wrong password is our configuration, not the recipient's address: retry later.
            raise SendError(
                f"SMTP login to {cfg.host} failed: {exc.code} {exc.message}",
                permanent=False,
                code=exc.code,
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise SendError(
                f"cannot connect to SMTP {cfg.host}:{cfg.port}: {exc}", permanent=False
            ) from exc
        self.connections_opened += 1
        return client

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client = self._idle.pop()
            # The server may have closed it while it sat idle.
            if client.is_connected:
                return client
            client.close()
        return None

    async def _release(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            await self._quit(client)
        else:
            self._idle.append(client)

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        try:
            if client.is_connected:
                await client.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            client.close()

    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        if self._closed:
            raise SendError("the SMTP channel is closed", permanent=False)
        async with self._slots:
            client = self._take_idle()
            reused = client is not None
            while True:
                if client is None:
                    client = await self._connect()
                healthy = False
                try:
                    options = await _mail_options(client, mail_from, rcpt_to)
                    await client.sendmail(mail_from, [rcpt_to], raw, mail_options=options)
                    healthy = True
                    return
                except _NoSmtpUtf8 as exc:
                    healthy = True  # refused before any command: the connection is clean
                    raise SendError(str(exc), permanent=True) from exc
                except ValueError as exc:
                    # An address aiosmtplib cannot encode; it may fail after MAIL was sent,
                    # so the connection is not reused (it would answer the next MAIL with
                    # "503 nested MAIL command", failing another customer's mail).
                    raise SendError(f"invalid address: {exc}", permanent=True) from exc
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                    refusal = _refusal(exc)
                    if refusal is None:
                        raise SendError(f"SMTP error: {exc}", permanent=False) from exc
                    # aiosmtplib already sent RSET; 421 means the server is hanging up, and
                    # 503 (bad sequence of commands) that this connection's state is wrong.
                    healthy = refusal.code not in (421, 503)
                    raise refusal from exc
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
                    if reused and isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                        # A pooled connection the server dropped: one retry on a fresh one.
                        client.close()
                        reused, client = False, None
                        continue
                    raise SendError(f"SMTP connection lost: {exc}", permanent=False) from exc
                except (aiosmtplib.SMTPException, OSError) as exc:
                    raise SendError(f"SMTP error: {exc}", permanent=False) from exc
                finally:
                    if client is not None:
                        if healthy:
                            await self._release(client)
                        else:
                            client.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(client) for client in idle))

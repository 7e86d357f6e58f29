from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import dkim
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ulak.channels.email import (
    DkimSigner,
    OutgoingEmail,
    SendError,
    SmtpChannel,
    SmtpConfig,
    build_mime,
    parse_smtp_url,
)
from ulak.config import Settings

MAIL = OutgoingEmail(
    message_id="<m123.s4@ulak.example>",
    from_name="Ayşe'nin Dükkanı",
    from_address="shop@aysenin.example",
    reply_to="destek@aysenin.example",
    to_address="musteri@example.org",
    subject="Siparişiniz kargoya verildi – #1001",
    html="<p>Merhaba Ayşe, siparişiniz <b>yola çıktı</b>.</p>",
    text="Merhaba Ayşe, siparişiniz yola çıktı.",
    date=dt.datetime(2026, 11, 23, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=3))),
    list_unsubscribe_url=None,
)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_build_mime_has_both_parts_and_the_headers() -> None:
    raw = build_mime(MAIL)
    message = parse(raw)

    assert message["From"] == "Ayşe'nin Dükkanı <shop@aysenin.example>"
    assert message["To"] == "musteri@example.org"
    assert message["Reply-To"] == "destek@aysenin.example"
    assert message["Subject"] == "Siparişiniz kargoya verildi – #1001"
    assert message["Date"] == "Mon, 23 Nov 2026 10:30:00 +0300"
    assert message["Message-ID"] == "<m123.s4@ulak.example>"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert text_part.get_content_charset() == "utf-8"
    assert text_part.get_content() == "Merhaba Ayşe, siparişiniz yola çıktı.\r\n"
    assert html_part.get_content_type() == "text/html"
    assert html_part.get_content() == MAIL.html + "\r\n"
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message
    # On the wire: CRLF only, 7-bit clean headers and bodies.
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()


BODY = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300) | st.text(
    alphabet="ab =.\r\n\tçğışöü€😀-_F", max_size=300
)


@settings(max_examples=300, deadline=None)
@given(text=BODY, html=BODY)
@example(text="\n\r\r", html="a\r\rb\r\n")  # binascii dropped a CR of "\n\r\r\n"
def test_the_parser_reads_back_exactly_the_bodies_given(text: str, html: str) -> None:
    """Whatever the bodies hold (line ends of any kind, "=_", "From ", long lines, emoji),
    a standard parser reads back the same text, with CRLF line ends and one at the end,
    and the wire is 7-bit with CRLF only and lines within 998."""
    raw = build_mime(replace(MAIL, text=text, html=html))
    message = parse(raw)
    text_part, html_part = message.iter_parts()

    def sent(body: str) -> str:
        lines = body.replace("\r\n", "\n").replace("\r", "\n")
        return (lines if lines.endswith("\n") else lines + "\n").replace("\n", "\r\n")

    assert text_part.get_content() == sent(text)
    assert html_part.get_content() == sent(html)
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_build_mime_commercial_mail_has_one_click_unsubscribe() -> None:
    url = "https://ulak.example/u/" + "t" * 120
    raw = build_mime(replace(MAIL, list_unsubscribe_url=url, reply_to=None))
    message = parse(raw)

    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Reply-To" not in message
    # A long URL stays one line, not RFC 2047 encoded-words that providers do not decode.
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw


def test_build_mime_lists_the_mailto_after_the_one_click_link() -> None:
    url = "https://ulak.example/u/1/" + "t" * 120
    mailto = "mailto:shop@aysenin.example?subject=unsubscribe%20" + "t" * 120
    raw = build_mime(replace(MAIL, list_unsubscribe_url=url, list_unsubscribe_mailto=mailto))
    message = parse(raw)

    # https first: RFC 8058's one click (POST) works on it alone; then the mailto.
    assert f"\r\nList-Unsubscribe: <{url}>, <{mailto}>\r\n".encode() in raw
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Auto-Submitted" not in message  # commercial mail is a newsletter, not automatic


def test_build_mime_informational_mail_is_auto_submitted() -> None:
    # A mailto alone means nothing without the https link: it is never listed alone.
    mailto = "mailto:shop@aysenin.example?subject=unsubscribe%20tok"
    message = parse(build_mime(replace(MAIL, auto_submitted=True, list_unsubscribe_mailto=mailto)))

    assert message["Auto-Submitted"] == "auto-generated"
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message


def test_build_mime_refuses_a_naive_date() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_mime(replace(MAIL, date=dt.datetime(2026, 11, 23, 10, 30)))  # noqa: DTZ001


def ed25519_key() -> tuple[bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return pem, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)


def rsa_key(private_format: serialization.PrivateFormat) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(record: bytes, selector: str) -> Any:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        if name == f"{selector}._domainkey.aysenin.example.".encode():
            return record
        return None

    return dnsfunc


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (ed25519_key, b"ed25519-sha256"),
        (lambda: rsa_key(serialization.PrivateFormat.TraditionalOpenSSL), b"rsa-sha256"),
        (lambda: rsa_key(serialization.PrivateFormat.PKCS8), b"rsa-sha256"),
    ],
    ids=["ed25519", "rsa-pkcs1", "rsa-pkcs8"],
)
def test_dkim_signature_verifies(make_key: Any, algorithm: bytes) -> None:
    pem, record = make_key()
    signer = DkimSigner("ulak2026", pem)
    mail = replace(
        MAIL,
        list_unsubscribe_url="https://ulak.example/u/tok",
        list_unsubscribe_mailto="mailto:shop@aysenin.example?subject=unsubscribe%20tok",
        auto_submitted=True,
    )

    raw = build_mime(mail, dkim=signer)

    assert signer.algorithm == algorithm
    assert raw.startswith(b"DKIM-Signature: v=1; a=" + algorithm + b"; c=relaxed/relaxed;")
    assert dkim.verify(raw, dnsfunc=dns_for(record, "ulak2026"))
    signature = parse(raw)["DKIM-Signature"]
    signed = {h.strip() for h in signature.split("h=")[1].split(";")[0].split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "reply-to",
        "mime-version",
        "content-type",
    } <= signed
    # A changed subject no longer verifies.
    tampered = raw.replace(b"Subject: =?utf-8?", b"Subject: =?UTF-8?", 1)
    assert tampered != raw
    assert not dkim.verify(tampered, dnsfunc=dns_for(record, "ulak2026"))


def test_dkim_signer_refuses_bad_keys_and_selectors() -> None:
    pem, _ = ed25519_key()
    with pytest.raises(ValueError, match="selector"):
        DkimSigner("bad selector", pem)
    with pytest.raises(ValueError, match="not a PEM"):
        DkimSigner("s1", b"hello")
    with pytest.raises(ValueError, match="neither an RSA nor an ed25519"):
        DkimSigner("s1", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_dkim_signer_from_settings(tmp_path: Path) -> None:
    pem, _ = ed25519_key()
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem)

    assert DkimSigner.from_settings(Settings(dkim_selector="", dkim_private_key_path=None)) is None
    signer = DkimSigner.from_settings(Settings(dkim_selector="s1", dkim_private_key_path=key_file))
    assert signer is not None
    assert signer.selector == "s1"
    with pytest.raises(ValueError, match="both"):
        DkimSigner.from_settings(Settings(dkim_selector="s1", dkim_private_key_path=None))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://localhost", SmtpConfig(host="localhost", port=25)),
        ("smtp://mail.example.com:587", SmtpConfig(host="mail.example.com", port=587)),
        (
            "smtp://ulak%40shop.example:p%40ss%3Aw%2Frd%23%3F@mail.example.com:587",
            SmtpConfig(
                host="mail.example.com",
                port=587,
                username="ulak@shop.example",
                password="p@ss:w/rd#?",
            ),
        ),
        (
            "smtps://user:secret@smtp.example.com",
            SmtpConfig(
                host="smtp.example.com",
                port=465,
                username="user",
                password="secret",
                use_tls=True,
            ),
        ),
        ("smtp://relay:2525?starttls=require", SmtpConfig("relay", 2525, start_tls=True)),
        ("smtp://relay?starttls=off", SmtpConfig("relay", 25, start_tls=False)),
        ("SMTP://[::1]:1025", SmtpConfig("::1", 1025)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://mail.example.com", "unsupported SMTP URL scheme 'http'"),
        ("mail.example.com:25", "unsupported SMTP URL scheme"),
        ("smtp://", "no host"),
        ("smtp://host/path", "must not have a path"),
        ("smtp://host?verify=no", "unknown SMTP URL option"),
        ("smtp://host?starttls=maybe", "starttls must be"),
        ("smtps://host?starttls=require", "does not apply to smtps"),
        ("smtp://host:99999", "out of range"),
    ],
)
def test_parse_smtp_url_errors(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_smtp_url(url)


def test_smtp_config_repr_hides_the_password() -> None:
    config = parse_smtp_url("smtp://user:hunter2@mail.example.com")

    assert "hunter2" not in repr(config)


@dataclass
class Sink:
    """An aiosmtpd handler keeping what arrived, and refusing chosen recipients."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 Message accepted for delivery"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.connections.add(session.peer)
        if not self.data_reply.startswith("250"):
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self.data_reply


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=unused_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def raw_for(to: str, number: int = 1) -> bytes:
    return build_mime(replace(MAIL, to_address=to, subject=f"Sipariş #{number}"))


async def test_sends_concurrently_over_a_small_pool(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port), pool_size=4, timeout=10)

    await asyncio.gather(
        *(
            channel.send(
                mail_from="bounces@aysenin.example",
                rcpt_to=f"musteri{n}@example.org",
                raw=raw_for(f"musteri{n}@example.org", n),
            )
            for n in range(20)
        )
    )
    await channel.close()

    assert len(handler.received) == 20
    assert sorted(rcpt[0] for _, rcpt, _ in handler.received) == sorted(
        f"musteri{n}@example.org" for n in range(20)
    )
    assert {sender for sender, _, _ in handler.received} == {"bounces@aysenin.example"}
    subjects = {parse(content)["Subject"] for _, _, content in handler.received}
    assert subjects == {f"Sipariş #{n}" for n in range(20)}
    assert 1 <= len(handler.connections) <= 4
    assert channel.connections_opened == len(handler.connections)


@pytest.mark.parametrize("smtputf8", [False, True])
async def test_a_non_ascii_address_does_not_spoil_the_connection_for_others(
    smtputf8: bool,
) -> None:
    """A pooled connection once answered every later MAIL with "503 nested MAIL command"
    after a non-ASCII address failed mid-envelope, failing other customers' mail for good.
    With SMTPUTF8 offered such an address is sent; without it, it alone fails, saying why."""
    handler = Sink()
    controller = Controller(
        handler, hostname="127.0.0.1", port=unused_port(), enable_SMTPUTF8=smtputf8
    )
    controller.start()
    channel = SmtpChannel(SmtpConfig("127.0.0.1", controller.port), pool_size=1, timeout=10)
    addresses = ["a@example.org", "çağrı@example.org", "b@example.org", "ömer@örnek.com.tr"]
    addresses += ["c@example.org"]
    outcomes: dict[str, str] = {}
    try:
        for n, to in enumerate(addresses):
            try:
                await channel.send(mail_from="b@aysenin.example", rcpt_to=to, raw=raw_for(to, n))
            except SendError as error:
                outcomes[to] = f"{'permanent' if error.permanent else 'temporary'}: {error}"
            else:
                outcomes[to] = "sent"
    finally:
        await channel.close()
        controller.stop()

    refused = (
        "permanent: the address has non-ASCII characters and the SMTP server does not offer "
        "SMTPUTF8 to send it"
    )
    non_ascii = {"çağrı@example.org", "ömer@örnek.com.tr"}
    assert outcomes == {
        to: "sent" if smtputf8 or to not in non_ascii else refused for to in addresses
    }
    assert [rcpt for _, rcpt, _ in handler.received] == [
        [to] for to in addresses if smtputf8 or to not in non_ascii
    ]


async def test_a_503_is_our_fault_retried_later_on_a_fresh_connection(
    sink: tuple[Sink, int],
) -> None:
    handler, port = sink
    handler.refuse["x@example.org"] = "503 5.5.1 Error: bad sequence of commands"
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port), pool_size=1, timeout=10)
    with pytest.raises(SendError) as failed:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="x@example.org", raw=raw_for("x@example.org")
        )
    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="y@example.org", raw=raw_for("y@example.org")
    )
    await channel.close()
    assert failed.value.permanent is False
    assert [rcpt for _, rcpt, _ in handler.received] == [["y@example.org"]]
    assert channel.connections_opened == 2


async def test_connections_are_reused_between_sends(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))

    for n in range(3):
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org", n)
        )
    await channel.close()

    assert len(handler.received) == 3
    assert channel.connections_opened == 1


async def test_a_connection_the_server_dropped_is_replaced(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))
    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
    )
    channel._idle[0].close()  # as if the server had timed it out

    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
    )
    await channel.close()

    assert len(handler.received) == 2
    assert channel.connections_opened == 2


async def test_a_pooled_connection_lost_mid_send_is_retried_once(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))
    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
    )

    async def dropped(*args: Any, **kwargs: Any) -> Any:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")

    # Still looks connected, but the server is gone: found out only when sending.
    channel._idle[0].sendmail = dropped  # type: ignore[method-assign]
    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
    )
    await channel.close()

    assert len(handler.received) == 2
    assert channel.connections_opened == 2


async def test_unknown_user_is_a_permanent_failure(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.refuse["yok@example.org"] = "550 no such user"
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))

    with pytest.raises(SendError) as caught:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="yok@example.org", raw=raw_for("yok@example.org")
        )

    assert caught.value.permanent is True
    assert caught.value.code == 550
    assert "no such user" in str(caught.value)
    assert handler.received == []
    # The connection survived the refusal and carries the next message.
    await channel.send(
        mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
    )
    await channel.close()
    assert len(handler.received) == 1
    assert channel.connections_opened == 1


async def test_greylisting_is_a_temporary_failure(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.refuse["gri@example.org"] = "451 4.7.1 greylisted, try again later"
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))

    with pytest.raises(SendError) as caught:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="gri@example.org", raw=raw_for("gri@example.org")
        )
    await channel.close()

    assert caught.value.permanent is False
    assert caught.value.code == 451
    assert handler.received == []


async def test_data_refusal_is_mapped_by_code(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.data_reply = "554 5.7.1 message rejected as spam"
    channel = SmtpChannel(SmtpConfig("127.0.0.1", port))

    with pytest.raises(SendError) as caught:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
        )
    await channel.close()

    assert caught.value.permanent is True
    assert caught.value.code == 554


async def test_no_server_is_a_temporary_failure() -> None:
    channel = SmtpChannel(SmtpConfig("127.0.0.1", unused_port()), timeout=5)

    with pytest.raises(SendError) as caught:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
        )

    assert caught.value.permanent is False
    assert channel.connections_opened == 0


async def test_required_starttls_that_is_not_offered_fails(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    channel = SmtpChannel(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=require"))

    with pytest.raises(SendError) as caught:
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
        )

    assert caught.value.permanent is False
    assert handler.received == []


class Accounts:
    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"ulak@shop.example" and auth_data.password == b"p@ss:w/rd"
        # handled=False: aiosmtpd then answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_login_with_credentials_from_the_url() -> None:
    handler, accounts = Sink(), Accounts()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=unused_port(),
        authenticator=accounts,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        good = parse_smtp_url(
            f"smtp://ulak%40shop.example:p%40ss%3Aw%2Frd@127.0.0.1:{controller.port}"
        )
        channel = SmtpChannel(good)
        await channel.send(
            mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
        )
        await channel.close()

        bad = SmtpChannel(replace(good, password="wrong"))
        with pytest.raises(SendError) as caught:
            await bad.send(
                mail_from="b@aysenin.example", rcpt_to="a@example.org", raw=raw_for("a@example.org")
            )
    finally:
        controller.stop()

    assert len(handler.received) == 1
    assert accounts.logins[0] == (b"ulak@shop.example", b"p@ss:w/rd")
    # A refused login is our configuration, not a bounce; and the password is not in the error.
    assert caught.value.permanent is False
    assert "wrong" not in str(caught.value)

"""Each SMS gateway against a local fake of its provider (tests/sms_fakes/): the request
exactly as documented, every class of answer classified (sent, retry, permanent with the
provider's reason), delivery reports polled and posted, and no credential in any error
text, repr or log line."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.sms_fakes import (
    Answer,
    CallbackSink,
    FakeProvider,
    IletiMerkeziFake,
    NetgsmFake,
    SentSms,
    TwilioFake,
    running,
)
from ulak.channels.gateways import PROVIDERS, gateway_for
from ulak.channels.gateways.base import (
    CallbackRefused,
    DeliveryReport,
    GatewayError,
    SmsAccepted,
    SmsGateway,
    SmsRequest,
)
from ulak.channels.gateways.twilio import sign
from ulak.clock import FrozenClock

TEXT = "Doğum gününüz kutlu olsun Ayşe! DOGUM10 kodu sizin. Ret: 3338'e RET DUKKAN"
CALLBACK = "https://ulak.dukkan.example/v1/sms/callbacks/twilio/tok-9f8e7d6c"
# Thursday 09:00 UTC = 12:00 in Turkey
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def sms(**fields: Any) -> SmsRequest:
    values: dict[str, Any] = {
        "reference": "msg-41",
        "to": "+905321234567",
        "text": TEXT,
        "sender": "DUKKAN",
        "commercial": False,
        "recipient_type": "individual",
    }
    values.update(fields)
    return SmsRequest(**values)


def secrets_of(fake: FakeProvider) -> list[str]:
    if isinstance(fake, NetgsmFake):
        pair = f"{fake.usercode}:{fake.password}"
        return [fake.password, base64.b64encode(pair.encode()).decode()]
    if isinstance(fake, IletiMerkeziFake):
        return [fake.hash]
    assert isinstance(fake, TwilioFake)
    pair = f"{fake.account_sid}:{fake.auth_token}"
    return [fake.auth_token, base64.b64encode(pair.encode()).decode()]


async def refused(
    call: Awaitable[Any], fake: NetgsmFake | IletiMerkeziFake | TwilioFake
) -> GatewayError:
    """The GatewayError the call raises, checked to carry no credential."""
    with pytest.raises(GatewayError) as caught:
        await call
    error = caught.value
    for secret in secrets_of(fake):
        assert secret not in str(error)
        assert secret not in repr(error)
        assert secret not in (error.code or "")
    return error


def outcome(error: GatewayError) -> tuple[bool, str | None, str, float | None]:
    return error.permanent, error.code, error.reason, error.retry_after


@pytest.fixture
async def client(caplog: pytest.LogCaptureFixture) -> AsyncIterator[httpx.AsyncClient]:
    # httpx logs each request at INFO and DEBUG: keep every record to check for secrets.
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=0.5) as client:
        yield client


@pytest.fixture(scope="module")
def netgsm_server() -> Iterator[NetgsmFake]:
    with running(NetgsmFake()) as fake:
        yield fake


@pytest.fixture
def netgsm_fake(
    netgsm_server: NetgsmFake, caplog: pytest.LogCaptureFixture
) -> Iterator[NetgsmFake]:
    netgsm_server.reset()
    yield netgsm_server
    assert netgsm_server.problems == []
    for secret in secrets_of(netgsm_server):
        assert secret not in caplog.text


@pytest.fixture(scope="module")
def im_server() -> Iterator[IletiMerkeziFake]:
    with running(IletiMerkeziFake()) as fake:
        yield fake


@pytest.fixture
def im_fake(
    im_server: IletiMerkeziFake, caplog: pytest.LogCaptureFixture
) -> Iterator[IletiMerkeziFake]:
    im_server.reset()
    yield im_server
    assert im_server.problems == []
    for secret in secrets_of(im_server):
        assert secret not in caplog.text


@pytest.fixture(scope="module")
def twilio_server() -> Iterator[TwilioFake]:
    with running(TwilioFake()) as fake:
        yield fake


@pytest.fixture
def twilio_fake(
    twilio_server: TwilioFake, caplog: pytest.LogCaptureFixture
) -> Iterator[TwilioFake]:
    twilio_server.reset()
    yield twilio_server
    assert twilio_server.problems == []
    for secret in secrets_of(twilio_server):
        assert secret not in caplog.text


def netgsm(
    fake: NetgsmFake, client: httpx.AsyncClient, *, password: str | None = None
) -> SmsGateway:
    return gateway_for(
        "netgsm",
        {"usercode": fake.usercode, "password": password or fake.password},
        client=client,
        base_url=fake.url,
        clock=FrozenClock(NOW),
    )


def iletimerkezi(
    fake: IletiMerkeziFake,
    client: httpx.AsyncClient,
    *,
    hash: str | None = None,
) -> SmsGateway:
    return gateway_for(
        "iletimerkezi",
        {"key": fake.key, "hash": hash or fake.hash},
        client=client,
        base_url=fake.url,
    )


def twilio(
    fake: TwilioFake,
    client: httpx.AsyncClient,
    *,
    token: str | None = None,
    callback_url: str | None = CALLBACK,
) -> SmsGateway:
    return gateway_for(
        "twilio",
        {"account_sid": fake.account_sid, "auth_token": token or fake.auth_token},
        client=client,
        base_url=fake.url,
        callback_url=callback_url,
    )


# --- the registry


def test_providers_name_their_credentials() -> None:
    assert PROVIDERS == {
        "netgsm": ("usercode", "password"),
        "iletimerkezi": ("key", "hash"),
        "twilio": ("account_sid", "auth_token"),
    }


async def test_gateway_for_refuses_unknown_providers_and_missing_credentials() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="unknown SMS provider") as unknown:
            gateway_for("clickatell", {}, client=client)
        with pytest.raises(ValueError, match="needs") as missing:
            gateway_for("twilio", {"account_sid": "AC1", "auth_token": ""}, client=client)
    assert str(unknown.value) == (
        "unknown SMS provider 'clickatell'; known: netgsm, iletimerkezi, twilio"
    )
    assert str(missing.value) == "twilio needs auth_token"


async def test_a_gateways_repr_names_no_credential() -> None:
    netgsm_fake, im_fake, twilio_fake = NetgsmFake(), IletiMerkeziFake(), TwilioFake()
    async with httpx.AsyncClient() as client:
        gateways = [
            (netgsm(netgsm_fake, client), netgsm_fake),
            (iletimerkezi(im_fake, client), im_fake),
            (twilio(twilio_fake, client), twilio_fake),
        ]
        for gateway, fake in gateways:
            assert gateway.name in {"netgsm", "iletimerkezi", "twilio"}
            for secret in secrets_of(fake):
                assert secret not in repr(gateway)
    assert [type(g).__name__ for g, _ in gateways] == [
        "NetgsmGateway",
        "IletiMerkeziGateway",
        "TwilioGateway",
    ]


# --- Netgsm


async def test_netgsm_sends_as_documented(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    accepted = await netgsm(netgsm_fake, client).send(sms())

    assert accepted == SmsAccepted(provider_id="1700000000000001")
    [request] = netgsm_fake.requests
    assert (request.method, request.path) == ("POST", "/sms/rest/v2/send")
    expected_auth = base64.b64encode(b"8508001234:netgsm-parola-9x").decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert json.loads(request.body) == {
        "msgheader": "DUKKAN",
        "messages": [{"msg": TEXT, "no": "5321234567"}],
        "encoding": "TR",
        "iysfilter": "0",
    }
    assert netgsm_fake.accepted == [SentSms("1700000000000001", "5321234567", TEXT, "DUKKAN", "0")]


@pytest.mark.parametrize(
    ("commercial", "recipient_type", "iysfilter"),
    [(False, "merchant", "0"), (True, "individual", "11"), (True, "merchant", "12")],
)
async def test_netgsm_iys_filter_follows_the_message_class(
    netgsm_fake: NetgsmFake,
    client: httpx.AsyncClient,
    commercial: bool,
    recipient_type: str,
    iysfilter: str,
) -> None:
    await netgsm(netgsm_fake, client).send(
        sms(commercial=commercial, recipient_type=recipient_type)
    )
    assert [s.iys for s in netgsm_fake.accepted] == [iysfilter]


@pytest.mark.parametrize(
    ("code", "description", "expected"),
    [
        ("20", "Mesaj metni hatalı", (True, "20", "Netgsm 20: message text problem or too long"
                                      " (Mesaj metni hatalı)", None)),
        ("40", "", (True, "40", "Netgsm 40: sender header (msgheader) not defined on the account",
                    None)),
        ("50", "", (True, "50", "Netgsm 50: the account cannot send İYS-checked messages", None)),
        ("51", "", (True, "51", "Netgsm 51: no İYS brand code on the account", None)),
        ("70", "Hatalı parametre", (True, "70", "Netgsm 70: invalid or missing parameter"
                                    " (Hatalı parametre)", None)),
        ("80", "", (False, "80", "Netgsm 80: sending limit reached", 60.0)),
        ("85", "", (False, "85", "Netgsm 85: more than 20 tasks to the same number within a"
                    " minute", 60.0)),
        ("100", "", (False, "100", "Netgsm 100: Netgsm system error", None)),
        ("101", "", (False, "101", "Netgsm 101: Netgsm system error", None)),
        ("99", "", (False, "99", "Netgsm gave an unexpected answer (HTTP 406, code 99)", None)),
    ],
)  # fmt: skip
async def test_netgsm_classifies_each_send_code(
    netgsm_fake: NetgsmFake,
    client: httpx.AsyncClient,
    code: str,
    description: str,
    expected: tuple[bool, str, str, float | None],
) -> None:
    netgsm_fake.answer_next(
        "send", Answer(406, {"code": code, "jobid": None, "description": description})
    )
    error = await refused(netgsm(netgsm_fake, client).send(sms()), netgsm_fake)
    assert outcome(error) == expected
    assert netgsm_fake.accepted == []


async def test_netgsm_bad_credentials_fail_at_once(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    gateway = netgsm(netgsm_fake, client, password="eski-parola")
    error = await refused(gateway.send(sms()), netgsm_fake)
    assert outcome(error) == (
        True,
        "30",
        "Netgsm 30: bad credentials, no API access, or this IP is not allowed"
        " (Geçersiz kullanıcı adı, şifre veya API erişim izni yok)",
        None,
    )
    assert "eski-parola" not in str(error)
    assert netgsm_fake.accepted == []


async def test_netgsm_5xx_and_timeouts_are_retried(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    gateway = netgsm(netgsm_fake, client)
    netgsm_fake.answer_next("send", Answer(503, "<html>Service Unavailable</html>"))
    netgsm_fake.answer_next("send", Answer(200, {"code": "00", "jobid": "1"}, delay=1.0))

    unavailable = await refused(gateway.send(sms()), netgsm_fake)
    slow = await refused(gateway.send(sms()), netgsm_fake)

    assert outcome(unavailable) == (False, "503", "Netgsm answered HTTP 503", None)
    assert outcome(slow) == (False, "timeout", "Netgsm did not answer in time (ReadTimeout)", None)
    assert netgsm_fake.accepted == []


async def test_netgsm_refuses_a_foreign_number_without_asking(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    error = await refused(netgsm(netgsm_fake, client).send(sms(to="+4915112345678")), netgsm_fake)
    assert outcome(error) == (
        True,
        "number",
        "Netgsm sends only to Turkish numbers (+90 and 10 digits)",
        None,
    )
    assert netgsm_fake.requests == []


async def test_netgsm_reports_are_polled_by_job_id(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    gateway = netgsm(netgsm_fake, client)
    ids = [(await gateway.send(sms(to=f"+90532123456{i}"))).provider_id for i in range(4)]
    netgsm_fake.report(ids[0], 1)
    netgsm_fake.report(ids[2], 3, 105)
    netgsm_fake.report(ids[3], 11, 101)

    reports = await gateway.poll_reports(ids)

    delivered_at = datetime.fromisoformat("2026-12-01T12:00:05+03:00")
    assert reports == [
        DeliveryReport(ids[0], "delivered", at=delivered_at),
        DeliveryReport(ids[1], "pending"),
        DeliveryReport(
            ids[2],
            "failed",
            "Netgsm status 3: invalid or restricted number (error 105: wrong number)",
        ),
        DeliveryReport(
            ids[3], "failed", "Netgsm status 11: rejected by the operator (error 101: inbox full)"
        ),
    ]
    request = netgsm_fake.requests[-1]
    assert request.path == "/sms/rest/v2/report"
    assert json.loads(request.body) == {
        "startdate": "26.11.2026 12:00:00",
        "stopdate": "03.12.2026 12:00:00",
        "jobids": ids,
        "pagesize": 100,
        "pagenumber": 0,
    }


async def test_netgsm_no_records_is_no_report(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    assert await netgsm(netgsm_fake, client).poll_reports(["1799999999999999"]) == []


async def test_netgsm_asks_for_100_jobs_at_a_time(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    ids = [str(1800000000000000 + i) for i in range(150)]
    assert await netgsm(netgsm_fake, client).poll_reports(ids) == []
    assert [json.loads(r.body)["jobids"] for r in netgsm_fake.requests] == [ids[:100], ids[100:]]


async def test_netgsm_report_limit_is_a_retry_after_a_minute(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    gateway = netgsm(netgsm_fake, client)
    for _ in range(10):
        assert await gateway.poll_reports(["1799999999999999"]) == []
    error = await refused(gateway.poll_reports(["1799999999999999"]), netgsm_fake)
    assert outcome(error) == (
        False,
        "80",
        "Netgsm 80: sending limit reached (Sorgulama sınır aşımı, dakikada 10 kez sorgulanabilir)",
        60.0,
    )


async def test_netgsm_takes_no_callbacks(client: httpx.AsyncClient) -> None:
    gateway = netgsm(NetgsmFake(), client)
    with pytest.raises(CallbackRefused):
        gateway.parse_callback(url="https://x.example/cb", headers={}, body=b'{"jobid": "1"}')


# --- İleti Merkezi


async def test_iletimerkezi_sends_as_documented(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    accepted = await iletimerkezi(im_fake, client).send(sms())

    assert accepted == SmsAccepted(provider_id="4281")
    [request] = im_fake.requests
    assert (request.method, request.path) == ("POST", "/v1/send-sms/json")
    assert "authorization" not in request.headers
    assert json.loads(request.body) == {
        "request": {
            "authentication": {"key": "im-key-507caf2e", "hash": "im-hash-0db4e316d"},
            "order": {
                "sender": "DUKKAN",
                "sendDateTime": [],
                "iys": "0",
                "message": {"text": TEXT, "receipents": {"number": ["5321234567"]}},
            },
        }
    }
    assert im_fake.accepted == [SentSms("4281", "5321234567", TEXT, "DUKKAN", "0")]


@pytest.mark.parametrize(
    ("recipient_type", "iys_list"), [("individual", "BIREYSEL"), ("merchant", "TACIR")]
)
async def test_iletimerkezi_commercial_messages_are_iys_checked(
    im_fake: IletiMerkeziFake,
    client: httpx.AsyncClient,
    recipient_type: str,
    iys_list: str,
) -> None:
    await iletimerkezi(im_fake, client).send(sms(commercial=True, recipient_type=recipient_type))
    order = json.loads(im_fake.requests[0].body)["request"]["order"]
    assert (order["iys"], order["iysList"]) == ("1", iys_list)
    assert [s.iys for s in im_fake.accepted] == [iys_list]


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (402, "Bakiye yetersiz", "İleti Merkezi 402: insufficient balance (Bakiye yetersiz)"),
        (450, "Gönderilen başlık kullanıma uygun değil",
         "İleti Merkezi 450: sender header not approved on the account"
         " (Gönderilen başlık kullanıma uygun değil)"),
        (452, "Mesaj alıcıları hatalı",
         "İleti Merkezi 452: invalid recipients (or the number is on the account's block list)"
         " (Mesaj alıcıları hatalı)"),
        (453, "Sipariş boyutu aşıldı",
         "İleti Merkezi 453: message longer than 7 SMS (Sipariş boyutu aşıldı)"),
        (454, "", "İleti Merkezi 454: message text is empty"),
        (459, "", "İleti Merkezi 459: sender header is empty"),
        (466, "Geçersiz numara", "İleti Merkezi 466: invalid number (Geçersiz numara)"),
        (468, "", "İleti Merkezi 468: İYS flag missing"),
        (469, "", "İleti Merkezi 469: İYS list missing"),
        (470, "", "İleti Merkezi 470: İYS brand code missing"),
        (422, "Doğrulama hatası", "İleti Merkezi 422: invalid request (Doğrulama hatası)"),
    ],
)  # fmt: skip
async def test_iletimerkezi_refusals_are_permanent_with_the_reason(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient, code: int, message: str, reason: str
) -> None:
    body = {"response": {"status": {"code": str(code), "message": message}}}
    im_fake.answer_next("send", Answer(code, body))
    error = await refused(iletimerkezi(im_fake, client).send(sms()), im_fake)
    assert outcome(error) == (True, str(code), reason, None)
    assert im_fake.accepted == []


async def test_iletimerkezi_bad_credentials_and_header_fail_at_once(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    wrong_hash = await refused(iletimerkezi(im_fake, client, hash="eski").send(sms()), im_fake)
    turkish_header = await refused(
        iletimerkezi(im_fake, client).send(sms(sender="DÜKKAN")), im_fake
    )
    assert outcome(wrong_hash) == (
        True,
        "401",
        "İleti Merkezi 401: bad credentials or this IP is not allowed (Üyelik bilgileri hatalı)",
        None,
    )
    assert outcome(turkish_header) == (
        True,
        "460",
        "İleti Merkezi 460: sender header longer than 11 characters or has Turkish letters"
        " (Gönderici başlığı 11 karakterden uzun veya Türkçe harf içeriyor)",
        None,
    )
    assert im_fake.accepted == []


async def test_iletimerkezi_the_same_text_twice_is_a_permanent_duplicate(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    gateway = iletimerkezi(im_fake, client)
    await gateway.send(sms())
    error = await refused(gateway.send(sms(reference="msg-42")), im_fake)
    assert outcome(error) == (
        True,
        "451",
        "İleti Merkezi 451: duplicate: same text to the same number within 10 minutes"
        " (Tekrar eden sipariş)",
        None,
    )
    assert [s.provider_id for s in im_fake.accepted] == ["4281"]


async def test_iletimerkezi_outages_and_timeouts_are_retried(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    gateway = iletimerkezi(im_fake, client)
    unavailable = {"response": {"status": {"code": "503", "message": "Servis kullanılamıyor"}}}
    im_fake.answer_next("send", Answer(503, unavailable, headers={"Retry-After": "30"}))
    im_fake.answer_next("send", Answer(502, "<html>Bad Gateway</html>"))
    im_fake.answer_next("send", Answer(200, {}, delay=1.0))

    errors = [await refused(gateway.send(sms()), im_fake) for _ in range(3)]

    assert [outcome(e) for e in errors] == [
        (False, "503", "İleti Merkezi 503: Servis kullanılamıyor", 30.0),
        (False, "502", "İleti Merkezi 502: unavailable", None),
        (False, "timeout", "İleti Merkezi did not answer in time (ReadTimeout)", None),
    ]
    assert im_fake.accepted == []


async def test_iletimerkezi_reports_are_polled_per_order(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    gateway = iletimerkezi(im_fake, client)
    ids = [(await gateway.send(sms(to=f"+90532123456{i}"))).provider_id for i in range(3)]
    im_fake.report(ids[0], 111)
    im_fake.report(ids[2], 112)

    reports = await gateway.poll_reports([*ids, "999999"])

    assert reports == [
        DeliveryReport(ids[0], "delivered"),
        DeliveryReport(ids[1], "pending"),
        DeliveryReport(ids[2], "failed", "İleti Merkezi 112: not delivered"),
    ]
    assert json.loads(im_fake.requests[-1].body)["request"]["order"] == {
        "id": "999999",
        "page": 1,
        "rowCount": 1000,
    }


async def test_iletimerkezi_webhook_reports_are_read(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    gateway = iletimerkezi(im_fake, client)
    order_id = (await gateway.send(sms())).provider_id
    url = "/v1/sms/callbacks/iletimerkezi/tok-1a2b3c"
    with running(CallbackSink()) as sink:
        for status in ["accepted", "delivered", "undelivered"]:
            posted = await im_fake.post_webhook(sink.url + url, order_id, status, client)
            assert posted.status_code == 200

    reports = [
        gateway.parse_callback(url=sink.url + url, headers=r.headers, body=r.body)
        for r in sink.requests
    ]
    assert reports == [
        [DeliveryReport(order_id, "pending")],
        [DeliveryReport(order_id, "delivered")],
        [DeliveryReport(order_id, "failed", "İleti Merkezi: undelivered")],
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"report": "delivered"}',
        b'{"report": {"packet_id": 104525848, "status": "read"}}',
        b'{"report": {"status": "delivered"}}',
        b'{"report": {"packet_id": "1; DROP", "status": "delivered"}}',
        b'{"report": {"packet_id": true, "status": "delivered"}}',
    ],
)
async def test_iletimerkezi_refuses_malformed_webhooks(
    client: httpx.AsyncClient, body: bytes
) -> None:
    gateway = iletimerkezi(IletiMerkeziFake(), client)
    with pytest.raises(CallbackRefused):
        gateway.parse_callback(url="https://x.example/cb", headers={}, body=body)


# --- Twilio


async def test_twilio_sends_as_documented(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    accepted = await twilio(twilio_fake, client).send(sms())

    [sent] = twilio_fake.accepted
    assert accepted == SmsAccepted(provider_id=sent.provider_id, segments=1)
    assert sent == SentSms(sent.provider_id, "+905321234567", TEXT, "DUKKAN", "", CALLBACK)
    [request] = twilio_fake.requests
    assert (request.method, request.path) == (
        "POST",
        f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json",
    )
    pair = f"{twilio_fake.account_sid}:{twilio_fake.auth_token}".encode()
    assert request.headers["authorization"] == f"Basic {base64.b64encode(pair).decode()}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(httpx.QueryParams(request.body.decode())) == {
        "To": "+905321234567",
        "Body": TEXT,
        "From": "DUKKAN",
        "StatusCallback": CALLBACK,
    }


async def test_twilio_sends_through_a_messaging_service(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    service = "MG" + "9752274e9e519418a7406176694466fa"
    await twilio(twilio_fake, client, callback_url=None).send(sms(sender=service))
    assert dict(httpx.QueryParams(twilio_fake.requests[0].body.decode())) == {
        "To": "+905321234567",
        "Body": TEXT,
        "MessagingServiceSid": service,
    }


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": info, "status": status}


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (400, 21211, "Twilio 21211: invalid 'To' number"),
        (400, 21610, "Twilio 21610: recipient replied STOP (unsubscribed)"),
        (400, 21408, "Twilio 21408: sending to this region is not enabled on the account"),
        (400, 21612, "Twilio 21612: cannot route from this sender to the 'To' number"),
        (400, 21614, "Twilio 21614: 'To' is not a mobile number"),
        (400, 21999, "Twilio 21999: Something new"),
    ],
)
async def test_twilio_refusals_are_permanent_with_the_reason(
    twilio_fake: TwilioFake, client: httpx.AsyncClient, status: int, code: int, reason: str
) -> None:
    twilio_fake.answer_next("send", Answer(status, twilio_error(status, code, "Something new")))
    error = await refused(twilio(twilio_fake, client).send(sms()), twilio_fake)
    assert outcome(error) == (True, str(code), reason, None)
    assert twilio_fake.accepted == []


async def test_twilio_bad_credentials_fail_at_once(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    gateway = twilio(twilio_fake, client, token="revoked-token-123")
    error = await refused(gateway.send(sms()), twilio_fake)
    assert outcome(error) == (True, "20003", "Twilio 20003: authentication failed", None)
    assert "revoked-token-123" not in str(error)


async def test_twilio_throttling_outages_and_timeouts_are_retried(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    gateway = twilio(twilio_fake, client)
    twilio_fake.answer_next(
        "send",
        Answer(429, twilio_error(429, 20429, "Too Many Requests"), headers={"Retry-After": "7"}),
    )
    twilio_fake.answer_next(
        "send",
        Answer(
            429,
            "Too Many Requests",
            headers={
                "Date": "Thu, 03 Dec 2026 09:00:00 GMT",
                "Retry-After": "Thu, 03 Dec 2026 09:01:30 GMT",
            },
        ),
    )
    twilio_fake.answer_next("send", Answer(500, twilio_error(500, 20500, "Internal Error")))
    twilio_fake.answer_next("send", Answer(503, "<html>down</html>"))
    twilio_fake.answer_next("send", Answer(201, {}, delay=1.0))

    errors = [await refused(gateway.send(sms()), twilio_fake) for _ in range(5)]

    assert [outcome(e) for e in errors] == [
        (False, "20429", "Twilio 20429: too many requests", 7.0),
        (False, "429", "Twilio 429: too many requests", 90.0),
        (False, "500", "Twilio answered HTTP 500", None),
        (False, "503", "Twilio answered HTTP 503", None),
        (False, "timeout", "Twilio did not answer in time (ReadTimeout)", None),
    ]
    assert twilio_fake.accepted == []


async def test_twilio_status_callbacks_are_verified_and_read(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    gateway = twilio(twilio_fake, client)
    sids = [(await gateway.send(sms(to=f"+90532123456{i}"))).provider_id for i in range(4)]
    twilio_fake.report(sids[0], "delivered")
    twilio_fake.report(sids[1], "sent")
    twilio_fake.report(sids[2], "undelivered", 30003)
    twilio_fake.report(sids[3], "failed", 30010)

    reports = []
    for sid in sids:
        headers, body = twilio_fake.callback(sid)
        reports += gateway.parse_callback(url=CALLBACK, headers=headers, body=body)

    assert reports == [
        DeliveryReport(sids[0], "delivered"),
        DeliveryReport(sids[1], "pending"),
        DeliveryReport(
            sids[2], "failed", "Twilio undelivered (30003: unreachable destination handset)"
        ),
        DeliveryReport(sids[3], "failed", "Twilio failed (30010)"),
    ]


async def test_twilio_posts_callbacks_that_verify(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    with running(CallbackSink()) as sink:
        url = f"{sink.url}/v1/sms/callbacks/twilio/tok-9f8e7d6c"
        gateway = twilio(twilio_fake, client, callback_url=url)
        sid = (await gateway.send(sms())).provider_id
        twilio_fake.report(sid, "delivered")
        assert (await twilio_fake.post_callback(sid, client)).status_code == 200
    [posted] = sink.requests
    assert posted.path == "/v1/sms/callbacks/twilio/tok-9f8e7d6c"
    assert gateway.parse_callback(url=url, headers=posted.headers, body=posted.body) == [
        DeliveryReport(sid, "delivered")
    ]


async def test_twilio_refuses_callbacks_it_did_not_sign(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    gateway = twilio(twilio_fake, client)
    sid = (await gateway.send(sms())).provider_id
    twilio_fake.report(sid, "undelivered", 30003)
    headers, body = twilio_fake.callback(sid)
    forged = body.replace(b"MessageStatus=undelivered", b"MessageStatus=delivered")
    params = parse_qsl(body.decode())
    other_headers = {"X-Twilio-Signature": sign(b"someone-elses-token", CALLBACK, params)}

    attempts = [
        (CALLBACK, headers, forged),
        (CALLBACK + "x", headers, body),
        (CALLBACK, {}, body),
        (CALLBACK, other_headers, body),
        (CALLBACK, {"X-Twilio-Signature": "not base64"}, body),
    ]
    for url, attempt_headers, attempt_body in attempts:
        with pytest.raises(CallbackRefused):
            gateway.parse_callback(url=url, headers=attempt_headers, body=attempt_body)
    # the genuine one, with the header's name in any case, passes
    lower = {name.lower(): value for name, value in headers.items()}
    assert gateway.parse_callback(url=CALLBACK, headers=lower, body=body) == [
        DeliveryReport(sid, "failed", "Twilio undelivered (30003: unreachable destination handset)")
    ]


async def test_twilio_polls_only_without_a_callback_url(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    with_callback = twilio(twilio_fake, client)
    sid = (await with_callback.send(sms())).provider_id
    twilio_fake.report(sid, "undelivered", 21610)
    assert await with_callback.poll_reports([sid]) == []
    assert len(twilio_fake.requests) == 1

    polled = twilio(twilio_fake, client, callback_url=None)
    missing = "SM" + "0" * 32
    reports = await polled.poll_reports([sid, missing])

    assert reports == [
        DeliveryReport(
            sid,
            "failed",
            "Twilio undelivered (21610: recipient replied STOP (unsubscribed))",
            at=datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC),
        )
    ]
    assert [(r.method, r.path) for r in twilio_fake.requests[1:]] == [
        ("GET", f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages/{sid}.json"),
        ("GET", f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages/{missing}.json"),
    ]


# --- across the three


async def test_an_unreachable_provider_is_a_retry(client: httpx.AsyncClient) -> None:
    fakes: list[NetgsmFake | IletiMerkeziFake | TwilioFake] = [
        NetgsmFake(),
        IletiMerkeziFake(),
        TwilioFake(),
    ]
    names = ["Netgsm", "İleti Merkezi", "Twilio"]
    for fake, name in zip(fakes, names, strict=True):
        fake.port = 1  # tcpmux: privileged and never served, so the connection is refused
        if isinstance(fake, NetgsmFake):
            gateway = netgsm(fake, client)
        elif isinstance(fake, IletiMerkeziFake):
            gateway = iletimerkezi(fake, client)
        else:
            gateway = twilio(fake, client, callback_url=None)
        send = await refused(gateway.send(sms()), fake)
        poll = await refused(gateway.poll_reports(["4281"]), fake)
        expected = (False, "network", f"{name} could not be reached (ConnectError)", None)
        assert outcome(send) == expected
        assert outcome(poll) == expected


async def test_netgsm_keeps_the_reports_read_before_the_query_limit(
    netgsm_fake: NetgsmFake, client: httpx.AsyncClient
) -> None:
    gateway = netgsm(netgsm_fake, client)
    jobid = (await gateway.send(sms())).provider_id
    netgsm_fake.report(jobid, 1)
    for _ in range(9):
        await gateway.poll_reports(["1799999999999999"])
    ids = [jobid] + [str(1800000000000000 + i) for i in range(149)]

    reports = await gateway.poll_reports(ids)  # the 10th query answers, the 11th is refused

    assert [(r.provider_id, r.status) for r in reports] == [(jobid, "delivered")]
    assert [json.loads(r.body)["jobids"] for r in netgsm_fake.requests[-2:]] == [
        ids[:100],
        ids[100:],
    ]


async def test_iletimerkezi_report_polls_with_bad_credentials_fail(
    im_fake: IletiMerkeziFake, client: httpx.AsyncClient
) -> None:
    error = await refused(
        iletimerkezi(im_fake, client, hash="eski").poll_reports(["4281"]), im_fake
    )
    assert outcome(error) == (
        True,
        "401",
        "İleti Merkezi 401: bad credentials or this IP is not allowed (Üyelik bilgileri hatalı)",
        None,
    )


async def test_twilio_report_polls_retry_when_twilio_is_down(
    twilio_fake: TwilioFake, client: httpx.AsyncClient
) -> None:
    gateway = twilio(twilio_fake, client, callback_url=None)
    sid = (await gateway.send(sms())).provider_id
    twilio_fake.answer_next("report", Answer(503, "<html>down</html>"))
    error = await refused(gateway.poll_reports([sid]), twilio_fake)
    assert outcome(error) == (False, "503", "Twilio answered HTTP 503", None)
    assert await gateway.poll_reports([sid]) == [
        DeliveryReport(sid, "pending", at=datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC))
    ]

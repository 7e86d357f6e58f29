"""Outside development mode an endpoint must be https on a public address, checked when
it is added and again at every delivery, on the address the connection then goes to."""

from __future__ import annotations

import ipaddress

import pytest

from tests.support import StoreKey
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import deliveries
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.webhooks import net
from ulak.webhooks.queue import enqueue
from ulak.webhooks.service import add_endpoint, deliveries_of, endpoints_of
from ulak.worker import Workers

REFUSED = [
    ("http://hooks.example.com/", "must be https"),
    ("ftp://hooks.example.com/", "must be http(s)"),
    ("https://user:s3cr3t@hooks.example.com/", "may not carry a user name or password"),
    ("https://127.0.0.1/", "a loopback address"),
    ("https://127.8.9.10:8443/x", "a loopback address"),
    ("https://localhost/", "a loopback address"),
    ("https://10.1.2.3/", "a private address"),
    ("https://172.16.0.1/", "a private address"),
    ("https://192.168.1.10/", "a private address"),
    ("https://169.254.169.254/latest/meta-data/", "a link-local address"),
    ("https://100.64.0.1/", "a non-public address"),
    ("https://0.0.0.0/", "an unspecified address"),
    ("https://224.0.0.251/", "a multicast address"),
    ("https://240.0.0.1/", "a private address"),
    ("https://[::1]/", "a loopback address"),
    ("https://[::]/", "an unspecified address"),
    ("https://[::ffff:127.0.0.1]/", "a loopback address"),
    ("https://[::ffff:10.0.0.1]/", "a private address"),
    ("https://[fe80::1]/", "a link-local address"),
    ("https://[fc00::1]/", "a private address"),
    ("https://[ff02::1]/", "a multicast address"),
    # 6to4 and Teredo carry the IPv4 address a relay reaches; site-local is still routed.
    ("https://[2002:7f00:1::]/", "a loopback address"),
    ("https://[2002:a00:5::]/", "a private address"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "a private address"),
    ("https://[fec0::1]/", "a private address"),
    ("https://192.0.0.8/", "a non-public address"),
    # 127.0.0.1 written as one decimal number, and in hexadecimal parts.
    ("https://2130706433/", "a loopback address"),
    ("https://0x7f.1/", "a loopback address"),
    # Octal: httpx refuses the form itself.
    ("https://0177.0.0.1/", "not a valid URL"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_refused_outside_development_mode(url: str, why: str) -> None:
    with pytest.raises(net.Refused) as refused:
        await net.check(url, development=False)
    assert why in refused.value.message
    assert "s3cr3t" not in refused.value.message


async def test_adding_a_refused_url_adds_nothing(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    with pytest.raises(net.Refused, match="a link-local address"):
        async with db.transaction() as session:
            await add_endpoint(
                session,
                store_id=store.id,
                url="https://169.254.169.254/",
                events=["*"],
                development=False,
                clock=clock,
            )
    async with db.read() as session:
        assert await endpoints_of(session, store_id=store.id) == []


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    async def resolve(host: str, port: int) -> list[net.Address]:
        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(net, "resolve", resolve)


async def test_a_name_with_any_private_address_is_refused(
    db: Database, store: StoreKey, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"hooks.shop.example": ["93.184.216.34", "10.0.0.5"]})
    async with db.transaction() as session:
        with pytest.raises(net.Refused, match=r"resolves to a private address \(10\.0\.0\.5\)"):
            await add_endpoint(
                session,
                store_id=store.id,
                url="https://hooks.shop.example/in",
                events=["*"],
                development=False,
                clock=clock,
            )


async def test_a_name_that_rebinds_to_loopback_after_it_was_added_is_not_called(
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    workers: Workers,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"hooks.shop.example": ["93.184.216.34"]}
    fake_dns(monkeypatch, answers)
    async with db.transaction() as session:
        shown, _ = await add_endpoint(
            session,
            store_id=store.id,
            url=f"https://hooks.shop.example:{receiver.port}/hook",
            events=["*"],
            development=False,
            clock=clock,
        )
        await enqueue(
            session,
            store_id=store.id,
            event_type="coupon.redeemed",
            event_id="evt_1",
            occurred_at=clock.now(),
            data={},
            customer_id=None,
            now=clock.now(),
        )
    answers["hooks.shop.example"] = ["127.0.0.1"]
    await workers.drain()
    assert receiver.requests == []
    assert await deliveries(db) == [(store.id, shown.id, "coupon.redeemed", "evt_1", "pending", 1)]
    async with db.read() as session:
        (shown_delivery,) = await deliveries_of(session, store_id=store.id)
    assert shown_delivery.last_error == (
        "the webhook host 'hooks.shop.example' resolves to a loopback address (127.0.0.1); "
        "only public addresses are called outside development mode"
    )


async def test_the_connection_goes_to_the_checked_address_under_the_url_s_name(
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    workers: Workers,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Development mode (the receiver is loopback), through a name only the fake DNS knows:
    # the request reaches it, so it went to the resolved address, named as the URL names it.
    fake_dns(monkeypatch, {"receiver.shop.test": ["127.0.0.1"]})
    async with db.transaction() as session:
        _, secret = await add_endpoint(
            session,
            store_id=store.id,
            url=f"http://receiver.shop.test:{receiver.port}/hook",
            events=["coupon.redeemed"],
            development=True,
            clock=clock,
        )
        await enqueue(
            session,
            store_id=store.id,
            event_type="coupon.redeemed",
            event_id="evt_1",
            occurred_at=clock.now(),
            data={},
            customer_id=None,
            now=clock.now(),
        )
    receiver.secret = secret
    await workers.drain()
    (request,) = receiver.requests
    assert request.headers["host"] == f"receiver.shop.test:{receiver.port}"
    assert (await deliveries(db))[0][4] == "delivered"


def test_ip_classes() -> None:
    public = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"]
    assert [net.refusal(ipaddress.ip_address(a)) for a in public] == [None, None, None]

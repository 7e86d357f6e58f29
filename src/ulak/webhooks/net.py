"""Where a webhook may be POSTed: the SSRF rules, and a request pinned to the address
that was checked.

A store names the URL, so without these rules it could make ulak's worker call its own
network (a database's HTTP port, a cloud's metadata service at 169.254.169.254). Outside
development mode a URL must be https, and every address its host resolves to must be a
public unicast one (`refusal`). The check runs when the endpoint is added and again at
every delivery, where the request then goes to the address that was checked, with the
name in its Host header and TLS SNI, so a name that resolves differently the second
time (DNS rebinding) cannot move the connection elsewhere. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from ulak.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
# IETF protocol assignments (192.0.0.0/24; Python counts some, such as 192.0.0.8, global).
_PROTOCOL_ASSIGNMENTS = ipaddress.IPv4Network("192.0.0.0/24")


class Refused(Invalid):
    """A webhook URL ulak will not call; the message says why (never a secret: a URL with
    credentials is refused before anything else is said about it)."""


def refusal(address: Address) -> str | None:
    """Why ulak may not connect to this address outside development mode; None: it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1; a 6to4 (2002::/16) or Teredo address carries
        # the IPv4 one a relay would reach, judged as that; site-local fec0::/10 is
        # deprecated but still routed on old networks, and Python counts it as global.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            address = embedded
        elif address in _SITE_LOCAL:
            return "a private address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global or (
        isinstance(address, ipaddress.IPv4Address) and address in _PROTOCOL_ASSIGNMENTS
    ):  # 100.64.0.0/10 (carrier-grade NAT) and the like
        return "a non-public address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to call the host there."""

    url: httpx.URL
    # The address connected to (None: in development mode, the name as the system
    # resolves it at connection time).
    address: str | None

    def request(self, content: bytes, headers: dict[str, str]) -> httpx.Request:
        """The POST to the checked address, named as the URL names it (Host, SNI)."""
        url = self.url
        extensions: dict[str, object] = {}
        if self.address is not None:
            headers = {**headers, "host": _host_header(url)}
            if url.scheme == "https":
                extensions["sni_hostname"] = url.host
            url = url.copy_with(host=self.address)
        return httpx.Request("POST", url, content=content, headers=headers, extensions=extensions)


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port is not None else host


def parse(url: str, *, development: bool) -> httpx.URL:
    """The URL if its form is allowed: http(s), https outside development mode, a host,
    no credentials in it."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        raise Refused("the webhook URL is not a valid URL") from None
    if parsed.userinfo:
        raise Refused("the webhook URL may not carry a user name or password")
    if parsed.scheme not in ("http", "https"):
        raise Refused("the webhook URL must be http(s)")
    if parsed.scheme != "https" and not development:
        raise Refused("the webhook URL must be https (http only in development mode)")
    if not parsed.host:
        raise Refused("the webhook URL has no host")
    if len(str(parsed)) > 2000:
        raise Refused("the webhook URL is longer than 2000 characters")
    return parsed


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to. A literal in any form the system accepts
    (2130706433, 0177.0.0.1, 0x7f.1) resolves to the address it means, so what is
    checked is what would be connected to. Tests replace this function."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"the webhook host {host!r} does not resolve") from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"the webhook host {host!r} does not resolve")
    return addresses


async def check(url: str, *, development: bool) -> Target:
    """The URL checked and pinned to an address, or `Refused` with the reason."""
    parsed = parse(url, development=development)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await resolve(parsed.host, port)
    if not development:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise Refused(
                    f"the webhook host {parsed.host!r} resolves to {why} ({address}); "
                    "only public addresses are called outside development mode"
                )
    return Target(parsed, str(addresses[0]))

"""Which message a bounce or complaint is about: a tag of the message's id, signed with its
store's link secret, in the envelope sender (VERP: `bounce+<tag>@<bounce domain>`, where
the receiving server sends its DSN) and in an `X-Ulak-Message` header (which DSNs and
abuse reports return with the original headers). The signature keeps a forged report from
naming, and so suppressing, anyone else's address."""

from __future__ import annotations

import hashlib
import hmac
import re

HEADER = "X-Ulak-Message"
# 64 bits of HMAC-SHA256: a forger must guess it online, one report per try.
_MAC_HEX = 16
_TAG = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{0,18})\.([0-9a-f]{16})(?![0-9a-f])")


def _mac(message_id: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"ulak-bounce:{message_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:_MAC_HEX]


def tag_of(message_id: int, secret: str) -> str:
    return f"{message_id}.{_mac(message_id, secret)}"


def return_path(tag: str, bounce_domain: str) -> str:
    return f"bounce+{tag}@{bounce_domain}"


def tags_in(text: str) -> list[tuple[int, str]]:
    """Every (message id, signature) written as a tag in `text`, in order."""
    return [(int(number), mac) for number, mac in _TAG.findall(text)]


def verifies(message_id: int, mac: str, secret: str) -> bool:
    return hmac.compare_digest(_mac(message_id, secret), mac)


def tag_of_address(address: str, bounce_domain: str) -> tuple[int, str] | None:
    """The tag a VERP address at the bounce domain carries; None for any other address."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != bounce_domain.lower() or not local.lower().startswith("bounce+"):
        return None
    found = tags_in(local[len("bounce+") :])
    return found[0] if found else None

"""Marketplace relay addresses: the one list of them.

A marketplace that hands a seller an order often hides the buyer's address behind one of
its own that forwards to the buyer while the order lasts. The marketplace allows such an
address for the order's service messages only, and the buyer never gave the shop consent
through it: ulak sends it informational messages, never commercial ones.

What marks a relay is the address's domain, not the order's `channel`: the domain is what
decides where the mail goes, is known on every message without a query, and a customer who
bought on a marketplace once and gave the shop their own address at another order is not
a relay. Each domain here was checked against orders as the marketplace's API returns them:

- Trendyol: `pf+<code>@trendyolmail.com` (its order API's `customerEmail`).
- Amazon: `<code>@marketplace.amazon.<tld>` (the SP-API's anonymised `BuyerEmail`, on each
  country's site: .com, .com.tr, .de, .co.uk, ...).
- TikTok Shop: `<code>@scs.tiktokw.us`.

Hepsiburada, n11, Çiçeksepeti and Pazarama: no relay domain could be confirmed from their
documented order formats (integrations that lack the buyer's address invent one of their
own, which is not the marketplace's), so none is listed; add one here when it is known.
"""

from __future__ import annotations

# Domains whose every address is a relay.
RELAY_DOMAINS = frozenset({"trendyolmail.com", "scs.tiktokw.us"})
# A relay when the domain is one of these followed by a country's suffix.
RELAY_DOMAIN_PREFIXES = ("marketplace.amazon.",)

MARKETPLACE_RELAY = "marketplace relay address"


def is_relay(address: str) -> bool:
    domain = address.rpartition("@")[2].strip().lower()
    return domain in RELAY_DOMAINS or domain.startswith(RELAY_DOMAIN_PREFIXES)

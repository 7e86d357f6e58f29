"""The sending policy: what happens to each message as the sender claims it.

`decide` is a pure function of the message, what is known of its recipient, the store's
rules and the recipient's commercial messages already let go: send it, postpone it to a
moment (quiet hours, a frequency cap; the message stays queued with the reason), or skip
it (no consent, a marketplace relay address, over a cap in a journey that says skip).
Only commercial messages are ever held: an informational one (an order confirmation, a
shipment) always goes at once, whatever the hour or the count.

In order, for a commercial message:
1. A marketplace relay address (`relays.py`): skipped.
2. Consent for its channel (`consent.service.refusal_of`): none recorded or revoked,
   skipped; a merchant recipient needs no grant where the store relaxes it.
3. Frequency caps per customer and channel, over rolling windows (a day is any 24 h, a
   week any 7 days): with N messages allowed per window W and the customer's releases in
   the last W at r1 <= ... <= rk (k >= N), the next allowed moment is r(k-N+1) + W; over
   several caps, the latest of them. A journey with `over_cap: skip` skips instead.
4. Sending hours per channel in the recipient's local time (the customer's own zone,
   else the store's), DST-correct through zoneinfo: outside them, postponed to the
   window's next opening (after any cap's moment).

Priority (`decide_all`): the commercial messages of one customer and channel that one
claim decides go in order of their journey's priority (higher first), then the moment
they were due, then their id; each one let go counts against the caps for the next. So
when messages wait for the same slot (postponed to the same moment, or due together),
the one of the higher-priority journey takes it and the others wait for the next.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ulak.consent.service import ConsentState, refusal_of
from ulak.policy.relays import MARKETPLACE_RELAY, is_relay
from ulak.stores.models import Store

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Hours:
    """The local hours a message may arrive: [start, end), across midnight when start >
    end ("22:00-06:00")."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Hours:
        start, sep, end = text.partition("-")
        try:
            hours = cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
        except ValueError:
            hours = None
        if not sep or hours is None or hours.start == hours.end:
            raise ValueError(f"{text!r} is not a window of local hours like 09:00-20:00")
        return hours

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def opens(self, at: datetime, zone: ZoneInfo) -> datetime:
        """The first moment from `at` inside the window (`at` itself when it is inside)."""
        local = at.astimezone(zone)
        if self.contains(local.time()):
            return at
        day = local.date() if local.time() < self.start else local.date() + DAY
        # A start in a DST gap (02:30 on the spring change) maps, with fold=0, to the
        # moment the clocks jumped past it: the first moment the window is open that day.
        return datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Cap:
    limit: int  # 0: no cap
    window: timedelta
    per: str  # "day", "week": for the reason

    def opens(self, released: Sequence[datetime], now: datetime) -> datetime:
        """The first moment from `now` at which fewer than `limit` releases fall in the
        window before it."""
        recent = sorted(r for r in released if r > now - self.window)
        if self.limit <= 0 or len(recent) < self.limit:
            return now
        return recent[len(recent) - self.limit] + self.window


@dataclass(frozen=True)
class ChannelRules:
    hours: Hours | None = None
    caps: tuple[Cap, ...] = ()


@dataclass(frozen=True)
class Rules:
    """A store's sending policy."""

    zone: str = "Europe/Istanbul"
    merchant_opt_out: bool = False
    channels: Mapping[str, ChannelRules] = field(default_factory=dict)

    def of(self, channel: str) -> ChannelRules:
        return self.channels.get(channel, _NO_RULES)


_NO_RULES = ChannelRules()


def rules_of(store: Store) -> Rules:
    def hours(text: str | None) -> Hours | None:
        return Hours.parse(text) if text else None

    return Rules(
        zone=store.timezone,
        merchant_opt_out=store.merchant_opt_out,
        channels={
            "email": ChannelRules(
                hours(store.sending_hours_email),
                (Cap(store.cap_email_day, DAY, "day"), Cap(store.cap_email_week, WEEK, "week")),
            ),
            "sms": ChannelRules(
                hours(store.sending_hours_sms),
                (Cap(store.cap_sms_day, DAY, "day"), Cap(store.cap_sms_week, WEEK, "week")),
            ),
        },
    )


@dataclass(frozen=True)
class Candidate:
    """A claimed message, as the policy sees it."""

    id: int
    store_id: int
    customer_id: int | None  # None: a message to the shop itself
    channel: str
    legal_class: str
    to_address: str
    due_at: datetime
    priority: int = 50
    over_cap: str = "postpone"
    # The policy let it go before (a retry after a failed delivery): it counted already.
    released: bool = False
    consent: ConsentState | None = None  # on the message's channel
    recipient_type: str = "individual"
    zone: str | None = None  # the customer's own time zone


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Postpone:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Send | Postpone | Skip
SEND = Send()


@functools.cache
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_of(candidate: Candidate, rules: Rules) -> ZoneInfo:
    """The recipient's zone: their own when it is a known one, else the store's."""
    own = _zone(candidate.zone) if candidate.zone else None
    return own or _zone(rules.zone) or ZoneInfo("UTC")


def decide(
    candidate: Candidate, rules: Rules, *, now: datetime, released: Sequence[datetime] = ()
) -> Decision:
    """Send, postpone or skip one message; `released`: when the policy let the recipient's
    earlier commercial messages on this channel go (the last week's, at least)."""
    if candidate.legal_class != "commercial" or candidate.customer_id is None:
        return SEND
    if is_relay(candidate.to_address):
        return Skip(MARKETPLACE_RELAY)
    refused = refusal_of(
        candidate.consent,
        channel=candidate.channel,
        recipient_type=candidate.recipient_type,
        merchant_opt_out=rules.merchant_opt_out,
    )
    if refused is not None:
        return Skip(refused)
    channel = rules.of(candidate.channel)
    at, reason = now, ""
    if not candidate.released:
        for cap in channel.caps:
            opens = cap.opens(released, now)
            if opens > at:
                at = opens
                reason = f"frequency cap: {cap.limit} commercial {candidate.channel} a {cap.per}"
        if reason and candidate.over_cap == "skip":
            return Skip(reason)
    if channel.hours is not None:
        zone = zone_of(candidate, rules)
        opens = channel.hours.opens(at, zone)
        if opens > at:
            at = opens
            reason = reason or (
                f"quiet hours: {candidate.channel} only {channel.hours} ({zone.key})"
            )
    return SEND if at <= now else Postpone(at, reason)


def decide_all(
    candidates: Sequence[Candidate],
    rules: Mapping[int, Rules],
    *,
    now: datetime,
    released: Mapping[tuple[int, str], Sequence[datetime]],
) -> dict[int, Decision]:
    """`decide` for one claim's messages, by message id: a customer's commercial messages
    on one channel in order of priority, each one let go counting for the next.
    `rules` by store id; `released` by (customer id, channel)."""
    decisions: dict[int, Decision] = {}
    counted: dict[tuple[int, str], list[datetime]] = {}
    ranked = sorted(candidates, key=lambda c: (-c.priority, c.due_at, c.id))
    for candidate in ranked:
        if candidate.customer_id is None or candidate.legal_class != "commercial":
            decisions[candidate.id] = SEND
            continue
        key = (candidate.customer_id, candidate.channel)
        seen = counted.setdefault(key, list(released.get(key, ())))
        decision = decide(candidate, rules[candidate.store_id], now=now, released=seen)
        if isinstance(decision, Send) and not candidate.released:
            seen.append(now)
        decisions[candidate.id] = decision
    return decisions

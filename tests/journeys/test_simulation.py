"""`ulak simulate`'s engine: scenarios for every shipped journey, with the exact moment of
each message and each exit, and scenario files that are wrong, named by their line."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import ulak_cli
from ulak.journeys.scenario import ScenarioError, load_scenario, load_scenario_file
from ulak.journeys.simulation import Ended, Timeline, Unfinished, Unsent, simulate

STORE = 'store: {name: "Ayşe\'nin Dükkanı", locale: tr, timezone: Europe/Istanbul, currency: TRY}'
EXAMPLES = Path(__file__).parents[2] / "examples"
START = 'start: "2026-03-02T09:00:00+03:00"'  # a Monday
CUSTOMER = "customer: {id: c-1042, email: ayse@example.com, first_name: Ayşe}"
PLACED = f"""\
  - at: "+0s"
    event:
      type: order.placed
      {CUSTOMER}
      data:
        order_id: "1001"
        number: "#1001"
        items: [{{title: Seramik kupa, quantity: 2, price: "249.95"}}]
        total: "499.90"
"""


def scenario(
    *events: str, journeys: str = "", run_until: str = "", consent: str | None = CUSTOMER
) -> str:
    """A scenario's YAML: the store, its journeys (a new store's by default), events.

    Unless `consent` is None, the customer it names first grants consent to commercial
    email (as at a checkout box), so that commercial journeys may send to them.
    """
    lines = [STORE, START]
    lines += [f"journeys: {journeys}"] if journeys else []
    granted = [event("+0s", "consent.updated", GRANTED, consent)] if consent else []
    lines += ["events:", "".join([*granted, *events]).rstrip("\n")]
    lines += [f'run_until: "{run_until}"'] if run_until else []
    return "\n".join(lines) + "\n"


GRANTED = "{channel: email, status: granted, source: checkout}"


def event(at: str, type_: str, data: str, customer: str = "customer: {id: c-1042}") -> str:
    return f'  - at: "{at}"\n    event: {{type: {type_}, {customer}, data: {data}}}\n'


def sent(timeline: Timeline) -> list[tuple[str, str | None, str, str]]:
    """(local time, journey, template, to) of every message delivered, in order."""
    return [
        (timeline.local(m.at).isoformat(), m.journey, m.template, m.to) for m in timeline.messages
    ]


def run(text: str, base: Path | None = None) -> Timeline:
    return simulate(load_scenario(text, "scenario.yaml", base=base))


# The shipped journeys, each on its own and together.


def test_order_confirmation_is_sent_at_once_with_the_order() -> None:
    timeline = run(scenario(PLACED, journeys="[order-confirmation]"))
    assert sent(timeline) == [
        (
            "2026-03-02T09:00:00+03:00",
            "order-confirmation",
            "order_confirmation",
            "ayse@example.com",
        )
    ]
    (message,) = timeline.messages
    assert message.channel == "email"
    assert message.customer == "c-1042"
    assert message.subject == "Siparişiniz alındı – #1001"
    assert message.text.startswith("Merhaba Ayşe,\n\nSiparişinizi aldık")
    assert "Seramik kupa × 2: 499,90 ₺" in message.text
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


def test_every_shipped_journey_along_one_order() -> None:
    shipped = (
        "{order_id: '1001', shipment_id: SH-1, carrier: Aras Kargo, tracking_number: AR1,"
        " tracking_url: 'https://kargo.example/AR1'}"
    )
    timeline = run(
        scenario(
            PLACED,
            event("+2h", "order.preparing", "{order_id: '1001'}"),
            event("2026-03-03T10:30:00+03:00", "order.shipped", shipped),
            event("+1d4h", "shipment.updated", "{shipment_id: SH-1, status: out_for_delivery}"),
            event("+3h", "shipment.updated", "{shipment_id: SH-1, status: delivered}"),
            # The shop reports the delivery too: still one email.
            event("+1h", "order.delivered", "{order_id: '1001'}"),
            run_until="+30d",
        )
    )
    to = "ayse@example.com"
    # She consented to commercial email (the scenario's first event): the thank-you
    # journey's emails and the store's special day (8 March) reach her too.
    assert sent(timeline) == [
        ("2026-03-02T09:00:00+03:00", "order-confirmation", "order_confirmation", to),
        ("2026-03-02T11:00:00+03:00", "order-preparing", "order_preparing", to),
        ("2026-03-02T12:00:00+03:00", "thank-you", "thank_you", to),
        ("2026-03-03T10:30:00+03:00", "order-shipped", "order_shipped", to),
        ("2026-03-04T14:30:00+03:00", "delivery-problems", "delivery_problem", to),
        ("2026-03-04T17:30:00+03:00", "order-delivered", "order_delivered", to),
        # Two days after the shop's own delivery report, the later of the two.
        ("2026-03-06T18:30:00+03:00", "satisfaction-survey", "survey_request", to),
        ("2026-03-08T10:00:00+03:00", "special-days", "special_day", to),
        ("2026-03-19T17:30:00+03:00", "thank-you", "thank_you_offer", to),
    ]
    assert [m.subject for m in timeline.messages] == [
        "Siparişiniz alındı – #1001",
        "Siparişiniz hazırlanıyor – #1001",
        "Teşekkür ederiz, Ayşe",
        "Siparişiniz kargoya verildi – #1001",
        "Siparişiniz bugün dağıtımda – #1001",
        "Siparişiniz teslim edildi – #1001",
        "#1001 numaralı siparişiniz nasıldı?",
        "Dünya Kadınlar Günü kutlu olsun, Ayşe!",
        "Bir sonraki siparişinize özel, Ayşe",
    ]
    assert "https://kargo.example/AR1" in timeline.messages[3].text
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.end == datetime(2026, 4, 3, 15, 30, tzinfo=UTC)


def test_order_shipped_is_sent_once_per_parcel() -> None:
    def parcel(at: str, shipment: str) -> str:
        data = f"{{order_id: '1001', shipment_id: {shipment}, carrier: Aras Kargo}}"
        return event(at, "order.shipped", data)

    timeline = run(
        scenario(
            PLACED,
            parcel("+1d", "SH-1"),
            parcel("+1h", "SH-2"),
            parcel("+1h", "SH-1"),  # told again about the first parcel
            journeys="[order-shipped]",
        )
    )
    assert sent(timeline) == [
        ("2026-03-03T09:00:00+03:00", "order-shipped", "order_shipped", "ayse@example.com"),
        ("2026-03-03T10:00:00+03:00", "order-shipped", "order_shipped", "ayse@example.com"),
    ]


def test_order_preparing_exits_when_the_order_is_cancelled_before_its_email() -> None:
    # The cancellation arrives with the news that the order is being prepared, before
    # the worker runs the send step: the customer gets no "being prepared" email.
    timeline = run(
        scenario(
            PLACED,
            event("+1h", "order.preparing", "{order_id: '1001'}"),
            event("+0s", "order.cancelled", "{order_id: '1001', reason: out of stock}"),
            journeys="[order-confirmation, order-preparing]",
        )
    )
    assert sent(timeline) == [
        (
            "2026-03-02T09:00:00+03:00",
            "order-confirmation",
            "order_confirmation",
            "ayse@example.com",
        )
    ]
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 3, 2, 7, 0, tzinfo=UTC),
            journey="order-preparing",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.cancelled",
        )
    ]
    assert timeline.endings[0].describe() == (
        "enrollment of order-preparing for c-1042 exited: exit_when: order.cancelled"
    )
    assert timeline.unsent == []


def test_a_cancellation_of_another_order_does_not_stop_the_email() -> None:
    timeline = run(
        scenario(
            PLACED,
            event("+1h", "order.preparing", "{order_id: '1001'}"),
            event("+0s", "order.cancelled", "{order_id: '999'}"),
            journeys="[order-preparing]",
        )
    )
    assert sent(timeline) == [
        ("2026-03-02T10:00:00+03:00", "order-preparing", "order_preparing", "ayse@example.com")
    ]
    assert timeline.endings == []


def test_order_delivered_from_the_carriers_status_or_the_shop() -> None:
    timeline = run(
        scenario(
            PLACED,
            event("+1d", "order.delivered", "{order_id: '1001'}"),
            event("+1d", "order.delivered", "{order_id: '1001'}"),
            journeys="[order-delivered]",
        )
    )
    assert sent(timeline) == [
        ("2026-03-03T09:00:00+03:00", "order-delivered", "order_delivered", "ayse@example.com")
    ]


def test_a_scenario_without_journeys_runs_what_a_new_store_has_on() -> None:
    placed_and_preparing = (PLACED, event("+1m", "order.preparing", "{order_id: '1001'}"))
    # A day: after that the win-back journey (a new store's too) would wait for the lapse.
    timeline = run(scenario(*placed_and_preparing, run_until="+1d"))
    assert [(m.journey, timeline.local(m.at).strftime("%H:%M")) for m in timeline.messages] == [
        ("order-confirmation", "09:00"),
        ("order-preparing", "09:01"),
        ("thank-you", "12:00"),  # commercial: she consented (the scenario's first event)
    ]


# Journeys of the shop's own: waits move the clock, they do not sleep.

WAITS = """\
key: thank-you
name: Thanks later
legal_class: informational
enabled: false
trigger: {{event: order.placed}}
reentry: once_per_order
exit_when:
  - event: order.refunded
    match: "event.data.order_id == enrollment.order_id"
steps:
  - {wait}
  - send: email
    template: order_delivered
"""


def journey_file(tmp_path: Path, wait: str) -> Path:
    path = tmp_path / "thank-you.yaml"
    path.write_text(WAITS.format(wait=wait), encoding="utf-8")
    return path


def test_a_wait_moves_the_clock_without_sleeping(tmp_path: Path) -> None:
    journey_file(tmp_path, "wait: 2h")
    began = time.monotonic()
    # Switched off in its file: a simulation runs it, since it is tried before it is on.
    timeline = run(scenario(PLACED, journeys="[thank-you.yaml]"), base=tmp_path)
    assert time.monotonic() - began < 30
    assert sent(timeline) == [
        ("2026-03-02T11:00:00+03:00", "thank-you", "order_delivered", "ayse@example.com")
    ]
    # Without run_until it runs until nothing is left to do.
    assert timeline.end == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_a_wait_until_a_time_of_day_in_the_stores_time_zone(tmp_path: Path) -> None:
    journey_file(tmp_path, 'wait: {until: "09:30", weekdays: [mon, wed]}')
    text = scenario(PLACED, journeys="[thank-you.yaml]")
    # New York: the order comes on Monday at 01:00 there, Istanbul's 09:00.
    text = text.replace("timezone: Europe/Istanbul", "timezone: America/New_York")
    timeline = run(text, base=tmp_path)
    assert sent(timeline) == [
        ("2026-03-02T09:30:00-05:00", "thank-you", "order_delivered", "ayse@example.com")
    ]
    # The next one waits for Wednesday: Monday's 09:30 has passed.
    later = run(
        text.replace('"2026-03-02T09:00:00+03:00"', '"2026-03-02T18:00:00+03:00"'), tmp_path
    )
    assert sent(later) == [
        ("2026-03-04T09:30:00-05:00", "thank-you", "order_delivered", "ayse@example.com")
    ]


def test_an_exit_during_a_wait_and_what_is_left_at_the_end(tmp_path: Path) -> None:
    journey_file(tmp_path, "wait: 3d")
    second = PLACED.replace('"1001"', '"1002"').replace('"+0s"', '"+1h"')
    timeline = run(
        scenario(
            PLACED,
            second,
            event("+1d", "order.refunded", "{order_id: '1001'}"),
            journeys="[thank-you.yaml]",
            run_until="+1d",
        ),
        base=tmp_path,
    )
    assert timeline.messages == []
    assert timeline.endings == [
        Ended(
            at=datetime(2026, 3, 3, 7, 0, tzinfo=UTC),
            journey="thank-you",
            customer="c-1042",
            status="exited",
            reason="exit_when: order.refunded",
        )
    ]
    assert timeline.unfinished == [
        Unfinished(
            journey="thank-you",
            customer="c-1042",
            next_run_at=datetime(2026, 3, 5, 7, 0, tzinfo=UTC),
            waiting_for=None,
            failure=None,
        )
    ]
    assert timeline.end == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)


def test_a_step_that_keeps_failing_is_retried_with_backoff_then_given_up(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(
        WAITS.format(wait="wait: 1h").replace("order_delivered", "no_such_template"),
        encoding="utf-8",
    )
    timeline = run(scenario(PLACED, journeys="[broken.yaml]"), base=tmp_path)
    assert timeline.messages == []
    (ended,) = timeline.endings
    # Tried at 10:00, then 30 s, 1, 2, 4 and 8 minutes later: six attempts.
    assert ended.at == datetime(2026, 3, 2, 7, 15, 30, tzinfo=UTC)
    assert (ended.journey, ended.status) == ("thank-you", "failed")
    assert ended.reason.startswith("gave up: step 1: ")
    assert "no_such_template" in ended.reason


def test_a_customer_without_an_email_address_gets_nothing_and_the_timeline_says_why() -> None:
    placed = PLACED.replace(CUSTOMER, "customer: {id: c-7, phone: '0532 111 22 33'}")
    timeline = run(scenario(placed, journeys="[order-confirmation]"))
    assert timeline.messages == []
    assert timeline.unsent == [
        Unsent(
            at=datetime(2026, 3, 2, 6, 0, tzinfo=UTC),
            journey="order-confirmation",
            template="order_confirmation",
            to="",
            customer="c-7",
            status="skipped",
            reason="the customer has no email address",
        )
    ]


def test_the_throwaway_database_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run(scenario(PLACED, journeys="[order-confirmation]"))
    assert list(tmp_path.iterdir()) == []
    # Also when the run stops on a problem: an id reused for another event.
    placed = PLACED.replace("    event:\n", "    event:\n      id: evt-1\n")
    with pytest.raises(ScenarioError):
        run(scenario(placed, placed.replace("499.90", "1.00")))
    assert list(tmp_path.iterdir()) == []


# Scenario files that are wrong: each problem names its line.


def problems(text: str, base: Path | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        run(text, base)
    return [str(problem) for problem in caught.value.problems]


def test_unknown_keys_bad_times_and_unknown_journeys_name_their_lines() -> None:
    text = """\
store: {locale: tr, timezon: Europe/Istanbul}
journeys: [order-confirmation, welcome]
start: "2026-03-02T09:00:00"
events:
  - at: "+5x"
    event: {type: order.placed, customer: {id: c-1}, data: {order_id: "1", total: "1.00"}}
  - when: "+1h"
    event: {type: order.placed, customer: {id: c-1}, data: {order_id: "2", total: "1.00"}}
runs_until: "+1d"
"""
    assert problems(text) == [
        'scenario.yaml:1: store.timezon: unknown field "timezon"',
        'scenario.yaml:3: start: "2026-03-02T09:00:00" has no offset: use an ISO 8601 time'
        " with its offset, like 2026-03-02T09:00:00+03:00",
        'scenario.yaml:5: events[0].at: invalid time "+5x": a + and a duration, like +0s, +2h'
        " or +1d12h, or an ISO 8601 time with its offset, like 2026-03-02T09:00:00+03:00",
        'scenario.yaml:7: events[1].when: unknown field "when"',
        'scenario.yaml:9: runs_until: unknown field "runs_until"',
    ]
    # Once the shape is right, the journeys are looked up.
    text = scenario(PLACED, journeys="[order-confirmation, welcom]")
    assert problems(text) == [
        'scenario.yaml:3: journeys[1]: unknown journey "welcom": the shipped ones are'
        " abandoned-cart, back-in-stock, birthday, confirm-back-in-stock, delivery-problems,"
        " order-confirmation, order-delivered, order-preparing, order-shipped, replenishment,"
        " return-updates, returns, review-request, satisfaction-make-good, satisfaction-survey,"
        " special-days, thank-you, welcome, win-back, or give a file"
    ]


def test_an_event_is_checked_as_the_api_checks_it() -> None:
    text = scenario(
        PLACED.replace('total: "499.90"', "total: 499.90"),
        "  - at: 2026-03-02T08:00:00+03:00\n"
        "    event:\n"
        "      type: order.placed\n"
        "      data: {order_id: '2', total: '1.00', items: [{price: '1.00'}]}\n"
        "  - event: {type: order.cancelled, customer: {id: c-1}, data: {}, extra: true}\n",
        run_until="2026-03-01T00:00:00+03:00",
        consent=None,
    )
    assert problems(text) == [
        "scenario.yaml:12: events[0].event.data.total: money must be a decimal string like"
        ' "1249.90", not a JSON number',
        "scenario.yaml:13: events[1].at: 2026-03-02T08:00:00+03:00 is before the event before"
        " it (2026-03-02T09:00:00+03:00)",
        "scenario.yaml:15: events[1].event.customer: a order.placed event needs a customer"
        " with an id, email or phone",
        "scenario.yaml:16: events[1].event.data.items[0].title: Field required",
        # An envelope with a field the API does not know is refused before its data.
        'scenario.yaml:17: events[2].event.extra: unknown field "extra"',
        "scenario.yaml:18: run_until: 2026-03-01T00:00:00+03:00 is before the last event"
        " (2026-03-02T09:00:00+03:00)",
    ]


def test_a_journey_file_with_problems_names_its_own_lines(tmp_path: Path) -> None:
    journey_file(tmp_path, "wait: 0s")
    assert problems(scenario(PLACED, journeys="[thank-you.yaml, missing.yaml]"), tmp_path) == [
        f"scenario.yaml:3: journeys[1]: {tmp_path / 'missing.yaml'}: No such file or directory",
        f'{tmp_path / "thank-you.yaml"}:11: steps[0].wait: duration "0s" must be longer than zero',
    ]


def test_yaml_that_does_not_parse_and_a_scenario_that_is_not_a_mapping() -> None:
    assert problems("start: [\n") == [
        "scenario.yaml:2: expected the node content, but found '<stream end>' (while parsing a"
        " flow node at line 2)"
    ]
    assert problems("- start\n") == [
        "scenario.yaml:1: a scenario must be a mapping with start and events (and store,"
        " journeys, run_until)"
    ]
    assert problems(f"{START}\n{START}\n") == ['scenario.yaml:2: start: duplicate key "start"']


def test_an_id_reused_for_another_event_names_the_line_of_the_second() -> None:
    first = PLACED.replace("    event:\n", "    event:\n      id: evt-1\n")
    second = first.replace('"+0s"', '"+1h"').replace("499.90", "1.00")
    assert problems(scenario(first, second, consent=None)) == [
        "scenario.yaml:14: event.id: an event with id 'evt-1' was already accepted with a"
        " different body; send a new id for a new event"
    ]
    # The same event sent twice is a duplicate, as the API takes it: one email.
    timeline = run(scenario(first, first.replace('"+0s"', '"+1h"'), run_until="+1d"))
    assert [m.journey for m in timeline.messages] == ["order-confirmation", "thank-you"]


def test_the_example_scenario_runs() -> None:
    timeline = simulate(load_scenario_file(EXAMPLES / "scenario.yaml"))
    assert sent(timeline) == [
        (
            "2026-03-06T21:40:00+03:00",
            "order-confirmation",
            "order_confirmation",
            "ayse@example.com",
        ),
        ("2026-03-09T09:15:00+03:00", "order-preparing", "order_preparing", "ayse@example.com"),
        ("2026-03-09T14:15:00+03:00", "order-shipped", "order_shipped", "ayse@example.com"),
        ("2026-03-10T16:45:00+03:00", "order-delivered", "order_delivered", "ayse@example.com"),
        ("2026-03-13T10:00:00+03:00", "after-delivery", "order_delivered", "ayse@example.com"),
    ]


# The command.


def test_ulak_simulate_prints_the_timeline_in_the_stores_time(tmp_path: Path) -> None:
    path = tmp_path / "cancelled.yaml"
    path.write_text(
        scenario(
            PLACED,
            event("+1h", "order.preparing", "{order_id: '1001'}"),
            event("+0s", "order.cancelled", "{order_id: '1001'}"),
            journeys="[order-confirmation, order-preparing]",
        ),
        encoding="utf-8",
    )
    result = ulak_cli("simulate", str(path), env={})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 1 message(s), Europe/Istanbul"
    rows = [line for line in lines if line.startswith("│ ") and line[2].isupper()]
    assert [row[2:25] for row in rows] == ["Mon 2026-03-02 09:00:00"]
    assert "order-co" in rows[0]
    assert lines[-2:] == [
        "Mon 2026-03-02 10:00:00  enrollment of order-preparing for c-1042 exited: exit_when:"
        " order.cancelled",
        "simulated from Mon 2026-03-02 09:00:00 to Mon 2026-03-02 10:00:00",
    ]
    assert result.stderr == ""


def test_ulak_simulate_json_prints_only_the_messages() -> None:
    result = ulak_cli("simulate", str(EXAMPLES / "scenario.yaml"), "--json", env={})
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)
    assert [
        (m["at"], m["journey"], m["template"], m["channel"], m["to"], m["subject"])
        for m in messages
    ] == [
        ("2026-03-06T21:40:00+03:00", "order-confirmation", "order_confirmation", "email",
         "ayse@example.com", "Siparişiniz alındı – #1001"),
        ("2026-03-09T09:15:00+03:00", "order-preparing", "order_preparing", "email",
         "ayse@example.com", "Siparişiniz hazırlanıyor – #1001"),
        ("2026-03-09T14:15:00+03:00", "order-shipped", "order_shipped", "email",
         "ayse@example.com", "Siparişiniz kargoya verildi – #1001"),
        ("2026-03-10T16:45:00+03:00", "order-delivered", "order_delivered", "email",
         "ayse@example.com", "Siparişiniz teslim edildi – #1001"),
        ("2026-03-13T10:00:00+03:00", "after-delivery", "order_delivered", "email",
         "ayse@example.com", "Siparişiniz teslim edildi – #1001"),
    ]  # fmt: skip
    assert all(m["customer"] == "c-1042" for m in messages)
    assert messages[0]["text"].startswith("Merhaba Ayşe,\n\nSiparişinizi aldık")
    assert "https://kargo.example/AR123" in messages[2]["text"]
    assert result.stderr == ""


def test_ulak_simulate_names_the_lines_of_a_bad_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"{START}\nevents:\n  - at: yesterday\n    event: {{type: x}}\n")
    result = ulak_cli("simulate", str(path), "--json", env={})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{path}:3: events[0].at: invalid time "yesterday": use an ISO 8601 time with its'
        " offset, like 2026-03-02T09:00:00+03:00",
        f"{path}:4: events[0].event.customer: a x event needs a customer with an id, email or"
        " phone",
    ]
    missing = ulak_cli("simulate", str(tmp_path / "none.yaml"), env={})
    assert missing.returncode == 1
    assert missing.stderr == f"{tmp_path / 'none.yaml'}: No such file or directory\n"


def test_back_in_stock_tells_the_first_subscribers_of_a_restock_and_the_rest_at_the_next() -> None:
    """Two cups come back and the factor is 1: the two who asked first hear of it, in that
    order; the third waits for the next restock."""
    stock = '{{product_id: p-kupa, title: Seramik kupa, price: "249.95", inventory: {n}}}'

    def product(at: str, n: int) -> str:
        return f'  - at: "{at}"\n    event: {{type: product.updated, data: {stock.format(n=n)}}}\n'

    def asks(at: str, i: int) -> str:
        who = f"customer: {{id: c-{i}, email: musteri{i}@example.com}}"
        return event(at, "back_in_stock.requested", "{product_id: p-kupa}", who)

    text = scenario(
        product("+0s", 0),
        asks("+1m", 1),
        asks("+1m", 2),
        asks("+1m", 3),
        product("+1h", 2),
        product("+1d", 0),
        product("+1h", 1),
        journeys="[back-in-stock]",
    ).replace("currency: TRY}", "currency: TRY, back_in_stock_factor: 1}")
    timeline = run(text)
    assert sent(timeline) == [
        ("2026-03-02T10:03:00+03:00", "back-in-stock", "back_in_stock", "musteri1@example.com"),
        ("2026-03-02T10:03:00+03:00", "back-in-stock", "back_in_stock", "musteri2@example.com"),
        ("2026-03-03T11:03:00+03:00", "back-in-stock", "back_in_stock", "musteri3@example.com"),
    ]
    assert [m.subject for m in timeline.messages] == ["Seramik kupa yeniden stokta"] * 3


def test_delivery_problems_say_what_to_do_once_per_status_and_per_later_estimate() -> None:
    shipped = (
        "{order_id: '1001', shipment_id: SH-1, carrier: Aras Kargo, tracking_number: AR1,"
        " tracking_url: 'https://kargo.example/AR1', estimated_delivery: '2026-03-05'}"
    )

    def update(at: str, fields: str) -> str:
        return event(at, "shipment.updated", f"{{shipment_id: SH-1, {fields}}}")

    timeline = run(
        scenario(
            PLACED,
            event("+1h", "order.shipped", shipped),
            update("+1d", "status: in_transit, estimated_delivery: '2026-03-07'"),
            update("+1d", "status: attempt_failed, message: Alıcı adreste yok"),
            update("+1h", "status: attempt_failed"),  # the carrier says it again: no email
            update("+1d", "status: available_for_pickup, location: Kadıköy şubesi"),
            update("+1d", "status: delivered"),
            journeys="[delivery-problems]",
        )
    )
    to = "ayse@example.com"
    assert sent(timeline) == [
        ("2026-03-03T10:00:00+03:00", "delivery-problems", "delivery_problem", to),
        ("2026-03-04T10:00:00+03:00", "delivery-problems", "delivery_problem", to),
        ("2026-03-05T11:00:00+03:00", "delivery-problems", "delivery_problem", to),
    ]
    delayed, failed, pickup = timeline.messages
    assert delayed.subject == "Siparişiniz gecikecek – #1001"
    assert "tahmini teslim tarihi 5 Mart 2026 yerine 7 Mart 2026 oldu" in delayed.text
    assert failed.subject == "Siparişiniz teslim edilemedi – #1001"
    assert "Aras Kargo siparişinizi teslim etmeyi denedi ama başaramadı (Alıcı adreste yok)" in (
        failed.text
    )
    assert "Kargonuzu takip edin: https://kargo.example/AR1" in failed.text
    assert pickup.subject == "Siparişiniz teslim noktasında sizi bekliyor – #1001"
    assert "Siparişiniz Kadıköy şubesi adresindeki teslim noktasında" in pickup.text

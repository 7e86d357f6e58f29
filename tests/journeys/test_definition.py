from __future__ import annotations

import json
import pathlib
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from ulak.errors import Invalid
from ulak.journeys.definition import (
    AlertShopOp,
    BranchOp,
    IfStep,
    IssueCouponOp,
    JourneyDefinition,
    JourneyFileError,
    JumpOp,
    Problem,
    Program,
    SendOp,
    SendStep,
    SetAttributeOp,
    SplitOp,
    TagOp,
    WaitForOp,
    WaitForStep,
    WaitOp,
    WaitStep,
    WaitUntil,
    WaitWithin,
    compile_program,
    coupon_keys,
    date_wait_time,
    load_journey,
    load_journey_file,
    next_wait_time,
    parse_duration,
    promotion_problems,
    split_branch,
)

FULL = """\
key: order-shipped
name: Kargoya verildi
description: Tells the customer the parcel is on its way.
legal_class: informational
trigger:
  event: order.shipped
  where: "order.channel != 'marketplace'"
reentry: once_per_order
guard: "not customer.unsubscribed"
exit_when:
  - event: return.requested
    match: "event.data.order_id == enrollment.order_id"
steps:
  - wait: 2h
  - wait: {until: "09:00"}
  - wait: {until: 18:30, weekdays: [mon, fri]}
  - send: email
    template: order_shipped
    guard: "customer.email is defined"
  - wait_for:
      event: review.submitted
      match: "event.data.order_id == enrollment.order_id"
      timeout: 5d
    on_timeout:
      - send: email
        template: review_reminder
  - if: "order.total > 1000"
    then:
      - send: email
        template: big_thanks
    else:
      - wait: 1d12h
"""

# A skeleton to hang `steps` under; the steps start on line 7.
HEAD = """\
key: test
name: Test
legal_class: commercial
trigger:
  event: order.created
steps:
"""


def problems(text: str) -> list[str]:
    with pytest.raises(JourneyFileError) as caught:
        load_journey(text, "j.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_full_journey_loads() -> None:
    journey = load_journey(FULL)
    assert journey.key == "order-shipped"
    assert journey.legal_class == "informational"
    assert journey.enabled is True
    assert journey.reentry == "once_per_order"
    assert journey.trigger.event == "order.shipped"
    assert journey.trigger.where == "order.channel != 'marketplace'"
    assert journey.exit_when[0].event == "return.requested"
    assert [type(step) for step in journey.steps] == [
        WaitStep,
        WaitStep,
        WaitStep,
        SendStep,
        WaitForStep,
        IfStep,
    ]
    assert journey.steps[0] == WaitStep(wait="2h")
    assert journey.steps[1] == WaitStep(wait=WaitUntil(until="09:00"))
    # Unquoted 18:30 is a YAML 1.1 base-60 integer (1110); the loader keeps it a time.
    assert journey.steps[2] == WaitStep(wait=WaitUntil(until="18:30", weekdays=["mon", "fri"]))
    branch = journey.steps[5]
    assert isinstance(branch, IfStep)
    assert branch.if_ == "order.total > 1000"
    assert branch.else_ == [WaitStep(wait="1d12h")]


def test_defaults() -> None:
    journey = load_journey(HEAD + "  - wait: 1h\n")
    assert journey.enabled is True
    assert journey.reentry == "once"
    assert journey.guard is None
    assert journey.exit_when == []
    assert journey.description is None


def test_dump_round_trips_through_json() -> None:
    journey = load_journey(FULL)
    dumped = journey.model_dump(mode="json", by_alias=True)
    assert dumped["steps"][5]["if"] == "order.total > 1000"
    assert dumped["steps"][5]["else"] == [{"wait": "1d12h"}]
    assert dumped["steps"][2]["wait"] == {"until": "18:30", "weekdays": ["mon", "fri"]}
    reloaded = JourneyDefinition.model_validate(json.loads(json.dumps(dumped)))
    assert reloaded == journey
    assert compile_program(reloaded) == compile_program(journey)


def test_python_names_are_accepted_too() -> None:
    step = IfStep.model_validate({"if_": "x", "then": [{"wait": "1h"}], "else_": None})
    assert step.if_ == "x"


def test_load_journey_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "order-shipped.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert load_journey_file(path) == load_journey(FULL)

    path.write_text(HEAD + "  - wait: soon\n", encoding="utf-8")
    with pytest.raises(JourneyFileError) as caught:
        load_journey_file(path)
    assert caught.value.problems[0].file == str(path)


def test_compile_nested_if_else_and_wait_for() -> None:
    journey = load_journey(
        HEAD
        + """\
  - wait: 1d
  - if: "order.total > 1000"
    then:
      - send: email
        template: big
      - if: "customer.vip"
        then:
          - send: email
            template: vip
    else:
      - wait_for:
          event: review.submitted
          timeout: 5d
        on_timeout:
          - send: email
            template: reminder
  - wait_for:
      event: review.submitted
      match: "event.data.order_id == enrollment.order_id"
      timeout: 30m
  - wait: {until: "09:00", weekdays: [mon, wed]}
  - send: email
    template: thanks
    guard: "customer.email is defined"
  - if: "cart is defined"
    then:
      - wait: 45s
"""
    )
    assert compile_program(journey) == Program(
        ops=(
            WaitOp(seconds=86400, until=None, weekdays=None),
            BranchOp(condition="order.total > 1000", else_pc=6),
            SendOp(channel="email", template="big", guard=None),
            BranchOp(condition="customer.vip", else_pc=5),
            SendOp(channel="email", template="vip", guard=None),
            JumpOp(target=8),
            WaitForOp(event="review.submitted", match=None, timeout_seconds=432000, resume_pc=8),
            SendOp(channel="email", template="reminder", guard=None),
            WaitForOp(
                event="review.submitted",
                match="event.data.order_id == enrollment.order_id",
                timeout_seconds=1800,
                resume_pc=9,
            ),
            WaitOp(seconds=None, until=time(9, 0), weekdays=frozenset({0, 2})),
            SendOp(channel="email", template="thanks", guard="customer.email is defined"),
            BranchOp(condition="cart is defined", else_pc=13),
            WaitOp(seconds=45, until=None, weekdays=None),
        )
    )


def test_programs_never_jump_backwards() -> None:
    program = compile_program(load_journey(FULL))
    for pc, op in enumerate(program.ops):
        target = {BranchOp: "else_pc", JumpOp: "target", WaitForOp: "resume_pc"}.get(type(op))
        if target is not None:
            assert pc < getattr(op, target) <= len(program.ops)


def test_invalid_duration_points_at_its_line() -> None:
    text = HEAD + "  - wait: 1h\n  - wait_for:\n      event: review.submitted\n      timeout: 5x\n"
    assert problems(text) == [
        'j.yaml:10: steps[1].wait_for.timeout: invalid duration "5x": '
        "use a number followed by d, h, m or s, like 2h or 1d12h"
    ]


def test_error_carries_problems_and_details() -> None:
    with pytest.raises(JourneyFileError) as caught:
        load_journey(HEAD + "  - wait: 0s\n", "j.yaml")
    error = caught.value
    assert isinstance(error, Invalid)
    assert error.status_code == 422
    assert error.problems == [
        Problem("j.yaml", 7, "steps[0].wait", 'duration "0s" must be longer than zero')
    ]
    assert error.details == [
        {
            "file": "j.yaml",
            "line": 7,
            "path": "steps[0].wait",
            "message": 'duration "0s" must be longer than zero',
        }
    ]
    assert str(error) == 'j.yaml:7: steps[0].wait: duration "0s" must be longer than zero'


def test_unknown_step_kind() -> None:
    assert problems(HEAD + "  - wait: 1h\n  - sned: email\n    template: x\n") == [
        "j.yaml:8: steps[1]: a step needs exactly one of the keys wait, wait_for, if, send, "
        "action or split"
    ]


def test_two_step_kinds_in_one_step() -> None:
    assert problems(HEAD + "  - wait: 1h\n    send: email\n") == [
        "j.yaml:7: steps[0]: a step needs exactly one of the keys wait, wait_for, if, send, "
        "action or split"
    ]


def test_unknown_field_points_at_the_key() -> None:
    text = HEAD + "  - send: email\n    template: a\n    tempalte:\n      b\n"
    assert problems(text) == ['j.yaml:9: steps[0].tempalte: unknown field "tempalte"']


def test_missing_trigger() -> None:
    text = "key: test\nname: Test\nlegal_class: commercial\nsteps:\n  - wait: 1h\n"
    assert problems(text) == ["j.yaml:1: trigger: field required"]


def test_missing_nested_field_points_at_its_mapping() -> None:
    text = HEAD + "  - wait: 1h\n  - wait_for:\n      event: review.submitted\n"
    assert problems(text) == ["j.yaml:9: steps[1].wait_for.timeout: field required"]


def test_bad_expression_points_at_its_line() -> None:
    text = HEAD + '  - if: "order.total >"\n    then:\n      - send: email\n'
    text += '        template: a\n        guard: "customer.email is"\n'
    assert problems(text) == [
        'j.yaml:7: steps[0].if: syntax error in expression "order.total >": '
        "the expression ends too early",
        'j.yaml:11: steps[0].then[0].guard: syntax error in expression "customer.email is": '
        "unexpected end of input, expected 'name'.",
    ]


def test_bad_trigger_expression() -> None:
    text = HEAD.replace("  event: order.created\n", "  event: order.created\n  where: 'a =='\n")
    assert problems(text + "  - wait: 1h\n") == [
        'j.yaml:6: trigger.where: syntax error in expression "a ==": the expression ends too early'
    ]


def test_several_problems_sorted_by_line() -> None:
    text = """\
key: Bad Key
name: Test
legal_class: promo
trigger:
  event: Order Shipped
reentry: twice
steps:
  - wait: {until: "25:00", weekdays: [monday]}
  - send: fax
    template: x
  - if: "x"
    then: []
"""
    assert problems(text) == [
        'j.yaml:1: key: invalid key "Bad Key": '
        "use lowercase letters, digits and dashes, like order-shipped",
        "j.yaml:3: legal_class: should be 'informational' or 'commercial'",
        'j.yaml:5: trigger.event: invalid event "Order Shipped": '
        "use lowercase words joined by dots, like order.shipped",
        "j.yaml:6: reentry: should be 'once', 'once_per_order', 'once_per_cart', "
        "'once_per_shipment' or 'always'",
        'j.yaml:8: steps[0].wait.until: invalid time of day "25:00": '
        "use 24-hour HH:MM, like 09:00 or 18:30",
        "j.yaml:8: steps[0].wait.weekdays[0]: should be 'mon', 'tue', 'wed', 'thu', 'fri', "
        "'sat' or 'sun'",
        "j.yaml:9: steps[1].send: should be 'email' or 'sms'",
        "j.yaml:12: steps[2].then: needs at least one step",
    ]


def test_empty_steps() -> None:
    assert problems(HEAD.replace("steps:\n", "steps: []\n")) == [
        "j.yaml:6: steps: needs at least one step"
    ]


def test_wrong_types() -> None:
    text = HEAD.replace("trigger:\n  event: order.created\n", "trigger: order.created\n")
    text = text.replace("steps:\n", "enabled: maybe\nsteps: {wait: 1h}\n")
    assert problems(text) == [
        "j.yaml:4: trigger: expected a mapping",
        "j.yaml:5: enabled: expected true or false",
        "j.yaml:6: steps: expected a list",
    ]


def test_duplicate_keys() -> None:
    text = HEAD + "  - send: email\n    template: a\n    template: b\n"
    assert problems(text) == ['j.yaml:9: steps[0].template: duplicate key "template"']


def test_yaml_syntax_error_has_line() -> None:
    text = HEAD + "  - wait: 1h\n   send: email\n"
    assert problems(text) == [
        "j.yaml:8: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection at line 7)"
    ]
    with pytest.raises(JourneyFileError) as caught:
        load_journey(text, "j.yaml")
    assert caught.value.problems[0].path == ""


@pytest.mark.parametrize("text", ["", "- wait: 1h\n", "just text\n"])
def test_document_must_be_a_mapping(text: str) -> None:
    assert problems(text) == [
        "j.yaml:1: a journey file must be a mapping with key, name, trigger and steps"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1d12h", 129600), ("1h1s", 3601)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "2", "h", "1h2d", "1.5h", "-1h", "2 hours"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_rejects_zero() -> None:
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_duration("0h0m")


ISTANBUL = ZoneInfo("Europe/Istanbul")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_wait_seconds() -> None:
    op = WaitOp(seconds=5400, until=None, weekdays=None)
    start = datetime(2026, 11, 23, 12, 0, tzinfo=ISTANBUL)
    assert next_wait_time(op, start, ISTANBUL) == utc(2026, 11, 23, 10, 30)
    assert next_wait_time(op, start, ISTANBUL).tzinfo is UTC


def test_wait_until_time_of_day() -> None:
    op = WaitOp(seconds=None, until=time(9, 0), weekdays=None)
    # 08:00 in Istanbul (UTC+3): later the same day.
    assert next_wait_time(op, utc(2026, 11, 23, 5, 0), ISTANBUL) == utc(2026, 11, 23, 6, 0)
    # Exactly 09:00: strictly after now, so tomorrow.
    assert next_wait_time(op, utc(2026, 11, 23, 6, 0), ISTANBUL) == utc(2026, 11, 24, 6, 0)
    # 23:30 UTC is already 02:30 the next local day.
    assert next_wait_time(op, utc(2026, 11, 23, 23, 30), ISTANBUL) == utc(2026, 11, 24, 6, 0)


def test_wait_until_weekday() -> None:
    op = WaitOp(seconds=None, until=time(9, 0), weekdays=frozenset(range(5)))
    # Friday 2026-11-27 21:00 local -> Monday 2026-11-30 09:00 local.
    assert next_wait_time(op, utc(2026, 11, 27, 18, 0), ISTANBUL) == utc(2026, 11, 30, 6, 0)
    # Friday morning is still fine.
    assert next_wait_time(op, utc(2026, 11, 27, 5, 0), ISTANBUL) == utc(2026, 11, 27, 6, 0)
    only_monday = WaitOp(seconds=None, until=time(9, 0), weekdays=frozenset({0}))
    # Monday after 09:00 waits a whole week.
    assert next_wait_time(only_monday, utc(2026, 11, 23, 7, 0), ISTANBUL) == utc(2026, 11, 30, 6, 0)


def test_wait_until_across_dst_changes() -> None:
    op = WaitOp(seconds=None, until=time(9, 0), weekdays=None)
    # Saturday 2026-03-28 10:00 CET; clocks go forward that night, Sunday 09:00 is CEST (+2).
    assert next_wait_time(op, utc(2026, 3, 28, 9, 0), BERLIN) == utc(2026, 3, 29, 7, 0)
    # Saturday 2026-10-24 10:00 CEST; clocks go back that night, Sunday 09:00 is CET (+1).
    assert next_wait_time(op, utc(2026, 10, 24, 8, 0), BERLIN) == utc(2026, 10, 25, 8, 0)


def test_wait_until_time_skipped_by_dst() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; the wait ends when the clocks jump (03:30).
    op = WaitOp(seconds=None, until=time(2, 30), weekdays=None)
    assert next_wait_time(op, utc(2026, 3, 28, 12, 0), BERLIN) == utc(2026, 3, 29, 1, 30)


def test_wait_until_ambiguous_time_takes_the_first() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25: first at 00:30 UTC (CEST), then 01:30 (CET).
    op = WaitOp(seconds=None, until=time(2, 30), weekdays=None)
    assert next_wait_time(op, utc(2026, 10, 24, 12, 0), BERLIN) == utc(2026, 10, 25, 0, 30)


def test_wait_needs_aware_now() -> None:
    op = WaitOp(seconds=60, until=None, weekdays=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_wait_time(op, datetime(2026, 11, 23, 9, 0), ISTANBUL)  # noqa: DTZ001


def test_control_characters_are_a_yaml_error() -> None:
    assert problems(HEAD + "  - wait: 1h\x00\n") == ["j.yaml:7: unacceptable character #x0000"]


def test_generic_messages() -> None:
    text = HEAD.replace("name: Test", "name: 123").replace("key: test", "key: " + "a" * 101)
    text += "  - wait: {until: '9:00', weekdays: []}\n"
    assert problems(text) == [
        "j.yaml:1: key: should have at most 100 characters",
        "j.yaml:2: name: expected text",
        "j.yaml:7: steps[0].wait.weekdays: must not be empty",
    ]


ACTIONS_AND_SPLIT = """\
  - action: issue_coupon
    coupon: welcome
  - split:
      - weight: 80
        name: mail
        steps:
          - send: email
            template: welcome
          - action: tag
            tag: vip
      - weight: 10
        steps:
          - if: "customer.vip"
            then:
              - split:
                  - weight: 1
                  - weight: 1
                    steps: [{action: untag, tag: vip}]
      - weight: 10
  - action: set_attribute
    attribute: welcomed
    value: true
  - action: alert_shop
    reason: Yeni müşteri
"""


def test_compile_actions_and_splits() -> None:
    journey = load_journey(HEAD + ACTIONS_AND_SPLIT)
    program = compile_program(journey)
    assert program == Program(
        ops=(
            IssueCouponOp(coupon="welcome"),
            SplitOp(
                ordinal=0,
                weights=(80, 10, 10),
                targets=(2, 5, 10),
                names=("mail", None, None),
                holdouts=(False, False, True),
            ),
            SendOp(channel="email", template="welcome", guard=None),
            TagOp(tag="vip", present=True),
            JumpOp(target=10),
            BranchOp(condition="customer.vip", else_pc=9),
            SplitOp(
                ordinal=1,
                weights=(1, 1),
                targets=(7, 8),
                names=(None, None),
                holdouts=(True, False),
            ),
            JumpOp(target=9),
            TagOp(tag="vip", present=False),
            JumpOp(target=10),
            SetAttributeOp(attribute="welcomed", value=True),
            AlertShopOp(reason="Yeni müşteri"),
        )
    )
    assert program.issues_coupons
    assert not compile_program(load_journey(FULL)).issues_coupons
    assert coupon_keys(journey.steps) == {"welcome"}


def test_split_programs_never_jump_backwards() -> None:
    program = compile_program(load_journey(HEAD + ACTIONS_AND_SPLIT))
    for pc, op in enumerate(program.ops):
        targets = {
            BranchOp: lambda o: [o.else_pc],
            JumpOp: lambda o: [o.target],
            SplitOp: lambda o: list(o.targets),
        }.get(type(op), lambda o: [])(op)
        assert all(pc < target <= len(program.ops) for target in targets)


def test_a_split_is_stable_per_customer_and_follows_its_weights() -> None:
    op = SplitOp(ordinal=0, weights=(80, 10, 10), targets=(1, 2, 3), names=(None,) * 3,
                 holdouts=(False,) * 3)  # fmt: skip
    chosen = [split_branch(op, journey="welcome", customer_id=c) for c in range(10_000)]
    assert chosen == [split_branch(op, journey="welcome", customer_id=c) for c in range(10_000)]
    shares = [chosen.count(branch) / len(chosen) for branch in range(3)]
    assert [round(share, 2) for share in shares] == pytest.approx([0.8, 0.1, 0.1], abs=0.015)
    # Another journey, or another split of the same one, chooses independently.
    other = [split_branch(op, journey="win-back", customer_id=c) for c in range(10_000)]
    second = SplitOp(ordinal=1, weights=op.weights, targets=op.targets, names=op.names,
                     holdouts=op.holdouts)  # fmt: skip
    again = [split_branch(second, journey="welcome", customer_id=c) for c in range(10_000)]
    for choices in (other, again):
        same = sum(a == b for a, b in zip(chosen, choices, strict=True)) / len(chosen)
        assert same == pytest.approx(0.8**2 + 0.1**2 + 0.1**2, abs=0.02)


def test_unknown_actions_and_bad_splits_point_at_their_lines() -> None:
    text = HEAD + (
        "  - action: issue_coupon\n"  # 7
        "  - action: frobnicate\n"  # 8
        "    coupon: x\n"
        "  - action: tag\n"  # 10
        "    tag: two words\n"
        "  - action: set_attribute\n"  # 12
        "    attribute: 9lives\n"
        "    value: [1]\n"
        "  - split:\n"  # 15
        "      - weight: 1\n"
        "  - split:\n"  # 17
        "      - weight: 0\n"
        "      - steps: []\n"
        "  - action: alert_shop\n"  # 20
        "    reason: x\n"
        "    template: y\n"
    )
    assert problems(text) == [
        "j.yaml:7: steps[0].coupon: field required",
        'j.yaml:8: steps[1]: unknown action "frobnicate": use one of issue_coupon, tag, untag, '
        "set_attribute, alert_shop",
        'j.yaml:11: steps[2].tag: invalid tag "two words": use a word without spaces, like vip',
        'j.yaml:13: steps[3].attribute: invalid attribute "9lives": use letters, digits and '
        "underscores, like last_campaign",
        "j.yaml:14: steps[3].value: expected text, a number, true or false, or null",
        "j.yaml:16: steps[4].split: a split needs at least two branches",
        "j.yaml:18: steps[5].split[0].weight: should be greater than or equal to 1",
        "j.yaml:19: steps[5].split[1].weight: field required",
        'j.yaml:22: steps[6].template: unknown field "template"',
    ]


# A wait of a duration that may not end at night.

WITHIN = """\
key: thanks
name: Thanks
legal_class: informational
trigger: {event: order.placed}
steps:
  - wait: {for: 3h, not_before: "09:00", not_after: "21:00"}
  - send: email
    template: order_confirmation
"""


def test_a_wait_within_hours_loads_compiles_and_round_trips() -> None:
    journey = load_journey(WITHIN, "j.yaml")
    within = WaitWithin.model_validate({"for": "3h", "not_before": "09:00", "not_after": "21:00"})
    assert journey.steps[0] == WaitStep(wait=within)
    (wait, _) = compile_program(journey).ops
    assert wait == WaitOp(seconds=10800, until=None, weekdays=None, hours=(time(9), time(21)))
    dumped = journey.model_dump(mode="json", by_alias=True)
    assert dumped["steps"][0] == {
        "wait": {"for": "3h", "not_before": "09:00", "not_after": "21:00"}
    }
    assert JourneyDefinition.model_validate(json.loads(json.dumps(dumped))) == journey


def test_a_wait_within_hours_moves_a_night_end_to_the_morning() -> None:
    op = WaitOp(seconds=3 * 3600, until=None, weekdays=None, hours=(time(9), time(21)))
    # Istanbul is UTC+3. 09:00 + 3 h = 12:00: within the hours.
    assert next_wait_time(op, utc(2026, 3, 2, 6), ISTANBUL) == utc(2026, 3, 2, 9)
    # 17:59 + 3 h = 20:59: still within.
    assert next_wait_time(op, utc(2026, 3, 2, 14, 59), ISTANBUL) == utc(2026, 3, 2, 17, 59)
    # 18:00 + 3 h = 21:00: not_after is the first moment outside, so 09:00 the next day.
    assert next_wait_time(op, utc(2026, 3, 2, 15), ISTANBUL) == utc(2026, 3, 3, 6)
    # 23:00 + 3 h = 02:00 the next day: 09:00 that same day.
    assert next_wait_time(op, utc(2026, 3, 2, 20), ISTANBUL) == utc(2026, 3, 3, 6)
    # 05:00 + 3 h = 08:00: 09:00 the same day.
    assert next_wait_time(op, utc(2026, 3, 3, 2), ISTANBUL) == utc(2026, 3, 3, 6)
    # In the customer's zone: 12:00 in Berlin is 14:00 in Istanbul.
    assert next_wait_time(op, utc(2026, 3, 2, 17), BERLIN) == utc(2026, 3, 3, 8)


def test_wait_within_hours_that_span_midnight() -> None:
    night_shift = WaitOp(seconds=3600, until=None, weekdays=None, hours=(time(22), time(6)))
    # 23:00 + 1 h = 00:00: within 22:00-06:00.
    assert next_wait_time(night_shift, utc(2026, 3, 2, 20), ISTANBUL) == utc(2026, 3, 2, 21)
    # 06:30 + 1 h = 07:30: outside, so 22:00 that day.
    assert next_wait_time(night_shift, utc(2026, 3, 2, 3, 30), ISTANBUL) == utc(2026, 3, 2, 19)


def test_a_wait_within_hours_names_its_problems_on_their_lines() -> None:
    steps = """\
  - wait: {for: 0h, not_before: "9", not_after: "21:00"}
  - wait: {for: 3h, not_before: "21:00", not_after: "21:00"}
  - wait: {for: 3h, not_before: "09:00"}
  - wait: {for: 3h, not_before: "09:00", not_after: "21:00", until: "10:00"}
"""
    text = WITHIN.replace('  - wait: {for: 3h, not_before: "09:00", not_after: "21:00"}\n', steps)
    assert problems(text) == [
        'j.yaml:6: steps[0].wait.for: duration "0h" must be longer than zero',
        'j.yaml:6: steps[0].wait.not_before: invalid time of day "9": use 24-hour HH:MM,'
        " like 09:00 or 18:30",
        "j.yaml:7: steps[1].wait: not_before and not_after must differ: the hours would be empty",
        "j.yaml:8: steps[2].wait.not_after: field required",
        'j.yaml:9: steps[3].wait.until: unknown field "until"',
    ]


# Informational journeys carry no promotions.

PROMOTING = """\
key: after-delivery
name: After delivery
legal_class: informational
trigger: {event: order.delivered}
steps:
  - send: email
    template: order_delivered
  - if: "customer.first_name"
    then:
      - action: issue_coupon
        coupon: win-back
    else:
      - split:
          - weight: 1
            steps:
              - send: email
                template: thank_you_offer
          - weight: 1
  - wait_for: {event: order.placed, timeout: 7d}
    on_timeout:
      - send: email
        template: my_offer
"""


def test_an_informational_journey_with_a_promotion_is_refused_on_its_lines() -> None:
    journey = load_journey(PROMOTING, "j.yaml")
    promotional = {"thank_you_offer": {"coupon", "recommendations"}, "my_offer": {"coupon"}}
    assert [str(p) for p in promotion_problems(journey, PROMOTING, "j.yaml", promotional)] == [
        "j.yaml:10: steps[1].then[0]: issues a coupon (win-back): informational journeys"
        " carry no promotions; make it legal_class: commercial",
        "j.yaml:16: steps[1].else[0].split[0].steps[0]: template thank_you_offer shows"
        " coupon, recommendations: informational journeys carry no promotions; make it"
        " legal_class: commercial",
        "j.yaml:21: steps[2].on_timeout[0]: template my_offer shows coupon: informational"
        " journeys carry no promotions; make it legal_class: commercial",
    ]
    commercial = PROMOTING.replace("legal_class: informational", "legal_class: commercial")
    journey = load_journey(commercial, "j.yaml")
    assert promotion_problems(journey, commercial, "j.yaml", promotional) == []


def test_date_triggers_and_waits_until_a_date_compile() -> None:
    journey = load_journey(
        "key: ending\nname: E\nlegal_class: commercial\n"
        "trigger:\n  date: {attribute: subscription_ends, offset: 7d, yearly: true}\n"
        "steps:\n"
        '  - wait: {until_date: {attribute: subscription_ends, offset: -3d}, at: "09:30"}\n'
        "  - wait: {until_date: {attribute: member_since}}\n"
    )
    assert journey.trigger.event == "customer.date"
    assert journey.trigger.date is not None
    assert journey.trigger.date.offset == "+7d"
    assert compile_program(journey).ops == (
        WaitOp(None, time(9, 30), None, date_attribute="subscription_ends", offset_days=-3),
        WaitOp(None, time(0), None, date_attribute="member_since", offset_days=0),
    )
    first = compile_program(journey).ops[0]
    assert isinstance(first, WaitOp)
    assert date_wait_time(first, date(2026, 3, 20), ISTANBUL) == utc(2026, 3, 17, 6, 30)


def test_date_trigger_and_wait_problems_point_at_their_lines() -> None:
    text = (
        "key: j\nname: J\nlegal_class: commercial\n"
        "trigger:\n  date: {attribute: member_since, offset: 3 days}\n"
        "steps:\n"
        '  - wait: {until_date: {attribute: 9ends, offset: -3d}, at: "25:00"}\n'
    )
    assert problems(text) == [
        'j.yaml:5: trigger.date.offset: invalid offset "3 days": use whole days, before (-)'
        " or after the date, like -3d or 7d",
        'j.yaml:7: steps[0].wait.until_date.attribute: invalid attribute "9ends": use letters,'
        " digits and underscores, like last_campaign",
        'j.yaml:7: steps[0].wait.at: invalid time of day "25:00": use 24-hour HH:MM, like 09:00'
        " or 18:30",
    ]
    both = HEAD.replace(
        "  event: order.created\n", "  event: order.created\n  date: {attribute: a}\n"
    )
    assert problems(both + "  - wait: 1h\n") == [
        "j.yaml:5: trigger: a trigger has an event or a date, not both"
    ]
    bare = HEAD.replace("order.created", "customer.date")
    assert problems(bare + "  - wait: 1h\n") == [
        "j.yaml:5: trigger: customer.date is started by a date trigger, like date: {attribute:"
        " member_since, offset: 0d, yearly: true}"
    ]


def test_a_journey_without_a_date_trigger_is_stored_as_before_date_triggers() -> None:
    # Versions stored earlier have no trigger.date: the same file applied again must compare
    # equal to them, not make a new version.
    dumped = load_journey(HEAD + "  - wait: 1h\n").model_dump(mode="json", by_alias=True)
    assert dumped["trigger"] == {"event": "order.created", "where": None}

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ulak.journeys.expressions import ExpressionError, check_expression, evaluate, truthy

CONTEXT: dict[str, Any] = {
    "customer": {"email": "ayse@example.com", "unsubscribed": False, "tags": ["vip"]},
    "order": {"id": 42, "channel": "web", "total": Decimal("1234.50")},
    "event": {"type": "review.submitted", "data": {"order_id": 42}},
    "enrollment": {"order_id": 42},
    "cart": {"items": [{"sku": "A"}, {"sku": "B"}], "values": 3},
}


def test_attribute_access_reads_dict_keys() -> None:
    assert evaluate("order.channel", CONTEXT) == "web"
    assert evaluate("order.channel != 'marketplace'", CONTEXT) is True
    assert evaluate("event.data.order_id == enrollment.order_id", CONTEXT) is True
    assert evaluate("order['total'] > 1000", CONTEXT) is True
    assert evaluate("order.total + 1", CONTEXT) == Decimal("1235.50")
    assert evaluate("'vip' in customer.tags", CONTEXT) is True


def test_keys_win_over_dict_methods() -> None:
    assert evaluate("cart.items | length", CONTEXT) == 2
    assert evaluate("cart.values", CONTEXT) == 3


def test_undefined_values() -> None:
    assert evaluate("customer.phone is defined", CONTEXT) is False
    assert evaluate("customer.email is defined", CONTEXT) is True
    assert evaluate("shipment is defined", CONTEXT) is False
    assert evaluate("missing != 'a'", CONTEXT) is True
    assert evaluate("customer.phone", CONTEXT) is None


def test_truthy() -> None:
    assert truthy("not customer.unsubscribed", CONTEXT) is True
    assert truthy("customer.unsubscribed", CONTEXT) is False
    assert truthy("customer.phone", CONTEXT) is False
    assert truthy("customer.tags", CONTEXT) is True
    assert truthy("order.total > 2000", CONTEXT) is False


def test_check_expression_accepts_valid_source() -> None:
    check_expression("survey.score is defined and survey.score <= 6")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "order.total >",
            'syntax error in expression "order.total >": the expression ends too early',
        ),
        (
            "a b",
            'syntax error in expression "a b": unexpected text after the end of the expression',
        ),
        ("a ==== b", "syntax error in expression \"a ==== b\": unexpected '=='"),
        ("   ", "the expression is empty"),
    ],
)
def test_check_expression_reports_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        check_expression(source)
    assert str(caught.value) == message


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)
    with pytest.raises(ExpressionError):
        evaluate("(", CONTEXT)


def test_evaluation_errors_name_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate("order.total + 'x'", CONTEXT)
    assert str(caught.value).startswith("expression \"order.total + 'x'\" failed: ")

    with pytest.raises(ExpressionError) as caught:
        evaluate("customer.address.city", CONTEXT)
    assert str(caught.value) == (
        "expression \"customer.address.city\" failed: 'dict object' has no attribute 'address'"
    )


@pytest.mark.parametrize(
    "source",
    [
        "customer.__class__",
        "customer.__class__.__mro__",
        "customer['__class__']['__mro__']",
        "customer.email.__class__.__mro__[1].__subclasses__()",
        "''.__class__.__base__.__subclasses__()",
        "customer.get.__self__",
        "cycler.__init__.__globals__",
        "lipsum.__globals__['os']",
        "(1).__class__",
        "cycler",
        "dict",
        "namespace",
        "range(10)",
    ],
)
def test_sandbox_does_not_leak_classes_or_globals(source: str) -> None:
    try:
        result = evaluate(source, CONTEXT)
    except ExpressionError:
        return
    assert result is None


def test_filters_remain_available() -> None:
    assert evaluate("customer.email | upper", CONTEXT) == "AYSE@EXAMPLE.COM"
    assert evaluate("cart.items | map(attribute='sku') | join(',')", CONTEXT) == "A,B"


def test_values_cannot_be_mutated() -> None:
    customer = {"email": "a@example.com"}
    with pytest.raises(ExpressionError):
        evaluate("customer.update({'email': 'x'})", {"customer": customer})
    with pytest.raises(ExpressionError):
        evaluate("customer.tags.append(1)", {"customer": {"tags": []}})
    assert customer == {"email": "a@example.com"}


@pytest.mark.parametrize(
    "source", ["9 ** 9 ** 9 ** 9 ** 9", "2 ** (10 ** 9)", "2 ** 100000", "'x' * 1000000"]
)
def test_runaway_arithmetic_is_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, CONTEXT)


def test_small_arithmetic_still_works() -> None:
    assert evaluate("2 ** 10", CONTEXT) == 1024
    assert evaluate("'ab' * 3", CONTEXT) == "ababab"
    assert evaluate("order.total * 2", CONTEXT) == Decimal("2469.00")

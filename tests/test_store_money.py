"""Credits parse and format exactly: integers of minor units, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.money import (
    CREDIT_SCALE,
    MAX_AMOUNT,
    MAX_CREDITS,
    check_amount,
    format_credits,
    parse_credits,
)


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        ("1.5", 150),
        ("900", 90_000),
        ("900.00", 90_000),
        (" 0.01 ", 1),
        ("0", 0),
        ("2.50000", 250),  # trailing zeros are not extra precision
        (".5", 50),
        ("+3", 300),
        (7, 700),
        (0.1, 10),  # shortest repr of the float, not its binary expansion
        (Decimal("3.14"), 314),
        (Decimal("1E+2"), 10_000),  # a Decimal is exact whatever its exponent
        ("10000000000000", MAX_AMOUNT),
        ("10000000000000.00", MAX_AMOUNT),
        (1e13, MAX_AMOUNT),
    ],
)
def test_parse_credits_is_exact(value: str | float | Decimal, minor: int) -> None:
    assert parse_credits(value) == minor


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.005", "more than 2 decimals"),
        ("0.001", "more than 2 decimals"),
        ("-1", "negative"),
        ("NaN", "finite"),
        ("inf", "finite"),
        ("-Infinity", "finite"),
        ("", "not a credit amount"),
        ("ten", "not a credit amount"),
        ("1,5", "not a credit amount"),
        ("1_000", "not a credit amount"),
        ("١٢", "not a credit amount"),  # digits, but not ASCII ones
        ("5e16", "exponent"),
        ("1e2", "exponent"),
        ("1.5E-1", "exponent"),
        ("10000000000000.01", "too large: at most 10000000000000 credits"),
        ("50000000000000000", "too large"),
        ("92233720368547758.08", "too large"),
        ("1" + "0" * 60, "too long"),
        (1e16, "too large"),
        (float("nan"), "finite"),
    ],
)
def test_parse_credits_refuses_with_a_clear_message(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_credits(value)


@pytest.mark.parametrize("value", [True, None, [1]])
def test_parse_credits_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        parse_credits(value)  # type: ignore[arg-type]


def test_negative_amounts_only_when_asked() -> None:
    assert parse_credits("-2.25", allow_negative=True) == -225


@pytest.mark.parametrize(
    ("minor", "text"),
    [(90_000, "900.00"), (0, "0.00"), (1, "0.01"), (150, "1.50"), (-5, "-0.05"),
     (-12_345, "-123.45")],
)
def test_format_credits(minor: int, text: str) -> None:
    assert format_credits(minor) == text


def test_negative_zero_formats_as_zero() -> None:
    assert format_credits(parse_credits("-0.00", allow_negative=True)) == "0.00"


def test_format_credits_refuses_non_integers() -> None:
    with pytest.raises(TypeError):
        format_credits(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "positive", "message"),
    [(MAX_AMOUNT + 1, False, "between 0.00 and 10000000000000.00 credits, got 10000000000000.01"),
     (-1, False, "between 0.00 and"), (0, True, "between 0.01 and")],
)
def test_check_amount_names_the_bound(value: int, positive: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_amount("amount", value, positive=positive)
    assert check_amount("amount", MAX_AMOUNT) == MAX_AMOUNT


def test_check_amount_takes_ints_only() -> None:
    for value in (1.0, "1", True):
        with pytest.raises(TypeError):
            check_amount("amount", value)


@given(st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT))
def test_parse_inverts_format(minor: int) -> None:
    assert parse_credits(format_credits(minor), allow_negative=True) == minor


@given(st.decimals(min_value=-MAX_CREDITS, max_value=MAX_CREDITS, places=2))
def test_format_inverts_parse(amount: Decimal) -> None:
    text = str(amount)
    # abs() and a sign of our own: Decimal prints -0.00, but there is no negative zero credit.
    expected = ("-" if amount < 0 else "") + f"{abs(amount):.2f}"
    assert format_credits(parse_credits(text, allow_negative=True)) == expected
    assert parse_credits(text, allow_negative=True) == int(amount.scaleb(2))
    assert CREDIT_SCALE == 100

"""Credits as exact integers, and the bounds every amount and balance stays within.

A balance is an integer count of minor units (1 credit = CREDIT_SCALE minor units).
Text and numbers from operators are parsed through Decimal so "0.1" is exactly 10;
floats never take part in arithmetic.

Bounds. MAX_AMOUNT (10**15 minor units, 10**13 credits) is the largest amount, price,
threshold or initial credit an operator may give, and the largest balance an operator's
change may lead to: far beyond any real account, and four orders of magnitude under
what BIGINT holds, so sums of a few of them never overflow. MAX_STORED (10**18) is the
schema's CHECK on balances and ledger amounts: the gateway itself may still return
credit (refunds, replace_sm reprices) to an account an operator filled to MAX_AMOUNT,
and that must never fail a commit of the store writer; it is still 9x under 2**63 - 1,
and SQLite, which stores an overflowing integer as a float, can never get one.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

CREDIT_SCALE = 100
_DECIMALS = 2  # log10(CREDIT_SCALE): how many decimals a credit amount may carry

MAX_AMOUNT = 10**15
MAX_CREDITS = Decimal(MAX_AMOUNT) / CREDIT_SCALE
MAX_STORED = 10**18

# Operators write amounts as plain decimals. An exponent ("5e16") is refused rather
# than converted: it is far more often a typo or a probe than a way to write money.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXPONENT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")
_MAX_TEXT = 40  # characters of an amount's text; MAX_CREDITS needs 17


def parse_credits(value: str | float | Decimal, *, allow_negative: bool = False) -> int:
    """Parse an amount of credits ("1.5", 2, Decimal("0.01")) into minor units.

    Text must be a plain decimal number: no exponent, no separators. A float (a JSON
    number) is read as its shortest repr, i.e. the digits that were written. Raises
    ValueError for more than two decimals, NaN/infinity, empty or non-numeric text, an
    amount beyond MAX_CREDITS, and negative amounts unless allow_negative is set;
    TypeError for other types.
    """
    if isinstance(value, bool):  # bool is an int subclass; True credits is a bug upstream
        raise TypeError(f"not a credit amount: {value!r}")
    if isinstance(value, float):
        # repr() gives the shortest text that round-trips, so 0.1 parses as "0.1"
        # rather than 0.1000000000000000055511151231257827...
        text = repr(value)
    elif isinstance(value, (int, Decimal)):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        _check_plain_decimal(text, value)
    else:
        raise TypeError(f"not a credit amount: {value!r}")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a credit amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"credit amount must be finite, got {value!r}")
    if amount < 0 and not allow_negative:
        raise ValueError(f"credit amount must not be negative, got {value!r}")
    if abs(amount) > MAX_CREDITS:
        raise ValueError(
            f"credit amount {value!r} is too large: at most {MAX_CREDITS} credits"
        )
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals always have an int exponent
    if exponent < -_DECIMALS:
        raise ValueError(
            f"credit amount {value!r} has more than {_DECIMALS} decimals"
        )
    # Within MAX_CREDITS the product has at most 17 digits, well inside Decimal's default
    # 28-digit precision, so the multiplication is exact.
    return int(amount * CREDIT_SCALE)


def _check_plain_decimal(text: str, value: str) -> None:
    if len(text) > _MAX_TEXT:
        raise ValueError(f"credit amount {text[:_MAX_TEXT]!r}... is too long")
    if _PLAIN_DECIMAL.fullmatch(text):
        return
    if text.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
        raise ValueError(f"credit amount must be finite, got {value!r}")
    if _EXPONENT.fullmatch(text):
        raise ValueError(
            f"credit amount {value!r} has an exponent: write it as a plain decimal number "
            "such as 100 or 12.50"
        )
    raise ValueError(
        f"not a credit amount: {value!r} (a plain decimal number such as 100 or 12.50)"
    )


def check_amount(name: str, value: object, *, positive: bool = False) -> int:
    """An int of minor units within 0 (or 1 when `positive`) .. MAX_AMOUNT, or ValueError
    naming `name` and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of minor units, got {type(value).__name__}")
    low = 1 if positive else 0
    if not low <= value <= MAX_AMOUNT:
        raise ValueError(
            f"{name} must be between {format_credits(low)} and {format_credits(MAX_AMOUNT)} "
            f"credits, got {format_credits(value)}"
        )
    return value


def format_credits(minor: int) -> str:
    """Render minor units as credits with exactly two decimals: 90000 -> "900.00"."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, got {type(minor).__name__}")
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), CREDIT_SCALE)
    return f"{sign}{whole}.{frac:0{_DECIMALS}d}"

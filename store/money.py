"""Credits as exact integers.

A balance is an integer count of minor units (1 credit = CREDIT_SCALE minor units).
Text and numbers from operators are parsed through Decimal so "0.1" is exactly 10;
floats never take part in arithmetic.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CREDIT_SCALE = 100
_DECIMALS = 2  # log10(CREDIT_SCALE): how many decimals a credit amount may carry
# Balances are BIGINT minor units; anything larger could not be stored.
MAX_CREDITS = Decimal(2**63 - 1) / CREDIT_SCALE


def parse_credits(value: str | float | Decimal, *, allow_negative: bool = False) -> int:
    """Parse an amount of credits ("1.5", 2, Decimal("0.01")) into minor units.

    Raises ValueError for more than two decimals, NaN/infinity, empty or non-numeric
    text, and negative amounts unless allow_negative is set; TypeError for other types.
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
    else:
        raise TypeError(f"not a credit amount: {value!r}")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a credit amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"credit amount must be finite, got {value!r}")
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals always have an int exponent
    if exponent < -_DECIMALS:
        raise ValueError(
            f"credit amount {value!r} has more than {_DECIMALS} decimals"
        )
    if amount < 0 and not allow_negative:
        raise ValueError(f"credit amount must not be negative, got {value!r}")
    if abs(amount) > MAX_CREDITS:
        raise ValueError(f"credit amount {value!r} is too large (max {MAX_CREDITS})")
    # Within MAX_CREDITS the product has at most 19 digits, well inside Decimal's default
    # 28-digit precision, so the multiplication is exact.
    return int(amount * CREDIT_SCALE)


def format_credits(minor: int) -> str:
    """Render minor units as credits with exactly two decimals: 90000 -> "900.00"."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, got {type(minor).__name__}")
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), CREDIT_SCALE)
    return f"{sign}{whole}.{frac:0{_DECIMALS}d}"

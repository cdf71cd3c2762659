"""SMPP 3.4 time fields (section 7.1.1): schedule_delivery_time and validity_period.

A time is empty (none given) or 16 characters `YYMMDDhhmmsstnnp`: p is '+' or '-'
for an absolute time whose UTC offset is nn quarter-hours, or 'R' for a time
relative to now, whose fields are then amounts (years, months, days, ...). The
caller passes `now`, so this module never reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone


class InvalidSmppTime(ValueError):
    """A time field that is neither empty nor a valid SMPP absolute/relative time."""


def parse_smpp_time(text: str, now: datetime) -> datetime | None:
    """The moment an SMPP time field designates, in UTC; None when the field is empty."""
    if not text:
        return None
    if len(text) != 16 or not text[:15].isdigit() or text[15] not in "+-R":
        raise InvalidSmppTime(f"{text!r} is not YYMMDDhhmmsstnnp (16 characters)")
    yy, mo, dd, hh, mi, ss = (int(text[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters = int(text[12]), int(text[13:15])
    if text[15] == "R":
        # Relative: months and years have no fixed length; count them as 30 and 365 days,
        # as SMSCs commonly do.
        return now + timedelta(
            days=yy * 365 + mo * 30 + dd, hours=hh, minutes=mi, seconds=ss
        )
    if quarters > 48:
        raise InvalidSmppTime(f"{text!r}: UTC offset of {quarters} quarter-hours exceeds 48")
    sign = 1 if text[15] == "+" else -1
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000)
    except ValueError as exc:
        raise InvalidSmppTime(f"{text!r}: {exc}") from None
    offset = timezone(sign * timedelta(minutes=15 * quarters))
    return local.replace(tzinfo=offset).astimezone(UTC)


def format_smpp_time(moment: datetime) -> str:
    """An absolute SMPP time in UTC ('00+'), e.g. for query_sm_resp final_date."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%y%m%d%H%M%S") + f"{utc.microsecond // 100_000}00+"

"""SMPP absolute and relative times (schedule_delivery_time, validity_period)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu.smpptime import InvalidSmppTime, format_smpp_time, parse_smpp_time

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", None),
        ("261125130000000+", datetime(2026, 11, 25, 13, 0, tzinfo=UTC)),
        ("261125130000004+", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),  # UTC+1h
        ("261125130000008-", datetime(2026, 11, 25, 15, 0, tzinfo=UTC)),  # UTC-2h
        ("261125130000500+", datetime(2026, 11, 25, 13, 0, 0, 500_000, tzinfo=UTC)),
        ("000001000000000R", NOW + timedelta(days=1)),
        ("000000013000000R", NOW + timedelta(hours=1, minutes=30)),
        ("010000000000000R", NOW + timedelta(days=365)),
    ],
)
def test_parse(text, expected):
    assert parse_smpp_time(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["2611251300", "261125130000000X", "26112513000000+", "261325130000000+",
     "261125250000000+", "261125130000049+", "2611251300a0000+"],
)
def test_invalid(text):
    with pytest.raises(InvalidSmppTime):
        parse_smpp_time(text, NOW)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                    timezones=st.just(UTC)))
def test_format_parse_round_trip_to_tenths(moment):
    moment = moment.replace(microsecond=moment.microsecond // 100_000 * 100_000)
    assert parse_smpp_time(format_smpp_time(moment), NOW) == moment

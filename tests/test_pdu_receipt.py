"""Delivery receipt text: the form we write, the variants we read, stat <-> message_state."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu import receipt
from pdu.receipt import InvalidReceipt, MessageState, Receipt

SUBMITTED = datetime(2024, 3, 9, 14, 5)
DONE = datetime(2024, 3, 9, 14, 7)


def make(**changes: object) -> Receipt:
    fields: dict[str, object] = {
        "message_id": "a1b2c3",
        "sub": 1,
        "dlvrd": 1,
        "submit_date": SUBMITTED,
        "done_date": DONE,
        "stat": "DELIVRD",
        "err": 0,
        "text": "Hello world",
    }
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


# -- format ---------------------------------------------------------------------------


def test_format_is_exactly_the_form_every_client_parses() -> None:
    assert receipt.format_receipt(make()) == (
        b"id:a1b2c3 sub:001 dlvrd:001 submit date:2403091405 done date:2403091407 "
        b"stat:DELIVRD err:000 text:Hello world"
    )


def test_format_writes_10_digit_dates_even_with_seconds() -> None:
    # aiosmpplib drops the connection on 12-digit dates.
    formatted = receipt.format_receipt(make(submit_date=SUBMITTED.replace(second=59)))
    dates = re.findall(rb"date:(\d+)", formatted)
    assert [len(d) for d in dates] == [10, 10]


def test_format_keeps_the_dates_zone_as_given() -> None:
    aware = datetime(2024, 3, 9, 23, 59, tzinfo=timezone(timedelta(hours=2)))
    assert b"submit date:2403092359" in receipt.format_receipt(make(submit_date=aware))


def test_format_quotes_at_most_20_characters_and_only_printable_ascii() -> None:
    formatted = receipt.format_receipt(make(text="Ça coûte 5€\nnow, more than twenty"))
    assert formatted.endswith(b"text:?a co?te 5??now, mor")
    assert len(formatted.split(b"text:")[1]) == 20


def test_format_pads_numbers_to_three_digits() -> None:
    formatted = receipt.format_receipt(make(sub=3, dlvrd=0, err=54, stat="UNDELIV"))
    assert b"sub:003 dlvrd:000 " in formatted and b"stat:UNDELIV err:054 " in formatted


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": ""},
        {"message_id": "has space"},
        {"message_id": "idé"},
        {"stat": "DELIVERED"},
        {"err": 1000},
        {"sub": -1},
    ],
)
def test_format_refuses_what_clients_could_not_read(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidReceipt):
        receipt.format_receipt(make(**changes))


# -- parse ----------------------------------------------------------------------------


def test_parse_inverts_format() -> None:
    original = make(err=803, stat="REJECTD", dlvrd=0, text="short")
    assert receipt.parse_receipt(receipt.format_receipt(original)) == original


@given(
    st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=64),
    st.sampled_from(sorted(receipt.STATE_BY_STAT)),
    st.integers(min_value=0, max_value=999),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31)),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_format_then_parse_round_trip(
    message_id: str, stat: str, err: int, when: datetime, quoted: str
) -> None:
    minute = when.replace(second=0, microsecond=0)
    original = make(
        message_id=message_id, stat=stat, err=err, submit_date=minute, done_date=minute, text=quoted
    )
    assert receipt.parse_receipt(receipt.format_receipt(original)) == original


def test_parse_12_digit_dates_with_seconds() -> None:
    parsed = receipt.parse_receipt(
        b"id:77 sub:001 dlvrd:001 submit date:240309140512 done date:240309140759 "
        b"stat:DELIVRD err:000 text:x"
    )
    assert parsed.submit_date == datetime(2024, 3, 9, 14, 5, 12)
    assert parsed.done_date == datetime(2024, 3, 9, 14, 7, 59)


def test_parse_12_digit_dates_with_a_four_digit_year() -> None:
    parsed = receipt.parse_receipt(
        b"id:77 submit date:202403091405 done date:202403091407 stat:DELIVRD"
    )
    assert parsed.submit_date == SUBMITTED and parsed.done_date == DONE


def test_parse_is_case_insensitive_and_reads_capital_text() -> None:
    parsed = receipt.parse_receipt(
        b"ID:0A1B SUB:1 DLVRD:1 SUBMIT DATE:2403091405 DONE DATE:2403091407 "
        b"STAT:delivrd ERR:0 Text:Hi there: friend"
    )
    assert parsed == make(message_id="0A1B", text="Hi there: friend")


def test_parse_without_text() -> None:
    parsed = receipt.parse_receipt(
        b"id:42 sub:001 dlvrd:000 submit date:2403091405 done date:2403091407 stat:EXPIRED err:801"
    )
    assert parsed.text == "" and parsed.stat == "EXPIRED" and parsed.err == 801


def test_parse_underscored_keys_long_stat_and_trailing_nul() -> None:
    parsed = receipt.parse_receipt(
        b"id:42 submit_date:2403091405 done_date:2403091407 stat:DELIVERED err:000\x00"
    )
    assert parsed.stat == "DELIVRD"
    assert (parsed.sub, parsed.dlvrd) == (0, 0)
    assert parsed.message_state is MessageState.DELIVERED


def test_parse_keeps_an_unknown_stat_word() -> None:
    parsed = receipt.parse_receipt(
        b"id:42 submit date:2403091405 done date:2403091407 stat:FAILED err:005"
    )
    assert parsed.stat == "FAILED"
    with pytest.raises(ValueError):
        _ = parsed.message_state


def test_parse_attaches_a_zone_when_asked() -> None:
    parsed = receipt.parse_receipt(receipt.format_receipt(make()), tz=UTC)
    assert parsed.submit_date == SUBMITTED.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no id"),
        (b"sub:001 submit date:2403091405 done date:2403091407 stat:DELIVRD", "no id"),
        (b"id:1 submit date:2403091405 done date:2403091407 err:000", "no stat"),
        (b"id:1 done date:2403091407 stat:DELIVRD", "no submit date"),
        (b"id:1 submit date:24030914 done date:2403091407 stat:DELIVRD", "not YYMMDD"),
        (b"id:1 submit date:2413091405 done date:2403091407 stat:DELIVRD", "not a valid"),
        (b"id:1 submit date:2403091405 done date:2403091407 stat:DELIVRD err:x1", "not a number"),
        (b"this is an MO text, not a receipt", "no id"),
    ],
)
def test_parse_refuses_unusable_receipts(data: bytes, message: str) -> None:
    with pytest.raises(InvalidReceipt, match=message):
        receipt.parse_receipt(data)


# -- stat <-> message_state -----------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "stat"),
    [
        (1, "ENROUTE"),
        (2, "DELIVRD"),
        (3, "EXPIRED"),
        (4, "DELETED"),
        (5, "UNDELIV"),
        (6, "ACCEPTD"),
        (7, "UNKNOWN"),
        (8, "REJECTD"),
    ],
)
def test_stat_and_message_state_map_both_ways(state: int, stat: str) -> None:
    assert receipt.stat_for_state(state) == stat
    assert receipt.state_for_stat(stat) == state
    assert receipt.state_for_stat(stat.lower()) == state


def test_final_states_are_those_after_which_nothing_happens() -> None:
    assert receipt.MessageState.DELIVERED == 2 and receipt.MessageState.REJECTED == 8
    assert receipt.MessageState.ENROUTE not in receipt.FINAL_STATES
    assert receipt.MessageState.ACCEPTED not in receipt.FINAL_STATES
    assert len(receipt.FINAL_STATES) == 6


@pytest.mark.parametrize("rd, state, wanted", [
    (0, 2, False), (1, 2, True), (1, 5, True), (2, 2, False), (2, 5, True), (0x11, 3, True),
])
def test_registered_delivery_says_which_outcomes_get_a_receipt(rd, state, wanted) -> None:
    assert receipt.wants_receipt(rd, state) is wanted


def test_receipt_deliver_sm_goes_from_the_mobile_to_the_sender() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    pdu = receipt.receipt_deliver_sm(
        message_id="42", state=5, err=27, submit_date=at, done_date=at, text="hello",
        mobile=(1, 1, "33612345678"), esme=(5, 0, "ACME"), sub=3, dlvrd=2,
        network_error=b"\x03\x00\x1b", outgoing_id="43",
    )
    assert (pdu.source_addr, pdu.destination_addr, pdu.esm_class) == ("33612345678", "ACME", 4)
    read = receipt.parse_receipt(pdu.short_message)
    assert (read.message_id, read.sub, read.dlvrd, read.stat, read.err) == (
        "42", 3, 2, "UNDELIV", 27)
    assert receipt.read_receipt(pdu) == ("42", 5, 27, b"\x03\x00\x1b")
    assert receipt.is_receipt(pdu.esm_class)
    assert receipt.is_absent_subscriber(27, None)
    assert receipt.is_absent_subscriber(0, b"\x03\x00\x1b")
    assert not receipt.is_absent_subscriber(1, b"\x03\x00\x01")


@pytest.mark.parametrize("state", [0, 9, 255])
def test_no_stat_for_other_states(state: int) -> None:
    with pytest.raises(ValueError):
        receipt.stat_for_state(state)


def test_state_for_long_spellings_and_unknown_words() -> None:
    assert receipt.state_for_stat("Delivered") is MessageState.DELIVERED
    assert receipt.state_for_stat("UNDELIVERABLE") is MessageState.UNDELIVERABLE
    with pytest.raises(ValueError):
        receipt.state_for_stat("FAILED")

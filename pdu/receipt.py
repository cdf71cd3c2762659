"""Delivery receipts (SMPP 3.4 Appendix B) and MOs as deliver_sm, both ways.

The receipt text is de facto rather than normative: we write the one form every client
we serve parses, and read the many variants upstream SMSCs send. Also the mapping
between receipt stat words and message_state values (5.2.28), which states are final,
what registered_delivery asks for, and the deliver_sm PDUs of a receipt or an MO for a
customer, built from plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import IntEnum

from pdu.codec import DeliverSm, addresses
from pdu.fields import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_MESSAGE_TYPE,
    ESM_CLASS_UDHI,
    RECEIPT_ALWAYS,
    RECEIPT_MASK,
    RECEIPT_ON_FAILURE,
)
from pdu.tlv import Tag, as_cstr, as_int, cstr_tlv, int_tlv


class MessageState(IntEnum):
    """SMPP 3.4 message_state (section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


FINAL_STATES = frozenset({
    MessageState.DELIVERED, MessageState.EXPIRED, MessageState.DELETED,
    MessageState.UNDELIVERABLE, MessageState.UNKNOWN, MessageState.REJECTED,
})
"""States after which nothing more happens to a message (ENROUTE and ACCEPTED are not)."""


STAT_ENROUTE = "ENROUTE"
STAT_DELIVERED = "DELIVRD"
STAT_EXPIRED = "EXPIRED"
STAT_DELETED = "DELETED"
STAT_UNDELIVERABLE = "UNDELIV"
STAT_ACCEPTED = "ACCEPTD"
STAT_UNKNOWN = "UNKNOWN"
STAT_REJECTED = "REJECTD"

STAT_BY_STATE: dict[int, str] = {
    MessageState.ENROUTE: STAT_ENROUTE,
    MessageState.DELIVERED: STAT_DELIVERED,
    MessageState.EXPIRED: STAT_EXPIRED,
    MessageState.DELETED: STAT_DELETED,
    MessageState.UNDELIVERABLE: STAT_UNDELIVERABLE,
    MessageState.ACCEPTED: STAT_ACCEPTED,
    MessageState.UNKNOWN: STAT_UNKNOWN,
    MessageState.REJECTED: STAT_REJECTED,
}
STATE_BY_STAT: dict[str, MessageState] = {
    stat: MessageState(state) for state, stat in STAT_BY_STATE.items()
}

# Long spellings some SMSCs write instead of the 7-letter words.
_STAT_ALIASES = {
    "DELIVERED": STAT_DELIVERED,
    "UNDELIVERABLE": STAT_UNDELIVERABLE,
    "UNDELIVERED": STAT_UNDELIVERABLE,
    "ACCEPTED": STAT_ACCEPTED,
    "REJECTED": STAT_REJECTED,
}

RECEIPT_TEXT_LENGTH = 20
"""Characters of the original message a receipt quotes (SMPP 3.4 Appendix B)."""

DATE_FORMAT = "%y%m%d%H%M"
"""YYMMDDhhmm: the 10-digit form; aiosmpplib drops a receipt with 12-digit dates."""


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


class InvalidReceipt(ValueError):
    """Receipt text we cannot read (or a Receipt we refuse to write)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    sub: int
    dlvrd: int
    submit_date: datetime
    done_date: datetime
    stat: str
    err: int
    text: str = ""

    @property
    def message_state(self) -> MessageState:
        return state_for_stat(self.stat)


def stat_for_state(state: int) -> str:
    """The receipt stat word for an SMPP message_state; ValueError for other values."""
    try:
        return STAT_BY_STATE[state]
    except KeyError:
        raise ValueError(f"no receipt stat for message_state {state}") from None


def state_for_stat(stat: str) -> MessageState:
    """The SMPP message_state for a receipt stat word (long spellings accepted)."""
    word = stat.upper()
    try:
        return STATE_BY_STAT[_STAT_ALIASES.get(word, word)]
    except KeyError:
        raise ValueError(f"unknown receipt stat {stat!r}") from None


def format_receipt(r: Receipt) -> bytes:
    """The receipt text every client we serve parses, as ASCII octets.

    id:<id> sub:NNN dlvrd:NNN submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:WORD
    err:NNN text:<first 20 characters>. The text goes last because clients split on
    spaces and it may hold spaces; characters outside printable ASCII become '?' so the
    octets read the same under data_coding 0 in every client.
    """
    if not r.message_id or not r.message_id.isascii() or any(c.isspace() for c in r.message_id):
        raise InvalidReceipt(f"message_id {r.message_id!r} must be non-empty ASCII without spaces")
    if r.stat not in STATE_BY_STAT:
        raise InvalidReceipt(f"stat {r.stat!r} is not one of {sorted(STATE_BY_STAT)}")
    for name, value in (("sub", r.sub), ("dlvrd", r.dlvrd), ("err", r.err)):
        if not 0 <= value <= 999:
            raise InvalidReceipt(f"{name} {value} does not fit three digits")
    text = _NOT_PRINTABLE_ASCII.sub("?", r.text[:RECEIPT_TEXT_LENGTH])
    return (
        f"id:{r.message_id} sub:{r.sub:03d} dlvrd:{r.dlvrd:03d} "
        f"submit date:{_yymmddhhmm(r.submit_date)} "
        f"done date:{_yymmddhhmm(r.done_date)} "
        f"stat:{r.stat} err:{r.err:03d} text:{text}"
    ).encode("ascii")


def _yymmddhhmm(moment: datetime) -> str:
    # Same as strftime(DATE_FORMAT), several times faster; receipts are on the hot path.
    return (
        f"{moment.year % 100:02d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}"
    )


# Keys before the text: "submit date" is also seen as submit_date / submitdate.
_FIELD = re.compile(
    r"(?:^|\s)(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err)\s*:\s*(\S*)",
    re.IGNORECASE,
)
_DATE_KEY = re.compile(r"[ _]?date$")
_TEXT = re.compile(r"(?:^|\s)text:", re.IGNORECASE)


def parse_receipt(data: bytes, *, tz: tzinfo | None = None) -> Receipt:
    """Read receipt text as SMSCs send it; InvalidReceipt when id, stat or a date is unusable.

    Accepts keys in any case, dates of 10 digits (YYMMDDhhmm) or 12 (YYMMDDhhmmss, or
    YYYYMMDDhhmm when that is the only valid reading), unpadded numbers, a missing
    text (then ""), and long stat spellings (DELIVERED -> DELIVRD). Missing sub,
    dlvrd or err read as 0. Dates come back naive unless `tz` is given: the receipt
    does not say which zone the SMSC used.
    """
    raw = data.rstrip(b"\x00").decode("latin-1")
    text_match = _TEXT.search(raw)
    head, text = (raw[: text_match.start()], raw[text_match.end() :]) if text_match else (raw, "")
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(head):
        key = _DATE_KEY.sub(" date", match.group(1).lower())
        fields.setdefault(key, match.group(2))

    message_id = fields.get("id")
    if not message_id:
        raise InvalidReceipt("receipt has no id")
    stat = fields.get("stat", "").upper()
    if not stat:
        raise InvalidReceipt("receipt has no stat")
    return Receipt(
        message_id=message_id,
        sub=_number(fields, "sub"),
        dlvrd=_number(fields, "dlvrd"),
        submit_date=_date(fields, "submit date", tz),
        done_date=_date(fields, "done date", tz),
        stat=_STAT_ALIASES.get(stat, stat),
        err=_number(fields, "err"),
        text=text,
    )


def _number(fields: dict[str, str], key: str) -> int:
    value = fields.get(key)
    if not value:
        return 0
    if not value.isdigit():
        raise InvalidReceipt(f"{key} {value!r} is not a number")
    return int(value)


def _date(fields: dict[str, str], key: str, tz: tzinfo | None) -> datetime:
    value = fields.get(key)
    if value is None:
        raise InvalidReceipt(f"receipt has no {key}")
    if not value.isdigit() or len(value) not in (10, 12):
        raise InvalidReceipt(f"{key} {value!r} is not YYMMDDhhmm or YYMMDDhhmmss")
    # Integer slicing, not strptime: this runs for every upstream receipt.
    n = [int(value[i : i + 2]) for i in range(0, len(value), 2)]
    readings = [(2000 + n[0], n[1], n[2], n[3], n[4], 0)]
    if len(value) == 12:
        readings = [(2000 + n[0], n[1], n[2], n[3], n[4], n[5]),
                    (n[0] * 100 + n[1], n[2], n[3], n[4], n[5], 0)]
    for year, month, day, hour, minute, second in readings:
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            continue
    raise InvalidReceipt(f"{key} {value!r} is not a valid date")


# Which outcome of a split message's segments the whole message reports when not all
# were delivered: the one a sender can least expect to change by trying again last.
_WORST_FIRST = (
    MessageState.UNDELIVERABLE,
    MessageState.REJECTED,
    MessageState.EXPIRED,
    MessageState.DELETED,
    MessageState.UNKNOWN,
)


def combine_states(states: list[tuple[int, int]]) -> tuple[MessageState, int, int]:
    """(message_state, err, delivered) of a message from its segments' (state, err).

    DELIVERED only if every segment was; otherwise the worst segment state, with the
    first error among segments in that state, and how many segments were delivered.
    """
    delivered = sum(1 for state, _ in states if state == MessageState.DELIVERED)
    if delivered == len(states):
        return MessageState.DELIVERED, 0, delivered
    present = {state for state, _ in states}
    worst = next((s for s in _WORST_FIRST if s in present), MessageState.UNKNOWN)
    err = next((e for s, e in states if s == worst and e), 0)
    return worst, err, delivered


# --- what registered_delivery asks for, and deliver_sm both ways --------------------


def wants_receipt(registered_delivery: int, state: int) -> bool:
    """True if a message asking `registered_delivery` gets a receipt for final `state`."""
    asked = registered_delivery & RECEIPT_MASK
    if asked == RECEIPT_ALWAYS:
        return True
    return asked == RECEIPT_ON_FAILURE and state != MessageState.DELIVERED


def is_receipt(esm_class: int) -> bool:
    """A deliver_sm/data_sm carrying a receipt (final or intermediate), not an MO."""
    return esm_class & ESM_CLASS_MESSAGE_TYPE in (
        ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION
    )


# GSM MAP error 27, absent subscriber: what an SMSC can later clear with an
# alert_notification (in err:, or in network_error_code after its network type octet).
ABSENT_SUBSCRIBER = 27


def is_absent_subscriber(err: int, network_error: bytes | None) -> bool:
    return err == ABSENT_SUBSCRIBER or (
        network_error is not None and len(network_error) == 3
        and int.from_bytes(network_error[1:], "big") == ABSENT_SUBSCRIBER
    )


def receipt_deliver_sm(
    *,
    message_id: str,
    state: int,
    err: int,
    submit_date: datetime,
    done_date: datetime,
    text: str,
    mobile: tuple[int, int, str],
    esme: tuple[int, int, str],
    sub: int = 1,
    dlvrd: int | None = None,
    network_error: bytes | None = None,
    outgoing_id: str | None = None,
) -> DeliverSm:
    """The receipt for one message as the clients we serve read it: from the mobile
    (ton, npi, addr) to the ESME's sender, the text of format_receipt, with
    receipted_message_id and message_state (and network_error_code, and the provider's
    outgoing_id vendor TLV when given)."""
    body = format_receipt(Receipt(
        message_id=message_id, sub=sub,
        dlvrd=dlvrd if dlvrd is not None else int(state == MessageState.DELIVERED),
        submit_date=submit_date, done_date=done_date, stat=stat_for_state(state),
        err=min(err, 999), text=text,
    ))
    tlvs = [cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, message_id), int_tlv(Tag.MESSAGE_STATE, state)]
    if network_error is not None and len(network_error) == 3:
        tlvs.append((Tag.NETWORK_ERROR_CODE, network_error))
    if outgoing_id is not None:
        tlvs.append(cstr_tlv(Tag.OUTGOING_ID, outgoing_id))
    return DeliverSm(
        source_addr_ton=mobile[0], source_addr_npi=mobile[1], source_addr=mobile[2],
        dest_addr_ton=esme[0], dest_addr_npi=esme[1], destination_addr=esme[2],
        esm_class=ESM_CLASS_DELIVERY_RECEIPT, short_message=body, tlvs=tlvs,
    )


# What of an upstream MO the customer gets besides the mandatory fields.
MO_TLVS_KEPT = frozenset({
    Tag.MESSAGE_PAYLOAD, Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM,
    Tag.SOURCE_PORT, Tag.DESTINATION_PORT, Tag.USER_MESSAGE_REFERENCE,
})


def mo_deliver_sm(upstream: DeliverSm, *, incoming_id: str | None = None) -> DeliverSm:
    """An upstream's MO as the customer gets it: the same addresses, coding and text,
    the UDHI bit, the linking and port TLVs (and the provider's incoming_id)."""
    tlvs = [(t, v) for t, v in upstream.tlvs if t in MO_TLVS_KEPT]
    if incoming_id is not None:
        tlvs.append(cstr_tlv(Tag.INCOMING_ID, incoming_id))
    return DeliverSm(
        **addresses(upstream), esm_class=upstream.esm_class & ESM_CLASS_UDHI,
        protocol_id=upstream.protocol_id, data_coding=upstream.data_coding,
        short_message=upstream.short_message, tlvs=tlvs,
    )


def read_receipt(pdu: DeliverSm) -> tuple[str, int, int, bytes | None]:
    """(upstream id, message_state, err, network_error_code) of an upstream receipt.

    The TLVs win over the text where both exist: they are typed, the text is de facto.
    Raises InvalidReceipt when neither gives an id and a state.
    """
    raw_id = pdu.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
    raw_state = pdu.get_tlv(Tag.MESSAGE_STATE)
    err = 0
    parsed: Receipt | None = None
    try:
        parsed = parse_receipt(pdu.short_message or pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b"")
        err = parsed.err
    except InvalidReceipt:
        if raw_id is None or raw_state is None:
            raise
    upstream_id = as_cstr(raw_id) if raw_id else parsed.message_id  # type: ignore[union-attr]
    state = as_int(raw_state) if raw_state else int(parsed.message_state)  # type: ignore[union-attr]
    return upstream_id, state, err, pdu.get_tlv(Tag.NETWORK_ERROR_CODE)

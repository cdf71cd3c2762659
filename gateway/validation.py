"""What makes a submit_sm acceptable, checked in memory before any credit moves.

Pure functions of the PDU, the account's text settings and `now`: addresses by kind
(the provider's TON/NPI rules), flags, data_coding and the bytes it claims, times,
and the number of segments the message costs. A refusal is a `SubmitRejected`
carrying the command_status the spec (or the provider's vendor table) gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pdu import gsm7
from pdu.codec import SubmitSm
from pdu.smpptime import InvalidSmppTime, parse_smpp_time
from pdu.status import CommandStatus as S
from pdu.text import (
    Alphabet,
    InvalidText,
    UnsupportedDataCoding,
    alphabet_for,
    count_segments,
    decode_short_message,
)
from pdu.tlv import Tag
from pdu.udh import ESM_CLASS_UDHI, InvalidUdh, parse_udh, septet_fill_bits

# TON / NPI values (SMPP 3.4 5.2.5, 5.2.6) the provider accepts.
TON_INTERNATIONAL = 1
TON_NETWORK_SPECIFIC = 3  # shortcodes
TON_ALPHANUMERIC = 5
NPI_UNKNOWN = 0
NPI_ISDN = 1

ALPHANUMERIC_MAX = 11
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 .\-_&]+")
_E164 = re.compile(r"[1-9][0-9]{6,14}")
_SHORTCODE = re.compile(r"[0-9]{3,8}")

# esm_class bits 2-5 (message type): in a submit only these are meaningful.
ESM_TYPE_MASK = 0x3C
ESM_TYPES_ALLOWED_IN_SUBMIT = frozenset({0x00, 0x08, 0x10})
# registered_delivery uses bits 0-4; bits 0-1 == 3 is reserved.
REGISTERED_DELIVERY_MASK = 0x1F
MAX_PRIORITY = 3
MAX_SINGLE_USER_DATA = 140
MAX_SINGLE_SEPTETS = 160


class SubmitRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class CheckedSubmit:
    body: bytes
    segments: int
    schedule_at: datetime | None
    expires_at: datetime | None


def check_source(ton: int, npi: int, addr: str) -> None:
    if ton == TON_ALPHANUMERIC:
        if npi != NPI_UNKNOWN:
            raise SubmitRejected(S.ESME_RINVSRCNPI, "an alphanumeric sender takes NPI 0")
        if (
            not _ALPHANUMERIC.fullmatch(addr)
            or len(addr) > ALPHANUMERIC_MAX
            or addr.isdigit()
        ):
            raise SubmitRejected(
                S.ESME_RINVSRCADR, "an alphanumeric sender is 1-11 letters/digits, not all digits"
            )
    elif ton == TON_NETWORK_SPECIFIC:
        if npi != NPI_ISDN:
            raise SubmitRejected(S.ESME_RINVSRCNPI, "a shortcode sender takes NPI 1")
        if not _SHORTCODE.fullmatch(addr):
            raise SubmitRejected(S.ESME_RINVSRCADR, "a shortcode is 3 to 8 digits")
    elif ton == TON_INTERNATIONAL:
        if npi != NPI_ISDN:
            raise SubmitRejected(S.ESME_RINVSRCNPI, "an international sender takes NPI 1")
        if not _E164.fullmatch(addr):
            raise SubmitRejected(
                S.ESME_RINVSRCADR, "an international sender is E.164 digits without '+'"
            )
    else:
        raise SubmitRejected(
            S.ESME_RINVSRCTON, f"source TON {ton}: use 5 (alphanumeric), 3 (shortcode) or 1"
        )


def check_destination(ton: int, npi: int, addr: str) -> None:
    if ton != TON_INTERNATIONAL:
        raise SubmitRejected(S.ESME_RINVDSTTON, "destination TON must be 1 (international)")
    if npi != NPI_ISDN:
        raise SubmitRejected(S.ESME_RINVDSTNPI, "destination NPI must be 1 (ISDN/E.164)")
    if not _E164.fullmatch(addr):
        raise SubmitRejected(
            S.ESME_RINVDSTADR, "destination must be E.164 digits with country code, no '+'"
        )


def check_flags(pdu: SubmitSm) -> None:
    if pdu.esm_class & ESM_TYPE_MASK not in ESM_TYPES_ALLOWED_IN_SUBMIT:
        raise SubmitRejected(S.ESME_RINVESMCLASS, f"esm_class 0x{pdu.esm_class:02X}")
    rd = pdu.registered_delivery
    if rd & ~REGISTERED_DELIVERY_MASK or rd & 0x03 == 0x03:
        raise SubmitRejected(S.ESME_RINVREGDLVFLG, f"registered_delivery 0x{rd:02X}")
    if pdu.priority_flag > MAX_PRIORITY:
        raise SubmitRejected(S.ESME_RINVPRTFLG, f"priority_flag {pdu.priority_flag}")
    if pdu.replace_if_present_flag > 1:
        raise SubmitRejected(S.ESME_RINVREPFLAG, "replace_if_present_flag must be 0 or 1")


def check_times(
    pdu: SubmitSm, now: datetime, max_validity: timedelta
) -> tuple[datetime | None, datetime | None]:
    try:
        schedule_at = parse_smpp_time(pdu.schedule_delivery_time, now)
    except InvalidSmppTime as exc:
        raise SubmitRejected(S.ESME_RINVSCHED, str(exc)) from None
    try:
        expires_at = parse_smpp_time(pdu.validity_period, now)
    except InvalidSmppTime as exc:
        raise SubmitRejected(S.ESME_RINVEXPIRY, str(exc)) from None
    if expires_at is not None:
        if expires_at <= now:
            raise SubmitRejected(S.ESME_RINVEXPIRY, "validity_period is already past")
        # A longer validity than the service keeps messages is cut to the service's.
        expires_at = min(expires_at, now + max_validity)
        if schedule_at is not None and schedule_at >= expires_at:
            raise SubmitRejected(S.ESME_RINVSCHED, "scheduled after the message expires")
    if schedule_at is not None and schedule_at <= now:
        schedule_at = None  # already due: send now
    return schedule_at, expires_at


def message_body(pdu: SubmitSm) -> bytes:
    payload = pdu.get_tlv(Tag.MESSAGE_PAYLOAD)
    if payload is None:
        return pdu.short_message
    if pdu.short_message:
        raise SubmitRejected(
            S.ESME_ROPTPARNOTALLWD, "short_message and message_payload are both set"
        )
    return payload


def count_message_segments(
    pdu: SubmitSm, body: bytes, *, gsm_packed: bool, max_segments: int
) -> int:
    """Segments this PDU costs, after checking its bytes are valid for its data_coding."""
    dc = pdu.data_coding
    try:
        alphabet = alphabet_for(dc)
    except UnsupportedDataCoding:
        raise SubmitRejected(S.ESME_RUNSDATACODING, f"data_coding 0x{dc:02X}") from None
    udhi = bool(pdu.esm_class & ESM_CLASS_UDHI)
    user_data, fill_bits = body, 0
    if udhi:
        try:
            _elements, user_data = parse_udh(body)
        except InvalidUdh as exc:
            raise SubmitRejected(S.ESME_RINVMSGLEN, str(exc)) from None
        fill_bits = septet_fill_bits(len(body) - len(user_data))
    _check_text(user_data, dc, alphabet, gsm_packed, fill_bits, segment=udhi)
    is_part = udhi or pdu.get_tlv(Tag.SAR_MSG_REF_NUM) is not None
    if is_part:
        # The client already split it: this PDU is one segment, and must fit in one.
        if _part_size(body, user_data, alphabet, gsm_packed) > _part_capacity(alphabet, gsm_packed):
            raise SubmitRejected(S.ESME_RINVMSGLEN, "a message segment exceeds 140 octets")
        segments = 1
    else:
        segments = count_segments(body, dc, gsm_packed=gsm_packed)
    if segments > max_segments:
        raise SubmitRejected(
            S.ESME_RINVMSGLEN, f"{segments} segments, at most {max_segments} allowed"
        )
    return segments


def _part_capacity(alphabet: Alphabet, gsm_packed: bool) -> int:
    return MAX_SINGLE_SEPTETS if alphabet is Alphabet.GSM7 and not gsm_packed else MAX_SINGLE_USER_DATA


def _part_size(body: bytes, user_data: bytes, alphabet: Alphabet, gsm_packed: bool) -> int:
    """Size of one client-made segment: septets for unpacked GSM (one per byte, the UDH
    counted in the septets it displaces), octets otherwise."""
    if alphabet is Alphabet.GSM7 and not gsm_packed:
        udh_octets = len(body) - len(user_data)
        return -(-udh_octets * 8 // 7) + len(user_data)
    return len(body)


def _check_text(
    data: bytes, dc: int, alphabet: Alphabet, gsm_packed: bool, fill_bits: int, segment: bool
) -> None:
    if alphabet is Alphabet.GSM7:
        if segment and not gsm_packed and data.endswith(b"\x1b"):
            # A splitter (smpplib's) may cut an escape pair across two segments;
            # the dangling half is the client's, not a coding error.
            data = data[:-1]
        try:
            if gsm_packed:
                gsm7.decode_packed(data, fill_bits=fill_bits, strict=True)
            else:
                gsm7.decode_unpacked(data, strict=True)
        except gsm7.InvalidGsm7 as exc:
            raise SubmitRejected(S.ESME_RINVGSM7CODING, str(exc)) from None
        return
    if alphabet is Alphabet.OCTET:
        return
    try:
        decode_short_message(data, dc, strict=True)
    except (InvalidText, UnicodeDecodeError) as exc:
        raise SubmitRejected(S.ESME_RINVMSGLEN, f"bytes invalid for data_coding {dc}: {exc}") \
            from None


def check_submit(
    pdu: SubmitSm,
    *,
    gsm_packed: bool,
    max_segments: int,
    now: datetime,
    max_validity: timedelta,
) -> CheckedSubmit:
    """Every per-message check, in the order a client can act on the answer."""
    check_source(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr)
    check_destination(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)
    check_flags(pdu)
    schedule_at, expires_at = check_times(pdu, now, max_validity)
    body = message_body(pdu)
    segments = count_message_segments(
        pdu, body, gsm_packed=gsm_packed, max_segments=max_segments
    )
    return CheckedSubmit(body, segments, schedule_at, expires_at)

"""What makes a submit_sm acceptable, checked in memory before any credit moves.

Pure functions of the PDU, the account's policy and `now`: the addressing policy (the
source is one of the account's enabled senders, lenient or strict about TON/NPI; the
destination international), flags, data_coding and the bytes it claims, times, and the
number of segments the message costs. A refusal is a `SubmitRejected`
carrying the command_status the spec (or the provider's vendor table) gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.senders import (
    KIND_FOR_TON,
    LENIENT_NPIS,
    LENIENT_SOURCE_TONS,
    NPI_FOR_KIND,
    TON_FOR_KIND,
    is_valid_sender,
)
from gateway.accounts import Sender, SubmitPolicy
from pdu import gsm7
from pdu.codec import SubmitSm
from pdu.fields import (
    ESM_CLASS_MESSAGE_TYPE,
    ESM_CLASS_UDHI,
    ESM_TYPES_IN_SUBMIT,
    MAX_PRIORITY,
    NPI_ISDN,
    RECEIPT_MASK,
    RECEIPT_RESERVED,
    REGISTERED_DELIVERY_MASK,
    TON_INTERNATIONAL,
    TON_NATIONAL,
    TON_UNKNOWN,
)
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
from pdu.udh import InvalidUdh, parse_udh, septet_fill_bits

_E164 = re.compile(r"[1-9][0-9]{6,14}")
# What clients set for a destination they mean as international: unknown, international
# or national TON; unknown or ISDN NPI (lenient addressing takes all as E.164).
LENIENT_DEST_TONS = frozenset({TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL})

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
    source: Address
    dest: Address


@dataclass(frozen=True, slots=True)
class Address:
    """An address as the gateway records it and sends it upstream."""

    addr: str
    ton: int
    npi: int


def resolve_source(
    senders: Mapping[str, Sender], ton: int, npi: int, addr: str, *, strict: bool
) -> Address:
    """The source_addr of a submit, checked against the account's enabled senders.

    The enabled senders are the authority. Lenient (the default): an exact match of an
    enabled sender is taken whatever TON/NPI the client set among those clients use, and
    normalised to the sender's kind (alphanumeric 5/0, shortcode 3/1, numeric 1/1); a
    leading '+' on a number is dropped. Strict: the TON must name the sender's kind and
    the NPI must be the kind's, else ESME_RINVSRCTON / ESME_RINVSRCNPI, as the provider's
    specification reads.
    """
    if strict:
        kind = KIND_FOR_TON.get(ton)
        if kind is None:
            raise SubmitRejected(
                S.ESME_RINVSRCTON, f"source TON {ton}: use 5 (alphanumeric), 3 (shortcode) or 1"
            )
        if npi != NPI_FOR_KIND[kind]:
            raise SubmitRejected(
                S.ESME_RINVSRCNPI, f"a {kind} sender takes NPI {NPI_FOR_KIND[kind]}"
            )
        if not is_valid_sender(addr, kind):
            raise SubmitRejected(S.ESME_RINVSRCADR, f"{addr!r} is not a valid {kind} sender")
        sender = senders.get(addr)
        if sender is None or sender.state != "enabled" or sender.kind != kind:
            raise SubmitRejected(
                S.ESME_RINVSRCADR, f"sender {addr!r} is not an enabled {kind} sender"
            )
        return Address(addr, ton, npi)
    if ton not in LENIENT_SOURCE_TONS:
        raise SubmitRejected(S.ESME_RINVSRCTON, f"source TON {ton} is not 0, 1, 2, 3 or 5")
    if npi not in LENIENT_NPIS:
        raise SubmitRejected(S.ESME_RINVSRCNPI, f"source NPI {npi} is not 0 or 1")
    sender = senders.get(addr)
    if sender is None and addr.startswith("+"):
        addr = addr[1:]
        sender = senders.get(addr)
    if sender is None or sender.state != "enabled":
        raise SubmitRejected(S.ESME_RINVSRCADR, f"sender {addr!r} is not enabled")
    return Address(addr, TON_FOR_KIND[sender.kind], NPI_FOR_KIND[sender.kind])


def resolve_destination(ton: int, npi: int, addr: str, *, strict: bool) -> Address:
    """A destination as international E.164 (TON 1, NPI 1).

    Strict: exactly TON 1 / NPI 1 and the digits. Lenient: TON 0, 1 or 2 and NPI 0 or 1
    with 7 to 15 digits are taken as international, a leading '+' stripped.
    """
    if strict:
        if ton != TON_INTERNATIONAL:
            raise SubmitRejected(S.ESME_RINVDSTTON, "destination TON must be 1 (international)")
        if npi != NPI_ISDN:
            raise SubmitRejected(S.ESME_RINVDSTNPI, "destination NPI must be 1 (ISDN/E.164)")
    else:
        if ton not in LENIENT_DEST_TONS:
            raise SubmitRejected(S.ESME_RINVDSTTON, f"destination TON {ton} is not 0, 1 or 2")
        if npi not in LENIENT_NPIS:
            raise SubmitRejected(S.ESME_RINVDSTNPI, f"destination NPI {npi} is not 0 or 1")
        addr = addr.removeprefix("+")
    if not _E164.fullmatch(addr):
        raise SubmitRejected(
            S.ESME_RINVDSTADR, "destination must be E.164 digits with country code"
        )
    return Address(addr, TON_INTERNATIONAL, NPI_ISDN)


def check_flags(pdu: SubmitSm) -> None:
    if pdu.esm_class & ESM_CLASS_MESSAGE_TYPE not in ESM_TYPES_IN_SUBMIT:
        raise SubmitRejected(S.ESME_RINVESMCLASS, f"esm_class 0x{pdu.esm_class:02X}")
    rd = pdu.registered_delivery
    if rd & ~REGISTERED_DELIVERY_MASK or rd & RECEIPT_MASK == RECEIPT_RESERVED:
        raise SubmitRejected(S.ESME_RINVREGDLVFLG, f"registered_delivery 0x{rd:02X}")
    if pdu.priority_flag > MAX_PRIORITY:
        raise SubmitRejected(S.ESME_RINVPRTFLG, f"priority_flag {pdu.priority_flag}")
    if pdu.replace_if_present_flag > 1:
        raise SubmitRejected(S.ESME_RINVREPFLAG, "replace_if_present_flag must be 0 or 1")


def check_times(
    pdu: SubmitSm, now: datetime, default_validity: timedelta, max_validity: timedelta
) -> tuple[datetime | None, datetime | None]:
    """(schedule_at, expires_at): no validity_period means `default_validity` from the
    later of now and the schedule; a longer one is cut to `max_validity`."""
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
    if expires_at is None:
        expires_at = (schedule_at or now) + default_validity
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
    policy: SubmitPolicy,
    *,
    now: datetime,
    default_validity: timedelta,
    max_validity: timedelta,
) -> CheckedSubmit:
    """Every per-message check, in the order a client can act on the answer."""
    source = resolve_source(
        policy.senders, pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr,
        strict=policy.strict,
    )
    dest = resolve_destination(
        pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr, strict=policy.strict
    )
    check_flags(pdu)
    schedule_at, expires_at = check_times(pdu, now, default_validity, max_validity)
    body = message_body(pdu)
    segments = count_message_segments(
        pdu, body, gsm_packed=policy.gsm_packed, max_segments=policy.max_segments
    )
    return CheckedSubmit(body, segments, schedule_at, expires_at, source, dest)

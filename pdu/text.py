"""short_message text: data_coding values, text codecs, segment counting and splitting.

Maps SMPP 3.4 data_coding (5.2.19, plus the GSM 03.38 message-class group 0xF0..0xFF)
to an alphabet, decodes and encodes text in it, and counts the SMS segments a payload
costs on the air. The gateway prices by `count_segments`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from enum import Enum

from pdu import gsm7, udh
from pdu.gsm7 import InvalidGsm7, TextEncodeError

# SMPP 3.4 section 5.2.19 data_coding values we give a meaning to.
DATA_CODING_DEFAULT = 0x00
"""SMSC default alphabet; for this gateway, the GSM 03.38 default alphabet."""
DATA_CODING_IA5 = 0x01
"""IA5 (CCITT T.50) / ASCII, one character per octet."""
DATA_CODING_OCTET_UNSPECIFIED_02 = 0x02
"""Octet unspecified (8-bit binary); SMPP 3.4 lists it twice, as 0x02 and 0x04."""
DATA_CODING_LATIN1 = 0x03
"""ISO-8859-1, one character per octet."""
DATA_CODING_OCTET_UNSPECIFIED = 0x04
"""Octet unspecified (8-bit binary)."""
DATA_CODING_UCS2 = 0x08
"""ISO/IEC-10646 UCS-2, big-endian; we accept and produce UTF-16 surrogate pairs."""

DATA_CODING_MESSAGE_CLASS_GROUP = 0xF0
"""GSM 03.38 coding group 1111: data coding / message class (values 0xF0..0xFF)."""
DATA_CODING_MESSAGE_CLASS_8BIT = 0x04
"""In that group, bit 2 picks the alphabet: 0 GSM default, 1 8-bit data."""
DATA_CODING_MESSAGE_CLASS_MASK = 0x03
"""In that group, bits 1..0 are the message class (0 flash, 1 ME, 2 SIM, 3 TE)."""

# Air-interface limits (3GPP TS 23.040): 140 octets of user data per SMS. With a UDH
# holding an 8-bit concatenation element (6 octets) the text gets the rest; GSM text
# starts on a septet boundary after the UDH, so 1 fill bit is lost there.
MAX_USER_DATA_OCTETS = 140
GSM7_SINGLE_SEPTETS = 160
"""(140 * 8) // 7: one GSM 7-bit SMS."""
GSM7_CONCAT_SEPTETS = 153
"""(134 * 8 - 1 fill bit) // 7: one part of a concatenated GSM 7-bit SMS."""
UCS2_SINGLE_UNITS = 70
"""140 // 2 UTF-16 code units: one UCS-2 SMS."""
UCS2_CONCAT_UNITS = 67
"""134 // 2 UTF-16 code units: one part of a concatenated UCS-2 SMS."""
OCTET_SINGLE_OCTETS = 140
"""One 8-bit (Latin-1 or binary) SMS."""
OCTET_CONCAT_OCTETS = 134
"""One part of a concatenated 8-bit SMS."""


class Alphabet(Enum):
    GSM7 = "gsm7"
    IA5 = "ia5"
    LATIN1 = "latin1"
    OCTET = "octet"
    UCS2 = "ucs2"


class UnsupportedDataCoding(ValueError):
    """A data_coding we do not handle (vendor status ESME_RUNSDATACODING), or binary as text."""


class InvalidText(ValueError):
    """short_message octets that are not valid in their (non-GSM) data_coding."""


_SIMPLE_CODINGS = {
    DATA_CODING_DEFAULT: Alphabet.GSM7,
    DATA_CODING_IA5: Alphabet.IA5,
    DATA_CODING_OCTET_UNSPECIFIED_02: Alphabet.OCTET,
    DATA_CODING_LATIN1: Alphabet.LATIN1,
    DATA_CODING_OCTET_UNSPECIFIED: Alphabet.OCTET,
    DATA_CODING_UCS2: Alphabet.UCS2,
}


def alphabet_for(data_coding: int) -> Alphabet:
    """The alphabet a data_coding selects; UnsupportedDataCoding for any other value."""
    alphabet = _SIMPLE_CODINGS.get(data_coding)
    if alphabet is not None:
        return alphabet
    if data_coding & 0xF0 == DATA_CODING_MESSAGE_CLASS_GROUP and 0 <= data_coding <= 0xFF:
        if data_coding & DATA_CODING_MESSAGE_CLASS_8BIT:
            return Alphabet.OCTET
        return Alphabet.GSM7
    raise UnsupportedDataCoding(f"data_coding 0x{data_coding:02X} is not supported")


def message_class(data_coding: int) -> int | None:
    """The GSM message class (0..3) a data_coding carries, or None if it has none."""
    if data_coding & 0xF0 == DATA_CODING_MESSAGE_CLASS_GROUP:
        return data_coding & DATA_CODING_MESSAGE_CLASS_MASK
    return None


def choose_data_coding(text: str) -> int:
    """DATA_CODING_DEFAULT (GSM 7-bit) if the GSM alphabet can carry `text`, else UCS-2."""
    return DATA_CODING_DEFAULT if gsm7.is_gsm7(text) else DATA_CODING_UCS2


# -- codecs -------------------------------------------------------------------------


def decode_short_message(
    data: bytes,
    data_coding: int,
    *,
    gsm_packed: bool = False,
    fill_bits: int = 0,
    strict: bool = True,
) -> str:
    """Decode user data (no UDH) as text.

    GSM is one septet per byte unless `gsm_packed` (then `fill_bits` skips the padding
    after a UDH). Binary codings raise UnsupportedDataCoding: they are bytes, not text
    (see display_text). strict=False decodes bad input with replacements, for display.
    Raises InvalidGsm7 / InvalidText for bytes invalid in the coding.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        if gsm_packed:
            return gsm7.decode_packed(data, fill_bits=fill_bits, strict=strict)
        return gsm7.decode_unpacked(data, strict=strict)
    if alphabet is Alphabet.UCS2:
        return _decode_ucs2(data, strict)
    if alphabet is Alphabet.LATIN1:
        return data.decode("latin-1")
    if alphabet is Alphabet.IA5:
        try:
            return data.decode("ascii", "strict" if strict else "replace")
        except UnicodeDecodeError as exc:
            raise InvalidText(f"IA5 octet above 0x7F at offset {exc.start}") from None
    raise UnsupportedDataCoding(f"data_coding 0x{data_coding:02X} is binary, not text")


def _decode_ucs2(data: bytes, strict: bool) -> str:
    if len(data) % 2:
        if strict:
            raise InvalidText(f"UCS-2 payload has an odd length ({len(data)} octets)")
        return data[:-1].decode("utf-16-be", "replace") + "\ufffd"
    try:
        return data.decode("utf-16-be", "strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        # A lone surrogate: typically a client that cut a pair across two segments.
        raise InvalidText(
            f"UCS-2 payload has an unpaired surrogate at offset {exc.start}"
        ) from None


def display_text(data: bytes, data_coding: int, *, gsm_packed: bool = False) -> str:
    """Best-effort text for history and logs: lenient decode; hex for binary or unknown."""
    try:
        return decode_short_message(data, data_coding, gsm_packed=gsm_packed, strict=False)
    except (UnsupportedDataCoding, InvalidGsm7, InvalidText):
        return data.hex()


def encode_text(text: str, data_coding: int, *, gsm_packed: bool = False) -> bytes:
    """Encode `text` for a short_message; TextEncodeError if the alphabet cannot carry it."""
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        return gsm7.encode_packed(text) if gsm_packed else gsm7.encode_unpacked(text)
    if alphabet is Alphabet.UCS2:
        return _encode_with(text, "utf-16-be", "UCS-2")
    if alphabet is Alphabet.LATIN1:
        return _encode_with(text, "latin-1", "Latin-1")
    if alphabet is Alphabet.IA5:
        return _encode_with(text, "ascii", "IA5")
    raise UnsupportedDataCoding(f"data_coding 0x{data_coding:02X} is binary, not text")


def _encode_with(text: str, codec: str, name: str) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise TextEncodeError(
            f"character {bad!r} (U+{ord(bad):04X}) at position {exc.start} cannot be sent as {name}"
        ) from None


# -- segments -----------------------------------------------------------------------


def _part_ends(length: int, per_part: int, unsplittable: Container[int]) -> list[int]:
    """End offsets of greedy parts of at most `per_part` units.

    A full part never ends at an offset in `unsplittable` (the middle of an escape pair
    or a surrogate pair); it gives that unit to the next part instead.
    """
    ends: list[int] = []
    pos = 0
    while pos < length:
        end = min(pos + per_part, length)
        while end - pos > 1 and end in unsplittable and (end < length or end - pos == per_part):
            end -= 1
        ends.append(end)
        pos = end
    return ends or [0]


def _count_parts(length: int, single: int, per_part: int, unsplittable: Container[int]) -> int:
    if length <= single:
        return 1
    if not unsplittable:
        return math.ceil(length / per_part)
    return len(_part_ends(length, per_part, unsplittable))


def _escape_pair_middles(septets: bytes) -> set[int]:
    """Offsets between an ESC and its code: a part must not end there."""
    middles = set()
    esc = septets.find(gsm7.ESCAPE)
    while 0 <= esc < len(septets) - 1:
        middles.add(esc + 1)
        esc = septets.find(gsm7.ESCAPE, esc + 2)
    return middles


_HIGH_SURROGATE_OCTET = re.compile(rb"[\xd8-\xdb]")


def _surrogate_pair_middles(ucs2: bytes) -> set[int]:
    """Code-unit offsets just after a high surrogate: a part must not end there."""
    units = len(ucs2) // 2
    middles = set()
    for match in _HIGH_SURROGATE_OCTET.finditer(ucs2, 0, 2 * units):
        offset, odd = divmod(match.start(), 2)
        if not odd and offset + 1 < units:
            middles.add(offset + 1)
    return middles


def count_segments(payload: bytes, data_coding: int, *, gsm_packed: bool = False) -> int:
    """SMS segments needed on the air for a client's whole user data (without UDH).

    A client that segments itself sends one UDH part per PDU: that is one segment each,
    not something to count here. GSM counts septets, an escape pair never split;
    UCS-2 counts UTF-16 code units, a surrogate pair never split; Latin-1 and binary
    count octets. IA5 goes to handsets as GSM 7-bit when it can, so it is counted as
    text. An empty message is still one SMS. Input is not validated beyond what
    counting needs: a trailing lone ESC is one septet.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        septets = gsm7.unpack_message(payload) if gsm_packed else payload
        middles = _escape_pair_middles(septets) if gsm7.ESCAPE in septets else set()
        return _count_parts(len(septets), GSM7_SINGLE_SEPTETS, GSM7_CONCAT_SEPTETS, middles)
    if alphabet is Alphabet.UCS2:
        if len(payload) % 2:
            raise InvalidText(f"UCS-2 payload has an odd length ({len(payload)} octets)")
        middles = _surrogate_pair_middles(payload)
        return _count_parts(len(payload) // 2, UCS2_SINGLE_UNITS, UCS2_CONCAT_UNITS, middles)
    if alphabet is Alphabet.IA5:
        return count_text_segments(payload.decode("latin-1"))[1]
    return _count_parts(len(payload), OCTET_SINGLE_OCTETS, OCTET_CONCAT_OCTETS, ())


def count_text_segments(text: str) -> tuple[int, int]:
    """(data_coding, segments) for sending `text`: GSM 7-bit if it fits the alphabet, else UCS-2."""
    data_coding = choose_data_coding(text)
    if data_coding == DATA_CODING_DEFAULT:
        length = gsm7.septet_length(text)
        if length <= GSM7_SINGLE_SEPTETS or length == len(text):
            return data_coding, _count_parts(length, GSM7_SINGLE_SEPTETS, GSM7_CONCAT_SEPTETS, ())
        return data_coding, count_segments(gsm7.encode_unpacked(text), data_coding)
    return data_coding, count_segments(_encode_with(text, "utf-16-be", "UCS-2"), data_coding)


def split_text(
    text: str, data_coding: int, *, ref: int, udh16: bool = False, gsm_packed: bool = False
) -> list[bytes]:
    """Encode `text` as concatenated short_message payloads, each starting with a UDH.

    Every part carries a concatenation element (total may be 1), so the caller sends
    them all with ESM_CLASS_UDHI set. Parts are filled to the limit for the UDH size
    (a 16-bit reference costs one more octet: 152 septets, 66 units, 133 octets).
    Supports GSM 7-bit (unpacked, or packed with `gsm_packed`), Latin-1 and UCS-2.
    """
    udh_length = udh.CONCAT16_UDH_LENGTH if udh16 else udh.CONCAT_UDH_LENGTH
    room = MAX_USER_DATA_OCTETS - udh_length
    alphabet = alphabet_for(data_coding)
    fill_bits = 0
    if alphabet is Alphabet.GSM7:
        units = gsm7.encode_unpacked(text)
        fill_bits = udh.septet_fill_bits(udh_length)
        per_part = (8 * room - fill_bits) // 7
        unsplittable = _escape_pair_middles(units)
        if gsm_packed:
            # pack_message would add a CR after a CR ending a full part, overflowing it.
            unsplittable |= {i + 1 for i, septet in enumerate(units) if septet == gsm7.CR}
        width = 1
    elif alphabet is Alphabet.UCS2:
        units = _encode_with(text, "utf-16-be", "UCS-2")
        per_part = room // 2
        unsplittable = _surrogate_pair_middles(units)
        width = 2
    elif alphabet is Alphabet.LATIN1:
        units = _encode_with(text, "latin-1", "Latin-1")
        per_part = room
        unsplittable = set()
        width = 1
    else:
        raise UnsupportedDataCoding(f"split_text does not produce data_coding 0x{data_coding:02X}")

    ends = _part_ends(len(units) // width, per_part, unsplittable)
    if len(ends) > udh.MAX_SEGMENTS:
        raise ValueError(f"text needs {len(ends)} segments, more than {udh.MAX_SEGMENTS}")
    parts: list[bytes] = []
    start = 0
    for seq, end in enumerate(ends, start=1):
        header = udh.build_concat_udh(ref, len(ends), seq, udh16=udh16)
        body = units[start * width : end * width]
        if gsm_packed and alphabet is Alphabet.GSM7:
            body = gsm7.pack_message(body, fill_bits=fill_bits)
        parts.append(header + body)
        start = end
    return parts

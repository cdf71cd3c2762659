"""short_message text: data_coding values, text codecs, segment counting and splitting.

Maps SMPP 3.4 data_coding (5.2.19, plus the GSM 03.38 message-class group 0xF0..0xFF)
to an alphabet, decodes and encodes text in it, counts the SMS segments a payload costs
on the air (the gateway prices by `count_segments`) and cuts it into those segments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from enum import Enum
from itertools import accumulate

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


def _part_ends(
    length: int, per_part: int, unsplittable: Container[int], no_full_end: Container[int] = ()
) -> list[int]:
    """End offsets of greedy parts of at most `per_part` units.

    A part never ends at an offset in `unsplittable` (the middle of an escape pair or a
    surrogate pair), and a full part never at one in `no_full_end` (see _cr_ends); it
    gives that unit to the next part instead.
    """
    ends: list[int] = []
    pos = 0
    while pos < length:
        end = min(pos + per_part, length)
        if end - pos == per_part and per_part > 1 and end in no_full_end:
            # One unit less is no longer full, so one step back is always enough.
            end -= 1
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


def _cr_ends(septets: bytes) -> set[int]:
    """Offsets just after a CR: a full part of packed GSM must not end there.

    Beside a concatenation UDH a full part ends on an octet boundary, where 03.38 adds a
    second CR so the real one is not taken for padding (gsm7.pack_message); it would not
    fit. Counting and splitting apply the rule alike, so what is priced is what is sent.
    """
    return {i + 1 for i, septet in enumerate(septets) if septet == gsm7.CR}


def _gsm7_part_ends(septets: bytes, per_part: int, *, packed: bool) -> list[int]:
    middles = _escape_pair_middles(septets) if gsm7.ESCAPE in septets else set()
    cr_ends = _cr_ends(septets) if packed and gsm7.CR in septets else set()
    return _part_ends(len(septets), per_part, middles, cr_ends)


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
    not something to count here. GSM counts septets, an escape pair never split (and,
    packed, no full part ending in CR: see _cr_ends); UCS-2 counts UTF-16 code units,
    a surrogate pair never split; Latin-1 and binary count octets. IA5 goes to handsets
    as GSM 7-bit when it can, so it is counted as text. An empty message is still one SMS.
    Input is not validated beyond what counting needs: a trailing lone ESC is one septet.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        septets = gsm7.unpack_message(payload) if gsm_packed else payload
        if len(septets) <= GSM7_SINGLE_SEPTETS:
            return 1
        return len(_gsm7_part_ends(septets, GSM7_CONCAT_SEPTETS, packed=gsm_packed))
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


def split_payload(
    payload: bytes,
    data_coding: int,
    *,
    gsm_packed: bool = False,
    ref: int | None = None,
    udh16: bool = False,
) -> list[bytes]:
    """Cut a client's user data (no UDH) into the SMS segments count_segments prices.

    A payload that fits one SMS comes back as [payload], untouched, even with `ref`.
    Otherwise, with `ref` each part starts with a concatenation UDH (send it with
    ESM_CLASS_UDHI); with ref=None parts carry no UDH (send them with sar_* TLVs) but
    leave room for the one the SMSC adds, with a 16-bit reference if `udh16`. Parts keep
    the payload's coding and GSM packing and never split an escape or surrogate pair;
    IA5 is cut by the GSM septets (or UCS-2 units) it is priced at. With udh16=False
    there are exactly count_segments parts; a 16-bit reference leaves one octet less
    per part and may need more. Raises InvalidText for odd-length UCS-2 and ValueError
    beyond 255 parts.
    """
    if count_segments(payload, data_coding, gsm_packed=gsm_packed) == 1:
        return [payload]
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        septets = gsm7.unpack_message(payload) if gsm_packed else payload
        return _split_gsm7(septets, ref=ref, udh16=udh16, packed=gsm_packed)
    if alphabet is Alphabet.UCS2:
        return _split_ucs2(payload, ref=ref, udh16=udh16)
    if alphabet is Alphabet.IA5:
        return _split_ia5(payload, ref=ref, udh16=udh16)
    return _split_octets(payload, ref=ref, udh16=udh16)


def split_text(
    text: str, data_coding: int, *, ref: int, udh16: bool = False, gsm_packed: bool = False
) -> list[bytes]:
    """Encode `text` as concatenated short_message payloads, each starting with a UDH.

    Every part carries a concatenation element (total may be 1), so the caller sends
    them all with ESM_CLASS_UDHI set. Parts are filled to the limit for the UDH size
    (a 16-bit reference costs one more octet: 152 septets, 66 units, 133 octets).
    Supports GSM 7-bit (unpacked, or packed with `gsm_packed`), Latin-1 and UCS-2.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        septets = gsm7.encode_unpacked(text)
        return _split_gsm7(septets, ref=ref, udh16=udh16, packed=gsm_packed)
    if alphabet is Alphabet.UCS2:
        return _split_ucs2(_encode_with(text, "utf-16-be", "UCS-2"), ref=ref, udh16=udh16)
    if alphabet is Alphabet.LATIN1:
        return _split_octets(_encode_with(text, "latin-1", "Latin-1"), ref=ref, udh16=udh16)
    raise UnsupportedDataCoding(f"split_text does not produce data_coding 0x{data_coding:02X}")


def _concat_udh_length(udh16: bool) -> int:
    return udh.CONCAT16_UDH_LENGTH if udh16 else udh.CONCAT_UDH_LENGTH


def _octets_per_part(udh16: bool) -> int:
    """User data octets beside a concatenation UDH: 134, or 133 with a 16-bit reference."""
    return MAX_USER_DATA_OCTETS - _concat_udh_length(udh16)


def _septets_per_part(udh16: bool) -> int:
    """GSM septets beside a concatenation UDH, after its fill bits: 153, or 152."""
    fill_bits = udh.septet_fill_bits(_concat_udh_length(udh16))
    return (8 * _octets_per_part(udh16) - fill_bits) // 7


def _split_gsm7(septets: bytes, *, ref: int | None, udh16: bool, packed: bool) -> list[bytes]:
    ends = _gsm7_part_ends(septets, _septets_per_part(udh16), packed=packed)
    return _concat_parts(septets, ends, ref=ref, udh16=udh16, pack_gsm=packed)


def _split_ucs2(ucs2: bytes, *, ref: int | None, udh16: bool) -> list[bytes]:
    # An odd length never gets here: count_segments refused it first.
    per_part = _octets_per_part(udh16) // 2
    ends = _part_ends(len(ucs2) // 2, per_part, _surrogate_pair_middles(ucs2))
    return _concat_parts(ucs2, ends, ref=ref, udh16=udh16, width=2)


def _split_octets(octets: bytes, *, ref: int | None, udh16: bool) -> list[bytes]:
    ends = _part_ends(len(octets), _octets_per_part(udh16), ())
    return _concat_parts(octets, ends, ref=ref, udh16=udh16)


_GSM7_EXTENSION_CHARS = frozenset(gsm7.EXTENSION_TABLE.values())


def _split_ia5(ia5: bytes, *, ref: int | None, udh16: bool) -> list[bytes]:
    """Cut IA5 octets where count_segments' reading of them as text would cut."""
    text = ia5.decode("latin-1")
    if choose_data_coding(text) != DATA_CODING_DEFAULT:
        # Priced as UCS-2: every Latin-1 character is one code unit, never a pair.
        ends = _part_ends(len(ia5), _octets_per_part(udh16) // 2, ())
        return _concat_parts(ia5, ends, ref=ref, udh16=udh16)
    septets = gsm7.encode_unpacked(text)
    septet_ends = _gsm7_part_ends(septets, _septets_per_part(udh16), packed=False)
    # No end falls inside an escape pair, so every end is where some character ends.
    widths = (2 if ch in _GSM7_EXTENSION_CHARS else 1 for ch in text)
    char_at = {septet: char for char, septet in enumerate(accumulate(widths, initial=0))}
    return _concat_parts(ia5, [char_at[end] for end in septet_ends], ref=ref, udh16=udh16)


def _concat_parts(
    units: bytes,
    ends: list[int],
    *,
    ref: int | None,
    udh16: bool,
    width: int = 1,
    pack_gsm: bool = False,
) -> list[bytes]:
    """The runs of `units` (each `width` octets) up to each end, behind a UDH if `ref`."""
    total = len(ends)
    if total > udh.MAX_SEGMENTS:
        raise ValueError(f"message needs {total} segments, more than {udh.MAX_SEGMENTS}")
    parts: list[bytes] = []
    start = 0
    for seq, end in enumerate(ends, start=1):
        header = b"" if ref is None else udh.build_concat_udh(ref, total, seq, udh16=udh16)
        body = units[start * width : end * width]
        if pack_gsm:
            # Packed text starts on a septet boundary after the UDH.
            body = gsm7.pack_message(body, fill_bits=udh.septet_fill_bits(len(header)))
        parts.append(header + body)
        start = end
    return parts

"""The GSM 03.38 (3GPP TS 23.038) 7-bit default alphabet and its extension table.

Text <-> septets (one septet per byte, "unpacked", as most SMPP clients send it) and
septets <-> octets ("packed", eight septets in seven octets, least significant bit
first, as on the air interface). Pure functions over precomputed tables.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import NamedTuple

# The 128 characters of the default alphabet, indexed by septet value. 0x1B is the
# escape to the extension table and has no character of its own (the placeholder
# here is never produced: decoding handles 0x1B before this table is consulted).
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

ESCAPE = 0x1B
"""Septet that switches the next septet to the extension table."""

# Extension table: code (the septet after ESC) -> character. 0x0A is a page break,
# which we carry as form feed. 0x0D (CR2) and 0x1B (reserved for another extension
# table) are control codes without a character, so they are not encodable.
EXTENSION_TABLE = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

CR = 0x0D
"""Carriage return: 03.38's padding character for 7 spare bits at the end of packed data."""


class TextEncodeError(ValueError):
    """A character the chosen alphabet cannot carry."""


class InvalidGsm7(ValueError):
    """Bytes that are not valid GSM 03.38 septets (vendor status ESME_RINVGSM7CODING)."""


assert len(DEFAULT_ALPHABET) == 128

_EXTENSION_CHARS = "".join(EXTENSION_TABLE.values())

# charmap codec tables: the C implementation does the per-character work.
_ENCODE_MAP: dict[int, int | bytes] = {
    ord(ch): septet for septet, ch in enumerate(DEFAULT_ALPHABET) if septet != ESCAPE
}
_ENCODE_MAP.update({ord(ch): bytes((ESCAPE, code)) for code, ch in EXTENSION_TABLE.items()})
# Septets 0x80..0xFF are undefined (U+FFFE), so strict charmap decoding rejects them.
_DECODE_TABLE = DEFAULT_ALPHABET + "\ufffe" * 128

_NOT_GSM7 = re.compile(
    "[^" + re.escape(DEFAULT_ALPHABET.replace("\x1b", "") + _EXTENSION_CHARS) + "]"
)
_EXTENSION_RE = re.compile("[" + re.escape(_EXTENSION_CHARS) + "]")


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the default alphabet or extension table."""
    return _NOT_GSM7.search(text) is None


def septet_length(text: str) -> int:
    """Septets needed for `text`; extension characters take two (ESC + code)."""
    return len(text) + len(_EXTENSION_RE.findall(text))


def encode_unpacked(text: str) -> bytes:
    """Encode `text` as one septet per byte; TextEncodeError names the first bad character."""
    try:
        return codecs.charmap_encode(text, "strict", _ENCODE_MAP)[0]
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise TextEncodeError(
            f"character {bad!r} (U+{ord(bad):04X}) at position {exc.start} "
            "is not in the GSM 03.38 alphabet"
        ) from None


def decode_unpacked(data: bytes, *, strict: bool = True) -> str:
    """Decode one septet per byte.

    strict=True raises InvalidGsm7 for a byte above 0x7F, an ESC at the very end, or an
    ESC followed by a code the extension table does not define. strict=False decodes
    for display the way 03.38 asks a handset to: a lone trailing ESC (a client that cut
    an escape pair across two segments) and ESC ESC become a space, an unknown
    extension code shows the default-alphabet character, a byte above 0x7F U+FFFD.
    """
    errors = "strict" if strict else "replace"
    if ESCAPE not in data:
        return _decode_plain(data, errors)
    parts: list[str] = []
    start = 0
    end = len(data)
    while True:
        esc = data.find(ESCAPE, start)
        if esc < 0:
            parts.append(_decode_plain(data[start:], errors))
            return "".join(parts)
        parts.append(_decode_plain(data[start:esc], errors))
        if esc + 1 == end:
            if strict:
                raise InvalidGsm7(f"escape (0x1B) at the end of the data, offset {esc}")
            parts.append(" ")
            return "".join(parts)
        code = data[esc + 1]
        ch = EXTENSION_TABLE.get(code)
        if ch is None:
            if strict:
                raise InvalidGsm7(
                    f"escape followed by 0x{code:02X} at offset {esc}, "
                    "not in the GSM 03.38 extension table"
                )
            ch = " " if code == ESCAPE else _decode_plain(data[esc + 1 : esc + 2], errors)
        parts.append(ch)
        start = esc + 2


def _decode_plain(data: bytes, errors: str) -> str:
    try:
        return codecs.charmap_decode(data, errors, _DECODE_TABLE)[0]
    except UnicodeDecodeError as exc:
        raise InvalidGsm7(
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} is not a septet (> 0x7F)"
        ) from None


# Packing works on the whole message as one integer, split into 64-bit lanes of eight
# septets each; three mask-and-shift rounds squeeze (or spread) 8 x 7 bits per lane,
# so the per-septet work runs in C instead of a Python loop.


class _LaneMasks(NamedTuple):
    # Per round: the low field, the high field before packing, the high field after.
    lo16: int
    hi16: int
    hi16_packed: int
    lo32: int
    hi32: int
    hi32_packed: int
    lo64: int
    hi64: int
    hi64_packed: int


@functools.lru_cache(maxsize=256)
def _lane_masks(lanes: int) -> _LaneMasks:
    def rep(pattern: int, width: int) -> int:
        return int.from_bytes(pattern.to_bytes(width, "little") * (8 * lanes // width), "little")

    return _LaneMasks(
        rep(0x007F, 2),
        rep(0x7F00, 2),
        rep(0x3F80, 2),
        rep(0x00003FFF, 4),
        rep(0x3FFF0000, 4),
        rep(0x0FFFC000, 4),
        rep(0x000000000FFFFFFF, 8),
        rep(0x0FFFFFFF00000000, 8),
        rep(0x00FFFFFFF0000000, 8),
    )


def pack(septets: bytes, *, fill_bits: int = 0) -> bytes:
    """Pack septets 8-into-7 octets, LSB first, after `fill_bits` zero bits (for a UDH).

    The spare bits of the last octet are zero: 03.38's CR padding is text-level and is
    applied by encode_packed.
    """
    if not septets.isascii():
        raise InvalidGsm7("septet value above 0x7F")
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    count = len(septets)
    lanes = -(-count // 8)
    if lanes == 0:
        return b"\x00" if fill_bits else b""
    m = _lane_masks(lanes)
    x = int.from_bytes(septets.ljust(8 * lanes, b"\x00"), "little")
    x = (x & m.lo16) | ((x & m.hi16) >> 1)
    x = (x & m.lo32) | ((x & m.hi32) >> 2)
    x = (x & m.lo64) | ((x & m.hi64) >> 4)
    lane_bytes = bytearray(x.to_bytes(8 * lanes, "little"))
    del lane_bytes[7::8]
    size = (7 * count + fill_bits + 7) // 8
    if fill_bits:
        shifted = int.from_bytes(lane_bytes, "little") << fill_bits
        return shifted.to_bytes(size + 1, "little")[:size]
    return bytes(lane_bytes[:size])


def unpack(data: bytes, count: int | None = None, *, fill_bits: int = 0) -> bytes:
    """Unpack octets into septets (one per byte), skipping `fill_bits` leading bits.

    count=None returns every whole septet the data holds, padding included; callers
    that know the septet count (e.g. from a TP-UDL) pass it.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    available = max(0, (8 * len(data) - fill_bits) // 7)
    if count is None:
        count = available
    elif not 0 <= count <= available:
        raise InvalidGsm7(f"{count} septets asked for, {len(data)} octets hold {available}")
    if count == 0:
        return b""
    if fill_bits:
        data = (int.from_bytes(data, "little") >> fill_bits).to_bytes(len(data), "little")
    lanes = -(-count // 8)
    data = data[: 7 * lanes].ljust(7 * lanes, b"\x00")
    spread = bytearray(8 * lanes)
    for offset in range(7):
        spread[offset::8] = data[offset::7]
    m = _lane_masks(lanes)
    x = int.from_bytes(spread, "little")
    x = (x & m.lo64) | ((x & m.hi64_packed) << 4)
    x = (x & m.lo32) | ((x & m.hi32_packed) << 2)
    x = (x & m.lo16) | ((x & m.hi16_packed) << 1)
    return x.to_bytes(8 * lanes, "little")[:count]


def pack_message(septets: bytes, *, fill_bits: int = 0) -> bytes:
    """Pack a whole message's septets, putting 03.38's CR padding in 7 spare bits.

    SMPP gives a packed short_message's length in octets, not septets, so a receiver
    cannot tell 7 zero pad bits from a final '@'. 03.38 (6.1.2.3.1) therefore fills
    those 7 bits with CR; and when the message itself ends in CR on an octet boundary it
    adds a second CR (shown harmlessly as CR CR) so the receiver does not drop the real
    one. Only the first rule never grows the output; callers that must fit a fixed
    size (split_text) avoid ending a full part with CR.
    """
    spare_bits = -(7 * len(septets) + fill_bits) % 8
    ends_on_cr_at_boundary = spare_bits == 0 and septets.endswith(bytes((CR,)))
    if spare_bits == 7 or ends_on_cr_at_boundary:
        septets += bytes((CR,))
    return pack(septets, fill_bits=fill_bits)


def unpack_message(data: bytes, count: int | None = None, *, fill_bits: int = 0) -> bytes:
    """Unpack a whole message's septets; with count=None drop a CR that is padding.

    When the octets hold a whole number of septets, the last may be 7 pad bits. A CR
    there is 03.38 padding and is dropped. A '@' (zero bits) is kept: it may be a real
    character, and 03.38 asks senders to pad with CR precisely so that zero padding is
    never needed; a sender that zero-pads anyway gets a trailing '@', as on a handset.
    Pass `count` when the septet count is known.
    """
    septets = unpack(data, count, fill_bits=fill_bits)
    padded = count is None and septets and (8 * len(data) - fill_bits) % 7 == 0
    if padded and septets[-1] == CR:
        return septets[:-1]
    return septets


def encode_packed(text: str, *, fill_bits: int = 0) -> bytes:
    """Encode `text` and pack it with 03.38's CR padding (see pack_message)."""
    return pack_message(encode_unpacked(text), fill_bits=fill_bits)


def decode_packed(
    data: bytes, count: int | None = None, *, fill_bits: int = 0, strict: bool = True
) -> str:
    """Unpack and decode a packed message (padding handled as in unpack_message)."""
    return decode_unpacked(unpack_message(data, count, fill_bits=fill_bits), strict=strict)

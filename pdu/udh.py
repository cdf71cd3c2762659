"""User Data Header (3GPP TS 23.040 9.2.3.24) at the start of a short_message.

Present when esm_class has the UDHI bit set. We parse any header into its information
elements and understand the two concatenation elements (8-bit and 16-bit reference).
"""

from __future__ import annotations

from dataclasses import dataclass

IEI_CONCAT_8BIT = 0x00
"""Concatenated short messages, 8-bit reference number (IEDL 3)."""

IEI_CONCAT_16BIT = 0x08
"""Concatenated short messages, 16-bit reference number (IEDL 4)."""

CONCAT_UDH_LENGTH = 6
"""Octets of a UDH holding only an 8-bit-reference concatenation element (UDHL included)."""

CONCAT16_UDH_LENGTH = 7
"""Octets of a UDH holding only a 16-bit-reference concatenation element (UDHL included)."""

MAX_SEGMENTS = 255
"""The concatenation element counts parts in one octet."""


class InvalidUdh(ValueError):
    """A User Data Header whose lengths do not fit the data."""


@dataclass(frozen=True, slots=True)
class Concat:
    """Position of one part in a concatenated message: reference, parts in all, this part."""

    ref: int
    total: int
    seq: int


def parse_udh(short_message: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split a UDHI short_message into its (IEI, data) elements and the user data after.

    Raises InvalidUdh when the header length (UDHL) or an element length runs past its
    container; the rest of the message is not looked at.
    """
    if not short_message:
        raise InvalidUdh("UDHI set but the short_message is empty")
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        raise InvalidUdh(f"UDH length {udhl} overruns the {len(short_message) - 1} octets after it")
    elements: list[tuple[int, bytes]] = []
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise InvalidUdh(f"information element at offset {pos} has no length octet")
        iei = short_message[pos]
        iedl = short_message[pos + 1]
        data_end = pos + 2 + iedl
        if data_end > end:
            raise InvalidUdh(f"information element 0x{iei:02X} (length {iedl}) overruns the UDH")
        elements.append((iei, short_message[pos + 2 : data_end]))
        pos = data_end
    return elements, short_message[end:]


def concat_info(elements: list[tuple[int, bytes]]) -> Concat | None:
    """The concatenation element among `elements`, or None if there is none.

    An element with the wrong length is InvalidUdh. One whose total or sequence is zero
    or whose sequence exceeds the total is ignored, as 23.040 tells receivers to do.
    Should several appear, the last one wins (23.040 9.2.3.24 on repeated elements).
    """
    found: Concat | None = None
    for iei, data in elements:
        if iei == IEI_CONCAT_8BIT:
            if len(data) != 3:
                raise InvalidUdh(f"8-bit concatenation element has {len(data)} octets, not 3")
            ref, total, seq = data
        elif iei == IEI_CONCAT_16BIT:
            if len(data) != 4:
                raise InvalidUdh(f"16-bit concatenation element has {len(data)} octets, not 4")
            ref, total, seq = int.from_bytes(data[:2], "big"), data[2], data[3]
        else:
            continue
        found = Concat(ref, total, seq) if 1 <= seq <= total else None
    return found


def build_concat_udh(ref: int, total: int, seq: int, *, udh16: bool = False) -> bytes:
    """A complete UDH (UDHL included) holding one concatenation element."""
    if not 1 <= seq <= total <= MAX_SEGMENTS:
        raise ValueError(f"need 1 <= seq <= total <= 255, got seq={seq} total={total}")
    if udh16:
        if not 0 <= ref <= 0xFFFF:
            raise ValueError(f"16-bit concatenation reference out of range: {ref}")
        return bytes((6, IEI_CONCAT_16BIT, 4)) + ref.to_bytes(2, "big") + bytes((total, seq))
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"8-bit concatenation reference out of range: {ref}")
    return bytes((5, IEI_CONCAT_8BIT, 3, ref, total, seq))


def septet_fill_bits(udh_length: int) -> int:
    """Zero bits between a UDH of `udh_length` octets (UDHL included) and packed GSM text.

    Packed text starts on a septet boundary counted from the start of the user data.
    """
    return -(8 * udh_length) % 7

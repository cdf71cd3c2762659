"""GSM 03.38 alphabet, escapes, and 7-bit packing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu import gsm7
from pdu.gsm7 import InvalidGsm7, TextEncodeError

GSM_CHARS = [c for c in gsm7.DEFAULT_ALPHABET if c != "\x1b"] + list(gsm7.EXTENSION_TABLE.values())
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400)
septets = st.binary(max_size=400).map(lambda b: bytes(x & 0x7F for x in b))


def reference_pack(values: bytes, fill_bits: int = 0) -> bytes:
    """Bit-by-bit packing straight from 03.38 6.1.2.1.1, to check the lane arithmetic."""
    bits = [0] * fill_bits
    for value in values:
        bits.extend((value >> i) & 1 for i in range(7))
    bits.extend([0] * (-len(bits) % 8))
    return bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))


# -- alphabet -------------------------------------------------------------------------


def test_tables_have_the_03_38_sizes() -> None:
    assert len(gsm7.DEFAULT_ALPHABET) == 128
    assert len(set(GSM_CHARS)) == 127 + 10


@pytest.mark.parametrize(
    ("char", "septet"),
    [
        ("@", 0x00),
        ("£", 0x01),
        ("\n", 0x0A),
        ("\r", 0x0D),
        ("Δ", 0x10),
        ("_", 0x11),
        (" ", 0x20),
        ("¤", 0x24),
        ("¡", 0x40),
        ("A", 0x41),
        ("§", 0x5F),
        ("¿", 0x60),
        ("a", 0x61),
        ("ü", 0x7E),
        ("à", 0x7F),
    ],
)
def test_default_alphabet_positions(char: str, septet: int) -> None:
    assert gsm7.encode_unpacked(char) == bytes([septet])


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\f", 0x0A),
        ("^", 0x14),
        ("{", 0x28),
        ("}", 0x29),
        ("\\", 0x2F),
        ("[", 0x3C),
        ("~", 0x3D),
        ("]", 0x3E),
        ("|", 0x40),
        ("€", 0x65),
    ],
)
def test_extension_characters_are_escape_pairs(char: str, code: int) -> None:
    assert gsm7.encode_unpacked(char) == bytes([0x1B, code])
    assert gsm7.decode_unpacked(bytes([0x1B, code])) == char
    assert gsm7.septet_length(char) == 2


def test_septet_length_counts_extension_characters_twice() -> None:
    assert gsm7.septet_length("") == 0
    assert gsm7.septet_length("abc") == 3
    assert gsm7.septet_length("a€[b]") == 8


@pytest.mark.parametrize("text", ["ç", "`", "😀", "\t", "\u2126", "\x1b", "hello ©"])
def test_characters_outside_the_alphabet_are_refused(text: str) -> None:
    # Ω is U+2126 OHM SIGN; the alphabet has U+03A9 GREEK CAPITAL OMEGA.
    assert not gsm7.is_gsm7(text)
    with pytest.raises(TextEncodeError):
        gsm7.encode_unpacked(text)


def test_encode_error_names_the_character_and_position() -> None:
    with pytest.raises(TextEncodeError, match=r"'ç' \(U\+00E7\) at position 3"):
        gsm7.encode_unpacked("abcç")


def test_greek_capitals_and_cedilla_are_gsm() -> None:
    assert gsm7.is_gsm7("ΔΦΓΛΩΠΨΣΘΞ Ç")


# -- unpacked decoding errors ---------------------------------------------------------


def test_byte_above_0x7f_is_invalid_gsm7() -> None:
    with pytest.raises(InvalidGsm7, match="0x80 at offset 2"):
        gsm7.decode_unpacked(b"ab\x80")


def test_trailing_escape_is_invalid_when_strict() -> None:
    # smpplib's splitter can leave ESC as the last septet of a part.
    with pytest.raises(InvalidGsm7, match="end"):
        gsm7.decode_unpacked(b"abc\x1b")


def test_trailing_escape_shows_as_space_when_lenient() -> None:
    assert gsm7.decode_unpacked(b"abc\x1b", strict=False) == "abc "


def test_escape_before_an_undefined_code_is_invalid_when_strict() -> None:
    with pytest.raises(InvalidGsm7, match="0x41"):
        gsm7.decode_unpacked(b"\x1bA")


def test_lenient_decoding_follows_the_03_38_fallbacks() -> None:
    # Unknown extension code: show the default-alphabet character. ESC ESC: a space.
    assert gsm7.decode_unpacked(b"\x1bA\x1b\x1bb", strict=False) == "A b"
    assert gsm7.decode_unpacked(b"a\xffb", strict=False) == "a\ufffdb"


# -- packing --------------------------------------------------------------------------


def test_hellohello_known_vector() -> None:
    assert gsm7.encode_packed("hellohello").hex() == "e8329bfd4697d9ec37"
    assert gsm7.decode_packed(bytes.fromhex("e8329bfd4697d9ec37")) == "hellohello"


def test_eight_septets_fill_seven_octets_exactly() -> None:
    assert gsm7.encode_packed("12345678").hex() == "31d98c56b3dd70"
    assert gsm7.decode_packed(bytes.fromhex("31d98c56b3dd70")) == "12345678"


def test_seven_septets_are_padded_with_cr_not_zero_bits() -> None:
    # 03.38 6.1.2.3.1: 7 spare bits would read as '@', so they carry CR (0x0D << 1).
    packed = gsm7.encode_packed("1234567")
    assert packed.hex() == "31d98c56b3dd1a"
    assert gsm7.decode_packed(packed) == "1234567"


def test_zero_padded_seven_septets_decode_with_a_trailing_at_sign() -> None:
    # Decision: only CR is padding. 7 zero bits are '@' (it may be a real one); a sender
    # that zero-pads should pass the septet count, and we honour it.
    zero_padded = bytes.fromhex("31d98c56b3dd00")
    assert gsm7.decode_packed(zero_padded) == "1234567@"
    assert gsm7.decode_packed(zero_padded, count=7) == "1234567"


def test_real_at_sign_ending_eight_septets_survives() -> None:
    packed = gsm7.encode_packed("1234567@")
    assert packed.hex() == "31d98c56b3dd00"
    assert gsm7.decode_packed(packed) == "1234567@"


def test_cr_ending_on_an_octet_boundary_is_doubled() -> None:
    # 03.38: a wanted final CR on a boundary gets a second CR so it is not taken as padding.
    packed = gsm7.encode_packed("1234567\r")
    assert len(packed) == 8
    assert gsm7.decode_packed(packed) == "1234567\r\r"
    assert gsm7.decode_packed(packed, count=8) == "1234567\r"


def test_fill_bits_after_a_six_octet_udh() -> None:
    # One fill bit: the text starts on the septet boundary after 48 UDH bits.
    packed = gsm7.pack(b"\x41", fill_bits=1)
    assert packed == bytes([0x41 << 1])
    assert gsm7.unpack(packed, 1, fill_bits=1) == b"\x41"


def test_unpack_rejects_a_count_beyond_the_data() -> None:
    with pytest.raises(InvalidGsm7):
        gsm7.unpack(b"\x00" * 7, 9)


def test_pack_rejects_values_above_0x7f() -> None:
    with pytest.raises(InvalidGsm7):
        gsm7.pack(b"\x80")


def test_empty_input() -> None:
    assert gsm7.pack(b"") == b""
    assert gsm7.unpack(b"") == b""
    assert gsm7.encode_packed("") == b""
    assert gsm7.decode_packed(b"") == ""
    assert gsm7.decode_unpacked(b"") == ""


@given(septets, st.integers(min_value=0, max_value=6))
def test_pack_matches_the_bitwise_reference(values: bytes, fill_bits: int) -> None:
    assert gsm7.pack(values, fill_bits=fill_bits) == reference_pack(values, fill_bits)


@given(septets, st.integers(min_value=0, max_value=6))
def test_unpack_inverts_pack(values: bytes, fill_bits: int) -> None:
    packed = gsm7.pack(values, fill_bits=fill_bits)
    assert gsm7.unpack(packed, len(values), fill_bits=fill_bits) == values


@given(gsm_text)
def test_any_gsm_text_survives_unpacked(text: str) -> None:
    assert gsm7.decode_unpacked(gsm7.encode_unpacked(text)) == text
    assert len(gsm7.encode_unpacked(text)) == gsm7.septet_length(text)


@given(gsm_text, st.integers(min_value=0, max_value=6))
def test_any_gsm_text_survives_packed_with_its_count(text: str, fill_bits: int) -> None:
    packed = gsm7.encode_packed(text, fill_bits=fill_bits)
    count = gsm7.septet_length(text)
    assert gsm7.decode_packed(packed, count, fill_bits=fill_bits) == text


@given(gsm_text, st.integers(min_value=0, max_value=6))
def test_any_gsm_text_survives_packed_without_its_count(text: str, fill_bits: int) -> None:
    packed = gsm7.encode_packed(text, fill_bits=fill_bits)
    on_boundary = (7 * gsm7.septet_length(text) + fill_bits) % 8 == 0
    doubled_cr = "\r" if text.endswith("\r") and on_boundary else ""
    assert gsm7.decode_packed(packed, fill_bits=fill_bits) == text + doubled_cr

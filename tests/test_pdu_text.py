"""data_coding, text codecs, segment counting and splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu import gsm7, text, udh
from pdu.gsm7 import InvalidGsm7, TextEncodeError
from pdu.text import Alphabet, InvalidText, UnsupportedDataCoding

GSM_CHARS = [c for c in gsm7.DEFAULT_ALPHABET if c != "\x1b"] + list(gsm7.EXTENSION_TABLE.values())
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700)
EMOJI = "\U0001f600"  # outside the BMP: a UTF-16 surrogate pair


# -- data_coding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "alphabet"),
    [
        (0x00, Alphabet.GSM7),
        (0x01, Alphabet.IA5),
        (0x02, Alphabet.OCTET),
        (0x03, Alphabet.LATIN1),
        (0x04, Alphabet.OCTET),
        (0x08, Alphabet.UCS2),
        (0xF0, Alphabet.GSM7),
        (0xF3, Alphabet.GSM7),
        (0xF4, Alphabet.OCTET),
        (0xF7, Alphabet.OCTET),
        (0xF8, Alphabet.GSM7),
        (0xFF, Alphabet.OCTET),
    ],
)
def test_alphabet_for_supported_codings(data_coding: int, alphabet: Alphabet) -> None:
    assert text.alphabet_for(data_coding) is alphabet


@pytest.mark.parametrize("data_coding", [0x05, 0x06, 0x07, 0x09, 0x0A, 0x0D, 0x0E, 0x10, 0xC0])
def test_other_codings_are_unsupported(data_coding: int) -> None:
    with pytest.raises(UnsupportedDataCoding):
        text.alphabet_for(data_coding)
    with pytest.raises(UnsupportedDataCoding):
        text.decode_short_message(b"abc", data_coding)


def test_message_class_group() -> None:
    assert text.message_class(0xF0) == 0
    assert text.message_class(0xF6) == 2
    assert text.message_class(0x00) is None


def test_choose_data_coding() -> None:
    assert text.choose_data_coding("Hello {world} €5") == text.DATA_CODING_DEFAULT
    assert text.choose_data_coding("Ça va ?") == text.DATA_CODING_DEFAULT
    assert text.choose_data_coding("ça va ?") == text.DATA_CODING_UCS2
    assert text.choose_data_coding("“quoted”") == text.DATA_CODING_UCS2
    assert text.choose_data_coding("hi " + EMOJI) == text.DATA_CODING_UCS2


def test_limits_follow_from_140_octets_and_the_concat_udh() -> None:
    room = text.MAX_USER_DATA_OCTETS - udh.CONCAT_UDH_LENGTH
    assert text.GSM7_SINGLE_SEPTETS == text.MAX_USER_DATA_OCTETS * 8 // 7 == 160
    assert text.GSM7_CONCAT_SEPTETS == (8 * room - udh.septet_fill_bits(6)) // 7 == 153
    assert text.UCS2_SINGLE_UNITS == 70 and text.UCS2_CONCAT_UNITS == room // 2 == 67
    assert text.OCTET_SINGLE_OCTETS == 140 and text.OCTET_CONCAT_OCTETS == room == 134


# -- decode / encode ------------------------------------------------------------------


def test_decode_gsm_unpacked_and_packed() -> None:
    assert text.decode_short_message(b"\x1b\x65 5", 0) == "€ 5"
    packed = bytes.fromhex("e8329bfd4697d9ec37")
    assert text.decode_short_message(packed, 0, gsm_packed=True) == "hellohello"
    assert text.decode_short_message(packed, 0xF1, gsm_packed=True) == "hellohello"


def test_decode_gsm_packed_after_a_udh_uses_fill_bits() -> None:
    body = gsm7.encode_packed("hi", fill_bits=1)
    assert text.decode_short_message(body, 0, gsm_packed=True, fill_bits=1) == "hi"


def test_decode_bad_gsm_raises_invalid_gsm7() -> None:
    with pytest.raises(InvalidGsm7):
        text.decode_short_message(b"\xe9t\xe9", 0)


def test_decode_latin1_and_ia5() -> None:
    assert text.decode_short_message("café".encode("latin-1"), 3) == "café"
    assert text.decode_short_message(b"plain", 1) == "plain"
    with pytest.raises(InvalidText):
        text.decode_short_message(b"caf\xe9", 1)


def test_decode_ucs2_with_a_surrogate_pair() -> None:
    assert text.decode_short_message(bytes.fromhex("0041d83dde00"), 8) == "A" + EMOJI


def test_ucs2_with_an_odd_length_is_invalid() -> None:
    with pytest.raises(InvalidText, match="odd length"):
        text.decode_short_message(b"\x00A\x00", 8)
    assert text.decode_short_message(b"\x00A\x00", 8, strict=False) == "A\ufffd"


def test_ucs2_with_a_lone_surrogate_is_invalid() -> None:
    # What a client sends when it cuts a surrogate pair across two segments.
    with pytest.raises(InvalidText, match="surrogate"):
        text.decode_short_message(bytes.fromhex("0041d83d"), 8)
    assert text.decode_short_message(bytes.fromhex("0041d83d"), 8, strict=False) == "A\ufffd"


@pytest.mark.parametrize("data_coding", [0x02, 0x04, 0xF4])
def test_binary_is_not_decoded_as_text(data_coding: int) -> None:
    with pytest.raises(UnsupportedDataCoding):
        text.decode_short_message(b"\x00\xff", data_coding)
    with pytest.raises(UnsupportedDataCoding):
        text.encode_text("x", data_coding)
    assert text.display_text(b"\x00\xff", data_coding) == "00ff"


def test_display_text_is_lenient() -> None:
    assert text.display_text(b"abc\x1b", 0) == "abc "
    assert text.display_text(b"\x01\x02", 0x09) == "0102"


def test_encode_text_per_coding() -> None:
    assert text.encode_text("€", 0) == b"\x1b\x65"
    assert text.encode_text("hellohello", 0, gsm_packed=True).hex() == "e8329bfd4697d9ec37"
    assert text.encode_text("é", 3) == b"\xe9"
    assert text.encode_text("A" + EMOJI, 8) == bytes.fromhex("0041d83dde00")
    with pytest.raises(TextEncodeError):
        text.encode_text("é", 1)
    with pytest.raises(TextEncodeError):
        text.encode_text("€", 3)
    with pytest.raises(TextEncodeError):
        text.encode_text("ç", 0)


@given(st.text(max_size=300))
def test_any_str_survives_ucs2(value: str) -> None:
    assert text.decode_short_message(text.encode_text(value, 8), 8) == value


@given(gsm_text, st.booleans())
def test_any_gsm_text_survives_data_coding_0(value: str, packed: bool) -> None:
    payload = text.encode_text(value, 0, gsm_packed=packed)
    decoded = text.decode_short_message(payload, 0, gsm_packed=packed)
    # Packed: 03.38 doubles a CR that ends the text on an octet boundary.
    assert decoded in (value, value + "\r")


# -- segments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm_segment_boundaries(length: int, segments: int) -> None:
    message = "a" * length
    assert text.count_text_segments(message) == (0, segments)
    assert text.count_segments(message.encode(), 0) == segments
    assert text.count_segments(gsm7.encode_packed(message), 0, gsm_packed=True) == segments


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    message = "ж" * length
    assert text.count_text_segments(message) == (8, segments)
    assert text.count_segments(message.encode("utf-16-be"), 8) == segments


@pytest.mark.parametrize(("length", "segments"), [(0, 1), (140, 1), (141, 2), (268, 2), (269, 3)])
@pytest.mark.parametrize("data_coding", [0x03, 0x04, 0x02, 0xF5])
def test_octet_segment_boundaries(length: int, segments: int, data_coding: int) -> None:
    assert text.count_segments(b"\xe9" * length, data_coding) == segments


def test_extension_characters_count_two_septets() -> None:
    assert text.count_text_segments("€" * 80) == (0, 1)
    assert text.count_text_segments("€" * 80 + "a") == (0, 2)
    assert text.count_text_segments("a" * 159 + "€") == (0, 2)


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets: naively 2 x 153, but the pair at 152-153 pushes ESC to part two.
    straddling = "a" * 152 + "€" + "a" * 152
    assert gsm7.septet_length(straddling) == 306
    assert text.count_text_segments(straddling) == (0, 3)
    assert text.count_segments(gsm7.encode_unpacked(straddling), 0) == 3
    # The same length with the pair wholly inside part one fits in two.
    inside = "a" * 151 + "€" + "a" * 153
    assert text.count_text_segments(inside) == (0, 2)


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    straddling = "a" * 66 + EMOJI + "a" * 66  # 134 units; the pair at units 66-67
    assert text.count_text_segments(straddling) == (8, 3)
    inside = "a" * 65 + EMOJI + "a" * 67
    assert text.count_text_segments(inside) == (8, 2)
    assert text.count_text_segments(EMOJI * 35) == (8, 1)
    assert text.count_text_segments("a" + EMOJI * 35) == (8, 2)


def test_a_dangling_escape_from_a_client_splitter_counts_as_one_septet() -> None:
    # smpplib can end a part with ESC; pricing must neither crash nor overcount.
    assert text.count_segments(b"a" * 159 + b"\x1b", 0) == 1
    assert text.count_segments(b"a" * 160 + b"\x1b", 0) == 2


def test_packed_gsm_is_priced_without_a_full_part_ending_in_cr() -> None:
    # Beside the UDH that part would end on an octet boundary, where 03.38 doubles the CR.
    septets = b"a" * 152 + b"\r" + b"a" * 153
    assert text.count_segments(septets, 0) == 2
    assert text.count_segments(gsm7.pack_message(septets), 0, gsm_packed=True) == 3
    assert text.count_segments(gsm7.pack_message(b"\r" * 306), 0, gsm_packed=True) == 3


def test_ia5_is_counted_as_it_travels_on_the_air() -> None:
    assert text.count_segments(b"a" * 160, 1) == 1
    assert text.count_segments(b"{" * 81, 1) == 2


def test_ucs2_payload_with_an_odd_length_cannot_be_counted() -> None:
    with pytest.raises(InvalidText):
        text.count_segments(b"\x00A\x00", 8)


@given(gsm_text)
def test_counting_text_and_its_payload_agree(value: str) -> None:
    assert text.count_text_segments(value)[1] == text.count_segments(gsm7.encode_unpacked(value), 0)


# -- splitting ------------------------------------------------------------------------


def reassemble(parts: list[bytes], data_coding: int, *, gsm_packed: bool = False) -> str:
    pieces = []
    for seq, part in enumerate(parts, start=1):
        elements, body = udh.parse_udh(part)
        concat = udh.concat_info(elements)
        assert concat is not None and concat.seq == seq and concat.total == len(parts)
        header_length = len(part) - len(body)
        fill_bits = udh.septet_fill_bits(header_length) if gsm_packed else 0
        pieces.append(
            text.decode_short_message(body, data_coding, gsm_packed=gsm_packed, fill_bits=fill_bits)
        )
    return "".join(pieces)


def test_split_gsm_fills_153_septets_per_part() -> None:
    parts = text.split_text("a" * 307, 0, ref=9)
    assert [len(p) for p in parts] == [6 + 153, 6 + 153, 6 + 1]
    assert parts[0][:6] == bytes.fromhex("050003090301")
    assert reassemble(parts, 0) == "a" * 307


def test_split_gsm_packed_fills_140_octets() -> None:
    parts = text.split_text("b" * 307, 0, ref=9, gsm_packed=True)
    assert [len(p) for p in parts] == [140, 140, 6 + 1]  # 1 fill bit + 1 septet
    assert reassemble(parts, 0, gsm_packed=True) == "b" * 307


def test_split_with_a_16bit_reference_has_one_octet_less_room() -> None:
    parts = text.split_text("a" * 153, 0, ref=0x1234, udh16=True)
    assert [len(p) - 7 for p in parts] == [152, 1]
    parts = text.split_text("ж" * 67, 8, ref=0x1234, udh16=True)
    assert [(len(p) - 7) // 2 for p in parts] == [66, 1]


def test_split_keeps_escape_and_surrogate_pairs_whole() -> None:
    gsm_parts = text.split_text("a" * 152 + "€" + "a" * 10, 0, ref=1)
    assert gsm_parts[0].endswith(b"a") and gsm_parts[1][6:8] == b"\x1b\x65"
    ucs2_parts = text.split_text("a" * 66 + EMOJI * 3, 8, ref=1)
    assert [len(p) - 6 for p in ucs2_parts] == [132, 12]


def test_split_packed_does_not_end_a_full_part_with_cr() -> None:
    # A full part has no spare bits, so the doubled CR 03.38 asks for would not fit.
    message = "a" * 152 + "\r" + "a" * 5
    parts = text.split_text(message, 0, ref=1, gsm_packed=True)
    assert all(len(p) <= 140 for p in parts)
    assert reassemble(parts, 0, gsm_packed=True) == message


def test_split_packed_gives_a_run_of_crs_full_parts_but_for_one_septet() -> None:
    parts = text.split_text("\r" * 200, 0, ref=1, gsm_packed=True)
    assert [len(p) for p in parts] == [140, 6 + 43]  # 152 septets, then 48
    assert reassemble(parts, 0, gsm_packed=True) == "\r" * 200


def test_split_always_adds_a_udh_even_when_one_sms_would_do() -> None:
    assert text.count_text_segments("a" * 160) == (0, 1)
    assert [len(p) - 6 for p in text.split_text("a" * 160, 0, ref=1)] == [153, 7]
    assert text.split_text("hi", 0, ref=1) == [bytes.fromhex("050003010101") + b"hi"]


def test_split_refuses_binary_and_more_than_255_parts() -> None:
    with pytest.raises(UnsupportedDataCoding):
        text.split_text("x", 4, ref=1)
    with pytest.raises(ValueError, match="255"):
        text.split_text("a" * (153 * 255 + 1), 0, ref=1)


@given(gsm_text, st.booleans(), st.booleans())
def test_split_gsm_round_trips(value: str, udh16: bool, packed: bool) -> None:
    parts = text.split_text(value, 0, ref=200, udh16=udh16, gsm_packed=packed)
    reassembled = reassemble(parts, 0, gsm_packed=packed)
    # Packed: 03.38 doubles a CR that ends the last part on an octet boundary.
    assert reassembled == value or (packed and reassembled == value + "\r")
    counted = text.count_text_segments(value)[1]
    # A text that fits one SMS without a UDH may need two parts once it carries one.
    if counted > 1 and not (udh16 or packed):
        assert len(parts) == counted
    assert len(parts) >= counted
    room = 152 if udh16 else 153
    for part in parts:
        _, body = udh.parse_udh(part)
        assert len(part) <= 140 if packed else len(body) <= room


@given(st.text(max_size=300))
def test_split_ucs2_round_trips(value: str) -> None:
    parts = text.split_text(value, 8, ref=7)
    assert reassemble(parts, 8) == value
    assert all(len(p) <= text.MAX_USER_DATA_OCTETS for p in parts)
    assert len(parts) == text.count_segments(value.encode("utf-16-be"), 8)

"""User Data Header parsing and the concatenation elements."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu import fields, udh
from pdu.udh import Concat, InvalidUdh


def test_udhi_is_esm_class_bit_6() -> None:
    assert fields.ESM_CLASS_UDHI == 0x40


def test_parse_8bit_concat() -> None:
    elements, rest = udh.parse_udh(bytes.fromhex("050003a70201") + b"hello")
    assert elements == [(0x00, bytes.fromhex("a70201"))]
    assert rest == b"hello"
    assert udh.concat_info(elements) == Concat(ref=0xA7, total=2, seq=1)


def test_parse_16bit_concat() -> None:
    elements, rest = udh.parse_udh(bytes.fromhex("06080412340302") + b"x")
    assert udh.concat_info(elements) == Concat(ref=0x1234, total=3, seq=2)
    assert rest == b"x"


def test_parse_keeps_other_elements_in_order() -> None:
    # Port addressing (IEI 0x05) followed by a concatenation element.
    data = bytes.fromhex("0b05040b8423f00003030201") + b"\x01\x00"
    elements, rest = udh.parse_udh(data)
    assert elements == [(0x05, bytes.fromhex("0b8423f0")), (0x00, bytes.fromhex("030201"))]
    assert rest == b"\x01\x00"
    assert udh.concat_info(elements) == Concat(ref=3, total=2, seq=1)


def test_header_with_no_user_data_after_it() -> None:
    assert udh.parse_udh(bytes.fromhex("050003010101")) == ([(0, b"\x01\x01\x01")], b"")


def test_zero_length_header() -> None:
    assert udh.parse_udh(b"\x00abc") == ([], b"abc")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (bytes.fromhex("0500030102"), "overruns"),
        (bytes.fromhex("ff000301"), "overruns"),
        (bytes.fromhex("0300050102"), r"element 0x00 \(length 5\) overruns"),
        (bytes.fromhex("0100"), "no length octet"),
    ],
)
def test_lengths_that_overrun_are_invalid(data: bytes, message: str) -> None:
    with pytest.raises(InvalidUdh, match=message):
        udh.parse_udh(data)


def test_invalid_udh_is_a_value_error() -> None:
    assert issubclass(InvalidUdh, ValueError)


def test_concat_element_with_the_wrong_length_is_invalid() -> None:
    with pytest.raises(InvalidUdh, match="not 3"):
        udh.concat_info([(0x00, b"\x01\x02")])
    with pytest.raises(InvalidUdh, match="not 4"):
        udh.concat_info([(0x08, b"\x01\x02\x03")])


@pytest.mark.parametrize("total_seq", [(0, 0), (2, 0), (2, 3)])
def test_concat_with_impossible_numbers_is_ignored(total_seq: tuple[int, int]) -> None:
    # 23.040: a receiver ignores an element whose sequence is 0 or beyond the total.
    total, seq = total_seq
    assert udh.concat_info([(0x00, bytes([1, total, seq]))]) is None


def test_no_concat_element() -> None:
    assert udh.concat_info([]) is None
    assert udh.concat_info([(0x05, b"\x00\x00\x00\x00")]) is None


def test_last_concat_element_wins() -> None:
    elements = [(0x00, b"\x01\x02\x01"), (0x08, b"\x00\x09\x02\x02")]
    assert udh.concat_info(elements) == Concat(9, 2, 2)


def test_build_concat_udh_layouts() -> None:
    assert udh.build_concat_udh(0xA7, 2, 1) == bytes.fromhex("050003a70201")
    assert udh.build_concat_udh(0x1234, 3, 2, udh16=True) == bytes.fromhex("06080412340302")
    assert len(udh.build_concat_udh(1, 1, 1)) == udh.CONCAT_UDH_LENGTH
    assert len(udh.build_concat_udh(1, 1, 1, udh16=True)) == udh.CONCAT16_UDH_LENGTH


@pytest.mark.parametrize(
    ("ref", "total", "seq", "udh16"),
    [
        (256, 2, 1, False),
        (-1, 2, 1, False),
        (0x10000, 2, 1, True),
        (1, 2, 0, False),
        (1, 2, 3, False),
        (1, 256, 1, False),
    ],
)
def test_build_concat_udh_refuses_out_of_range(ref: int, total: int, seq: int, udh16: bool) -> None:
    with pytest.raises(ValueError):
        udh.build_concat_udh(ref, total, seq, udh16=udh16)


@given(
    st.booleans(),
    st.integers(min_value=1, max_value=255).flatmap(
        lambda total: st.tuples(st.just(total), st.integers(min_value=1, max_value=total))
    ),
    st.integers(min_value=0, max_value=0xFFFF),
    st.binary(max_size=20),
)
def test_build_then_parse_round_trip(
    udh16: bool, total_seq: tuple[int, int], ref: int, body: bytes
) -> None:
    total, seq = total_seq
    ref = ref if udh16 else ref & 0xFF
    elements, rest = udh.parse_udh(udh.build_concat_udh(ref, total, seq, udh16=udh16) + body)
    assert udh.concat_info(elements) == Concat(ref, total, seq)
    assert rest == body


@given(st.binary(max_size=50))
def test_parse_never_fails_with_anything_but_invalid_udh(data: bytes) -> None:
    try:
        _, rest = udh.parse_udh(data)
    except InvalidUdh:
        return
    assert len(rest) <= len(data)


@pytest.mark.parametrize(("udh_length", "fill"), [(0, 0), (6, 1), (7, 0), (12, 2), (13, 1)])
def test_septet_fill_bits(udh_length: int, fill: int) -> None:
    assert udh.septet_fill_bits(udh_length) == fill

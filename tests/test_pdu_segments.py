"""pdu.text.split_payload: a client's stored user data cut into the segments it is priced at."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu import gsm7, text, udh
from pdu.text import InvalidText

EMOJI_UCS2 = bytes.fromhex("d83dde00")  # U+1F600, a surrogate pair


def runs(specials: list[bytes], filler: bytes, per_part: int) -> st.SearchStrategy[bytes]:
    """Long payloads with special units at random offsets, often on a part boundary.

    A run of per_part - 2 .. per_part filler units puts what follows it where a part
    with an 8-bit or a 16-bit reference ends.
    """
    lengths = st.one_of(st.integers(1, 160), st.integers(per_part - 2, per_part))
    chunk = st.one_of(lengths.map(lambda k: filler * k), st.sampled_from(specials))
    return st.lists(chunk, max_size=12).map(b"".join)


gsm_septets = runs(
    [b"\x1b\x65", b"\x1b", b"\x1b\x1b", b"\x1b\r", b"\r", b"\r\r", b"@", b"\x7f"], b"a", 153
)
ucs2_units = runs([EMOJI_UCS2, b"\xd8\x3d", b"\xde\x00", b"\x04\x36"], b"\x00a", 67)
ia5_gsm_octets = runs([b"{", b"~", b"\xe9", b"@"], b"a", 153)  # extension characters cost two
ia5_octets = runs([b"{", b"`", b"\xe9", b"\x1b"], b"a", 67)  # "`" and ESC are not GSM: UCS-2
octets = st.one_of(st.binary(max_size=700), runs([b"\xff"], b"\x00", 134))

# (data_coding, gsm_packed, payload) as a client may have stored them.
messages = st.one_of(
    st.tuples(st.sampled_from([0x00, 0xF1]), st.just(False), gsm_septets),
    st.tuples(st.just(0x00), st.just(True), gsm_septets.map(gsm7.pack_message)),
    st.tuples(st.just(0x00), st.just(True), st.binary(max_size=700)),
    st.tuples(st.just(0x08), st.just(False), ucs2_units),
    st.tuples(st.just(0x01), st.just(False), st.one_of(ia5_gsm_octets, ia5_octets)),
    st.tuples(st.sampled_from([0x02, 0x03, 0x04, 0xF5]), st.just(False), octets),
)
refs = st.one_of(st.none(), st.integers(0, 0xFF))


def units_of(payload: bytes, data_coding: int, gsm_packed: bool) -> bytes:
    """The payload as the splitter sees it: septets for packed GSM, else its octets."""
    alphabet = text.alphabet_for(data_coding)
    return (
        gsm7.unpack_message(payload) if gsm_packed and alphabet is text.Alphabet.GSM7 else payload
    )


def open_parts(
    parts: list[bytes], *, ref: int | None, udh16: bool, gsm_packed: bool
) -> list[tuple[int, bytes]]:
    """(UDH octets, units) of each part, checking any UDH names the part's position."""
    opened = []
    for seq, part in enumerate(parts, start=1):
        header_length = 0
        body = part
        if ref is not None:
            elements, body = udh.parse_udh(part)
            assert udh.concat_info(elements) == udh.Concat(ref, len(parts), seq)
            header_length = len(part) - len(body)
            assert header_length == (7 if udh16 else 6)
        if gsm_packed:
            body = gsm7.unpack_message(body, fill_bits=udh.septet_fill_bits(header_length))
        opened.append((header_length, body))
    return opened


def rejoins(original: bytes, pieces: list[bytes], fill_bits: int) -> bool:
    """Whether `pieces` join into `original`, each maybe with 03.38's doubled final CR.

    Packed text ending in CR on an octet boundary gets a second CR (gsm7.pack_message);
    a receiver shows both, so a reading with and one without it are both tried.
    """
    if not pieces:
        return not original
    piece, rest = pieces[0], pieces[1:]
    readings = [piece]
    if piece.endswith(b"\r\r") and (7 * (len(piece) - 1) + fill_bits) % 8 == 0:
        readings.append(piece[:-1])
    return any(
        original.startswith(reading) and rejoins(original[len(reading) :], rest, fill_bits)
        for reading in readings
    )


def is_gsm_text(payload: bytes, data_coding: int, gsm_packed: bool) -> bool:
    """Parts measured in septets: GSM one septet per byte, or IA5 priced as GSM text."""
    alphabet = text.alphabet_for(data_coding)
    if alphabet is text.Alphabet.GSM7:
        return not gsm_packed
    return alphabet is text.Alphabet.IA5 and gsm7.is_gsm7(payload.decode("latin-1"))


def septets_of(units: bytes, data_coding: int) -> int:
    if text.alphabet_for(data_coding) is text.Alphabet.IA5:
        return gsm7.septet_length(units.decode("latin-1"))
    return len(units)


# -- one SMS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "gsm_packed", "payload"),
    [
        (0x00, False, b"a" * 160),
        (0x00, True, gsm7.pack_message(b"a" * 160)),
        (0x08, False, b"\x04\x36" * 70),
        (0x04, False, b"\xff" * 140),
        (0x01, False, b"a" * 160),
        (0x00, False, b""),
    ],
)
def test_a_payload_that_fits_one_sms_comes_back_untouched_even_with_a_reference(
    data_coding: int, gsm_packed: bool, payload: bytes
) -> None:
    for ref in (None, 7):
        assert text.split_payload(payload, data_coding, gsm_packed=gsm_packed, ref=ref) == [payload]


# -- examples --------------------------------------------------------------------------


def test_gsm_parts_without_a_udh_leave_room_for_the_one_the_smsc_adds() -> None:
    assert [len(p) for p in text.split_payload(b"a" * 307, 0)] == [153, 153, 1]
    assert [len(p) for p in text.split_payload(b"a" * 307, 0, udh16=True)] == [152, 152, 3]


def test_gsm_parts_with_a_reference_are_those_split_text_makes() -> None:
    parts = text.split_payload(b"a" * 307, 0, ref=9)
    assert parts == text.split_text("a" * 307, 0, ref=9)
    assert parts[0][:6] == bytes.fromhex("050003090301")


def test_packed_gsm_parts_are_repacked_after_the_fill_bits() -> None:
    payload = gsm7.pack_message(b"b" * 307)
    with_udh = text.split_payload(payload, 0, gsm_packed=True, ref=9)
    assert [len(p) for p in with_udh] == [140, 140, 6 + 1]
    assert with_udh == text.split_text("b" * 307, 0, ref=9, gsm_packed=True)
    assert [len(p) for p in text.split_payload(payload, 0, gsm_packed=True)] == [134, 134, 1]
    no_udh16 = text.split_payload(payload, 0, gsm_packed=True, udh16=True)
    assert [len(p) for p in no_udh16] == [133, 133, 3]


def test_a_packed_full_part_never_ends_with_cr() -> None:
    septets = b"a" * 152 + b"\r" + b"a" * 153
    payload = gsm7.pack_message(septets)
    parts = text.split_payload(payload, 0, gsm_packed=True, ref=3)
    assert len(parts) == text.count_segments(payload, 0, gsm_packed=True) == 3
    assert [len(p) for p in parts] == [140, 140, 6 + 1]  # 152 septets, CR + 152, 1
    bodies = [body for _, body in open_parts(parts, ref=3, udh16=False, gsm_packed=True)]
    assert b"".join(bodies) == septets


def test_an_escape_pair_is_never_split_between_parts() -> None:
    payload = b"a" * 152 + b"\x1b\x65" + b"a" * 152
    parts = text.split_payload(payload, 0)
    assert [len(p) for p in parts] == [152, 153, 1]
    assert parts[1].startswith(b"\x1b\x65")


def test_a_surrogate_pair_is_never_split_between_parts() -> None:
    payload = b"\x00a" * 66 + EMOJI_UCS2 + b"\x00a" * 66
    parts = text.split_payload(payload, 8, ref=4)
    assert [len(p) - 6 for p in parts] == [132, 134, 2]
    assert parts[1][6:10] == EMOJI_UCS2


def test_ucs2_with_an_odd_length_cannot_be_split() -> None:
    with pytest.raises(InvalidText, match="odd length"):
        text.split_payload(b"\x00a" * 100 + b"\x00", 8)


def test_8bit_data_is_cut_in_octets() -> None:
    payload = bytes(range(256)) + b"\xe9" * 13
    assert [len(p) for p in text.split_payload(payload, 4)] == [134, 134, 1]
    assert [len(p) for p in text.split_payload(payload, 3, udh16=True)] == [133, 133, 3]
    assert b"".join(text.split_payload(payload, 0xF5)) == payload


def test_ia5_is_cut_by_the_septets_it_is_priced_at() -> None:
    # "{" goes to handsets as ESC + code: 81 of them are 162 septets, two segments.
    braces = text.split_payload(b"{" * 81, 1)
    assert text.count_segments(b"{" * 81, 1) == 2
    assert [len(p) for p in braces] == [76, 5]
    # "`" is not in the GSM alphabet, so the text is priced, and cut, as UCS-2.
    backticks = text.split_payload(b"`" * 71, 1, ref=2)
    assert text.count_segments(b"`" * 71, 1) == 2
    assert [len(p) - 6 for p in backticks] == [67, 4]


def test_more_than_255_parts_are_refused() -> None:
    assert len(text.split_payload(b"a" * (153 * 255), 0, ref=1)) == 255
    for ref in (None, 1):
        with pytest.raises(ValueError, match="255"):
            text.split_payload(b"a" * (153 * 255 + 1), 0, ref=ref)


# -- invariants ------------------------------------------------------------------------


@given(messages, refs)
def test_split_payload_makes_exactly_the_parts_count_segments_prices(
    message: tuple[int, bool, bytes], ref: int | None
) -> None:
    data_coding, gsm_packed, payload = message
    parts = text.split_payload(payload, data_coding, gsm_packed=gsm_packed, ref=ref)
    assert len(parts) == text.count_segments(payload, data_coding, gsm_packed=gsm_packed)


@given(messages, refs)
def test_a_16bit_reference_never_needs_fewer_parts_than_priced(
    message: tuple[int, bool, bytes], ref: int | None
) -> None:
    data_coding, gsm_packed, payload = message
    parts = text.split_payload(payload, data_coding, gsm_packed=gsm_packed, ref=ref, udh16=True)
    assert len(parts) >= text.count_segments(payload, data_coding, gsm_packed=gsm_packed)


@given(messages, st.booleans(), st.booleans(), st.integers(0, 0xFFFF))
def test_split_payload_parts_rejoin_into_the_payload(
    message: tuple[int, bool, bytes], with_ref: bool, udh16: bool, ref_value: int
) -> None:
    data_coding, gsm_packed, payload = message
    ref = (ref_value if udh16 else ref_value & 0xFF) if with_ref else None
    parts = text.split_payload(payload, data_coding, gsm_packed=gsm_packed, ref=ref, udh16=udh16)
    if len(parts) == 1:
        assert parts == [payload]
        return
    opened = open_parts(parts, ref=ref, udh16=udh16, gsm_packed=gsm_packed)
    pieces = [body for _, body in opened]
    original = units_of(payload, data_coding, gsm_packed)
    if gsm_packed and text.alphabet_for(data_coding) is text.Alphabet.GSM7:
        fill_bits = udh.septet_fill_bits(opened[0][0])
        assert rejoins(original, pieces, fill_bits)
    else:
        assert b"".join(pieces) == original


@given(messages, refs, st.booleans())
def test_split_payload_parts_fit_one_sms_beside_their_udh(
    message: tuple[int, bool, bytes], ref: int | None, udh16: bool
) -> None:
    data_coding, gsm_packed, payload = message
    parts = text.split_payload(payload, data_coding, gsm_packed=gsm_packed, ref=ref, udh16=udh16)
    if len(parts) == 1:
        return
    # Without a reference the SMSC adds the UDH: the part must leave room for it.
    smsc_udh = 0 if ref is not None else (7 if udh16 else 6)
    packed = gsm_packed and text.alphabet_for(data_coding) is text.Alphabet.GSM7
    for udh_octets, body in open_parts(parts, ref=ref, udh16=udh16, gsm_packed=packed):
        udh_octets += smsc_udh
        if is_gsm_text(payload, data_coding, gsm_packed):
            assert math.ceil(udh_octets * 8 / 7) + septets_of(body, data_coding) <= 160
        elif packed:
            assert 8 * udh_octets + udh.septet_fill_bits(udh_octets) + 7 * len(body) <= 8 * 140
        else:
            assert udh_octets + len(body) <= text.MAX_USER_DATA_OCTETS
    if ref is not None and not is_gsm_text(payload, data_coding, gsm_packed):
        assert all(len(p) <= text.MAX_USER_DATA_OCTETS for p in parts)


@given(
    st.one_of(
        st.tuples(st.just(0x00), st.text(alphabet=st.sampled_from("a€\r{é@"), max_size=700)),
        st.tuples(st.just(0x08), st.text(max_size=300)),
        st.tuples(st.just(0x03), st.text(alphabet=st.sampled_from("aé\xff"), max_size=600)),
    ),
    st.integers(0, 0xFF),
)
def test_split_payload_and_split_text_agree_on_a_multi_part_text(
    coded: tuple[int, str], ref: int
) -> None:
    data_coding, value = coded
    payload = text.encode_text(value, data_coding)
    if text.count_segments(payload, data_coding) > 1:
        assert text.split_payload(payload, data_coding, ref=ref) == text.split_text(
            value, data_coding, ref=ref
        )

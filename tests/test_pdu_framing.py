"""The framer: any split of the stream gives the same frames; bad lengths are fatal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdu.codec import EnquireLink, SubmitSm, encode
from pdu.framing import Framer, FramingError

FRAMES = [encode(EnquireLink(sequence_number=i)) for i in range(3)] + [
    encode(SubmitSm(sequence_number=9, destination_addr="33601", short_message=b"x" * 200))
]
STREAM = b"".join(FRAMES)


@given(st.lists(st.integers(1, len(STREAM)), max_size=20))
def test_any_split_yields_the_same_frames(cuts):
    framer = Framer()
    got: list[bytes] = []
    points = sorted(set(cuts)) + [len(STREAM)]
    start = 0
    for point in points:
        framer.receive_data(STREAM[start:point])
        got.extend(framer.frames())
        start = point
    assert got == FRAMES
    assert framer.buffered == 0


def test_several_pdus_in_one_read():
    framer = Framer()
    framer.receive_data(STREAM)
    assert framer.frames() == FRAMES


@pytest.mark.parametrize("length", [0, 15, 70000])
def test_bad_command_length_is_a_framing_error(length):
    framer = Framer(max_pdu_size=65536)
    framer.receive_data(length.to_bytes(4, "big") + bytes(12))
    with pytest.raises(FramingError):
        framer.frames()


def test_good_frames_before_a_bad_one_are_delivered_first():
    framer = Framer()
    framer.receive_data(FRAMES[0] + (5).to_bytes(4, "big") + bytes(12))
    assert framer.frames() == [FRAMES[0]]
    with pytest.raises(FramingError):
        framer.frames()

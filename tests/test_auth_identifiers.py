"""system_id generation and validation against the SMPP 3.4 length limit."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.identifiers import generate_system_id, validate_system_id


def test_default_system_id_is_smpp_prefix_and_15_characters() -> None:
    sid = generate_system_id()
    assert sid.startswith("smpp-")
    assert len(sid) == 15
    assert set(sid[5:]) <= set(string.ascii_lowercase + string.digits)


@given(
    prefix=st.text(alphabet=string.ascii_lowercase + "-_", max_size=10),
    length=st.integers(min_value=11, max_value=15),
)
def test_generated_system_id_is_valid(prefix: str, length: int) -> None:
    sid = generate_system_id(prefix, length)
    assert len(sid) == length
    assert sid.startswith(prefix)
    assert validate_system_id(sid) == sid


def test_generated_system_ids_differ() -> None:
    assert len({generate_system_id() for _ in range(200)}) == 200


@pytest.mark.parametrize(
    ("prefix", "length", "message"),
    [
        ("smpp-", 16, "too long"),
        ("smpp-", 5, "leaves no room"),
        ("a-very-long-prefix", 15, "leaves no room"),
        ("", 0, "leaves no room"),
    ],
)
def test_unusable_prefix_or_length_raises(prefix: str, length: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_system_id(prefix, length)


def test_prefix_with_space_is_rejected_by_validation() -> None:
    with pytest.raises(ValueError, match="space"):
        generate_system_id("my id ", 15)


@pytest.mark.parametrize("sid", ["a", "smpp-ab12cd34ef", "X" * 15, "user@host.tld", "~!#$%"])
def test_valid_system_ids_pass_unchanged(sid: str) -> None:
    assert validate_system_id(sid) == sid


@pytest.mark.parametrize(
    ("sid", "message"),
    [
        ("", "must not be empty"),
        ("x" * 16, "16 characters; SMPP 3.4 allows at most 15"),
        ("has space", "contains a space at position 3"),
        ("tab\there", "contains character '\\\\t' at position 3"),
        ("nul\x00", "position 3"),
        ("café", "character 'é' at position 3"),
        ("del\x7f", "position 3"),
    ],
)
def test_invalid_system_ids_raise_with_reason(sid: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_system_id(sid)


def test_non_string_system_id_raises_type_error() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        validate_system_id(b"bytes")  # type: ignore[arg-type]

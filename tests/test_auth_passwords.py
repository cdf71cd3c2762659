"""Password hashing round trips and generated-password properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.passwords import (
    MAX_PASSWORD_LENGTH,
    PASSWORD_ALPHABET,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_is_argon2id_with_owasp_parameters() -> None:
    hashed = hash_password("secret1")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hash_round_trip_accepts_the_right_password() -> None:
    assert verify_password(hash_password("pa55word"), "pa55word")


def test_wrong_password_is_rejected() -> None:
    hashed = hash_password("pa55word")
    assert not verify_password(hashed, "pa55worD")
    assert not verify_password(hashed, "")


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password("abc") != hash_password("abc")


@pytest.mark.parametrize(
    "hashed",
    ["", "plaintext", "$argon2id$v=19$m=19456,t=2,p=1$bad", "$2b$12$notargon", "é", None, 42],
)
def test_malformed_hash_verifies_false_without_raising(hashed: object) -> None:
    assert verify_password(hashed, "abc") is False  # type: ignore[arg-type]


def test_current_hash_does_not_need_rehash() -> None:
    assert not needs_rehash(hash_password("abc"))


def test_hash_with_other_parameters_needs_rehash() -> None:
    from argon2 import PasswordHasher

    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("abc")
    assert needs_rehash(weaker)
    assert verify_password(weaker, "abc")


def test_malformed_hash_needs_rehash() -> None:
    assert needs_rehash("not a hash")


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1lI") & set(PASSWORD_ALPHABET)


def test_default_length_fits_smpp_bind_password() -> None:
    assert len(generate_password()) == MAX_PASSWORD_LENGTH == 8


@settings(max_examples=300)
@given(length=st.integers(min_value=2, max_value=8))
def test_generated_password_properties(length: int) -> None:
    pw = generate_password(length)
    assert len(pw) == length
    assert set(pw) <= set(PASSWORD_ALPHABET)
    assert any(c.isdigit() for c in pw)
    assert any(c.isalpha() for c in pw)
    assert pw.isascii()


@pytest.mark.parametrize("length", [9, 16, 1, 0, -1])
def test_unusable_length_raises(length: int) -> None:
    with pytest.raises(ValueError, match="password length"):
        generate_password(length)


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(200)}) == 200


def test_generated_password_survives_hashing() -> None:
    pw = generate_password()
    assert verify_password(hash_password(pw), pw)

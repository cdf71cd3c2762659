"""Bearer tokens of the web area: random, URL-safe, kept as SHA-256, compared in
constant time."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from auth.tokens import TOKEN_BYTES, new_token, same, token_hash


def test_new_tokens_are_url_safe_and_carry_256_bits() -> None:
    token = new_token()
    # 32 bytes of base64url without padding: 43 characters.
    assert TOKEN_BYTES == 32
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_new_tokens_do_not_repeat() -> None:
    assert len({new_token() for _ in range(1000)}) == 1000


def test_token_hash_is_the_hex_sha256_of_the_token() -> None:
    assert token_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    token = new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash(token))
    assert token_hash(token) != token_hash(new_token())


def test_token_hash_takes_any_text_a_client_sends() -> None:
    # A lone surrogate cannot be UTF-8; it hashes rather than crash the request.
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash("\udcff"))
    assert token_hash("\udcff") != token_hash("\udcfe")
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash("é€"))


def test_same_is_true_only_for_equal_secrets() -> None:
    token = new_token()
    assert same(token, str(token))
    assert not same(token, token[:-1])
    assert not same(token, token + "x")
    assert not same(token, "")
    assert same("", "")


def test_same_takes_non_ascii_text_and_refuses_what_is_not_text() -> None:
    # hmac.compare_digest raises on non-ASCII str; same() compares it as UTF-8.
    assert same("été", "été")
    assert not same("été", "ete")
    assert not same(None, "x")  # type: ignore[arg-type]
    assert not same("x", b"x")  # type: ignore[arg-type]


@given(st.text(), st.text())
def test_same_agrees_with_equality(a: str, b: str) -> None:
    assert same(a, b) == (a == b)
    assert same(a, a)

"""Bearer secrets of the web customer area: session cookies, CSRF tokens, API tokens.

A token is shown to its holder once; the store keeps only its SHA-256 (`token_hash`),
so a copy of the database opens no session. A token carries 256 random bits, enough
that a fast unsalted hash is safe here, unlike for the passwords people choose
(auth.passwords). Secrets are compared in constant time (`same`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Random bytes per token: 256 bits, 43 URL-safe base64 characters.
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token, URL-safe base64 (fits a cookie, a header or a form field)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The hex SHA-256 of `token` (64 lower-case characters): what the store keeps.

    Any text hashes, even a lone surrogate from a hostile cookie: it matches nothing.
    """
    return hashlib.sha256(_octets(token)).hexdigest()


def same(a: str, b: str) -> bool:
    """True if the two secrets are equal, in a time that does not tell where they differ.

    For a CSRF token from a form against the session's, or any presented secret
    against a kept one. Anything but text (a missing field: None) never matches.
    """
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    # compare_digest takes str only when it is ASCII; octets always.
    return hmac.compare_digest(_octets(a), _octets(b))


def _octets(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")

"""Bind passwords: Argon2id hashing and generation of new passwords.

SMPP 3.4 carries the bind password in a 9-octet C-Octet String (8 characters plus NUL),
so generated passwords are short; the hash is what protects them at rest.
"""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# SMPP 3.4, section 5.2.3: password is at most 9 octets including the NUL terminator.
MAX_PASSWORD_LENGTH = 8

# OWASP's minimum Argon2id profile (19 MiB, 2 passes, 1 lane): a bind costs a few ms,
# which keeps a bind storm from starving the event loop while still slowing brute force.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)

# Customers read passwords off a screen or an e-mail; drop glyphs that are easy to confuse.
_LOOK_ALIKES = set("0O1lI")
LETTERS = "".join(c for c in string.ascii_letters if c not in _LOOK_ALIKES)
DIGITS = "".join(c for c in string.digits if c not in _LOOK_ALIKES)
PASSWORD_ALPHABET = LETTERS + DIGITS


def hash_password(pw: str) -> str:
    """Return an Argon2id hash (PHC string format) of ``pw``."""
    return _HASHER.hash(pw)


def verify_password(hashed: str, pw: str) -> bool:
    """True if ``pw`` matches ``hashed``; False on mismatch or a malformed hash."""
    # A corrupt stored hash must fail the bind, not crash the session.
    if not isinstance(hashed, str) or not isinstance(pw, str):
        return False
    try:
        return _HASHER.verify(hashed, pw)
    except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
        return False


def decoy_hash() -> str:
    """A hash of a random secret no bind can carry, with the parameters of real ones.

    Binds for unknown, suspended or not-allowed accounts are verified against it, so
    they cost what a real check costs and answer times do not tell which names exist.
    """
    # Longer than MAX_PASSWORD_LENGTH: no bind password can ever match it.
    return _HASHER.hash(secrets.token_urlsafe(24))


def needs_rehash(hashed: str) -> bool:
    """True if ``hashed`` was made with other parameters (or cannot be read at all)."""
    if not isinstance(hashed, str):
        return True
    try:
        return _HASHER.check_needs_rehash(hashed)
    except (InvalidHashError, VerificationError, ValueError):
        return True


def generate_password(length: int = MAX_PASSWORD_LENGTH) -> str:
    """Return a random password of ``length`` characters with at least one letter and digit.

    Raises ValueError if ``length`` exceeds what an SMPP 3.4 bind can carry (8) or is too
    short to hold both a letter and a digit.
    """
    if length > MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"password length {length} is too long: SMPP 3.4 limits the bind password "
            f"to {MAX_PASSWORD_LENGTH} characters (9 octets with the NUL)"
        )
    if length < 2:
        raise ValueError(f"password length {length} is too short: need at least 2")
    # Rejection sampling keeps every valid password equally likely, unlike forcing a
    # digit into a chosen position.
    while True:
        pw = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if any(c in DIGITS for c in pw) and any(c in LETTERS for c in pw):
            return pw

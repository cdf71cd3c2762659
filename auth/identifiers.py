"""SMPP ``system_id`` values: generation of new ones and validation of given ones.

SMPP 3.4 (section 5.2.1) carries system_id in a 16-octet C-Octet String, so at most
15 characters; the bind decoder and the account store both rely on that limit.
"""

from __future__ import annotations

import secrets
import string

MAX_SYSTEM_ID_LENGTH = 15
SYSTEM_ID_ALPHABET = string.ascii_lowercase + string.digits


def generate_system_id(prefix: str = "smpp-", length: int = MAX_SYSTEM_ID_LENGTH) -> str:
    """Return ``prefix`` followed by random lowercase letters and digits, ``length`` in all.

    Raises ValueError if ``length`` exceeds 15 or the prefix leaves no room for randomness.
    """
    if length > MAX_SYSTEM_ID_LENGTH:
        raise ValueError(
            f"system_id length {length} is too long: SMPP 3.4 allows at most "
            f"{MAX_SYSTEM_ID_LENGTH} characters"
        )
    room = length - len(prefix)
    if room < 1:
        raise ValueError(
            f"prefix {prefix!r} ({len(prefix)} characters) leaves no room for random "
            f"characters in a system_id of {length} characters"
        )
    random_part = "".join(secrets.choice(SYSTEM_ID_ALPHABET) for _ in range(room))
    return validate_system_id(prefix + random_part)


def validate_system_id(s: str) -> str:
    """Return ``s`` unchanged if it is a usable system_id, else raise ValueError.

    A usable system_id has 1 to 15 printable ASCII characters and no spaces.
    """
    if not isinstance(s, str):
        raise TypeError(f"system_id must be a string, got {type(s).__name__}")
    if not s:
        raise ValueError("system_id must not be empty")
    if len(s) > MAX_SYSTEM_ID_LENGTH:
        raise ValueError(
            f"system_id {s!r} has {len(s)} characters; SMPP 3.4 allows at most "
            f"{MAX_SYSTEM_ID_LENGTH}"
        )
    for position, char in enumerate(s):
        # 0x21..0x7E: printable ASCII without the space, which clients often trim.
        if not "\x21" <= char <= "\x7e":
            what = "a space" if char == " " else f"character {char!r}"
            raise ValueError(
                f"system_id {s!r} contains {what} at position {position}; "
                "only printable ASCII without spaces is allowed"
            )
    return s

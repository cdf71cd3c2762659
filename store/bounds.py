"""What the store accepts beyond types: the longest texts, and ids the engines can hold.

SQLite enforces neither VARCHAR(n) nor BIGINT's range, and PostgreSQL refuses NUL
characters with a driver error; repositories check texts and ids here before writing,
so both engines answer the same clear ValueError. The schema's CHECKs (migration 0007)
hold the same text limits as a last line of defence. Money bounds are in store.money.
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa

# Ids are BIGINT (message ids are 64-bit snowflakes); beyond this the drivers overflow.
MAX_BIGINT = 2**63 - 1


def check_text(column: sa.Column, value: object, name: str | None = None) -> str | None:
    """`value` unchanged if it fits `column` (a String(n) of store.tables): None, or text
    of at most n characters with no control character; else ValueError naming it."""
    if value is None:
        return None
    label = name or column.name
    if not isinstance(value, str):
        raise TypeError(f"{label} must be text, got {type(value).__name__}")
    most = column.type.length
    if most is not None and len(value) > most:
        raise ValueError(f"{label} is {len(value)} characters long; at most {most} allowed")
    for char in value:
        # Cc: NUL (which PostgreSQL cannot store), newlines and other controls that
        # would break the operator's one-line tables; Cs: lone surrogates, not UTF-8.
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"{label} must not contain control characters ({char!r})")
    return value


def check_id(name: str, value: object, *, least: int = 1) -> int:
    """An int id within least..MAX_BIGINT, or ValueError naming it and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer id, got {type(value).__name__}")
    if not least <= value <= MAX_BIGINT:
        raise ValueError(f"{name} must be between {least} and {MAX_BIGINT}, got {value}")
    return value

"""Passwords out of everything printed or logged: `redact` masks the password of every URL
in a text (``scheme://user:password@host`` and a ``password=`` query parameter) as ``***``.

The one helper for start-up lines, configuration errors and log lines (through
`RedactingFormatter`); it lives in config so that config, store and gateway can all use it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# The user information of a URL: everything up to the *last* "@" of the word is the
# password, so one that holds "@", "/" or "#" unencoded is masked whole. Odd text may be
# over-masked; a password is never half shown.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):(?P<password>\S+)@")
# asyncpg and libpq also take the password as a query parameter. The value ends at the
# next parameter, at a space, or at the quote that closes a repr.
_QUERY = re.compile(
    r"(?P<head>[?&](?:password|passwd|pass|pwd)=)(?P<password>[^&#\s]+?)"
    r"(?=['\"]?(?:[&#\s,)\]}]|$))",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    return _QUERY.sub(rf"\g<head>{MASK}", text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments, traceback) is redacted,
    so no component has to remember to redact what it logs."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

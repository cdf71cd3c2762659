"""Passwords out of everything printed or logged: `redact` masks the password of every URL
in a text (``scheme://user:password@host`` and a ``password=`` query parameter) as ``***``;
`redact_url` does the same for one value known to be a URL, whatever its password holds.

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


_QUERY_SECRETS = frozenset({"password", "passwd", "pass", "pwd"})


def redact_url(url: str) -> str:
    """``url`` (a value known to be one URL) with its password masked as ``***``.

    Taken apart rather than searched, so a password holding spaces, quotes or anything
    else free text cannot delimit is masked whole: everything between the first ":" of
    the user information and the last "@" goes, as does every ``password=`` value in
    the query. Text that is no URL at all is masked up to its last "@" the same way.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{MASK}@{hostpart}" if colon else f"{userinfo}@{hostpart}"
    head, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        params = []
        for param in query.split("&"):
            key, equals, _ = param.partition("=")
            params.append(f"{key}={MASK}" if equals and key.lower() in _QUERY_SECRETS else param)
        rest = f"{head}?{'&'.join(params)}{hash_}{fragment}"
    return f"{scheme}{sep}{rest}"


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments, traceback) is redacted,
    so no component has to remember to redact what it logs."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

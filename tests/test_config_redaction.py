"""config.redaction: no URL password survives `redact`, whatever the URL looks like, and
the log formatter built on it redacts messages, arguments and tracebacks alike."""

from __future__ import annotations

import logging
import sys

import pytest

from config.redaction import RedactingFormatter, redact, redact_url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("smppgw: store postgresql+asyncpg://gw:s3cret@db:5432/smppgw",
         "smppgw: store postgresql+asyncpg://gw:***@db:5432/smppgw"),
        ("got 'smpp://acme:s3cret@10.0.0.7:2775?window=20' (from SMPPGW_UPSTREAM_URL)",
         "got 'smpp://acme:***@10.0.0.7:2775?window=20' (from SMPPGW_UPSTREAM_URL)"),
        # Unencoded "@", "/" and "#" in the password: masked whole, up to the last "@".
        ("smpps://acme:s3c@r/e#t@h:3550", "smpps://acme:***@h:3550"),
        ("postgresql+asyncpg://db/smppgw?user=gw&password=s3cret&ssl=require",
         "postgresql+asyncpg://db/smppgw?user=gw&password=***&ssl=require"),
        ("['postgresql://db/x?password=s3cret', 'smpp://u:s3cret@h']",
         "['postgresql://db/x?password=***', 'smpp://u:***@h']"),
    ],
)
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "sqlite+aiosqlite:///var/smppgw.db",
        "metrics on http://127.0.0.1:9775/metrics",
        "smpp://acme@10.0.0.7:2775",
        # The demo account's line is printed on purpose: not a URL, left alone.
        "system_id=smpp-abc password=Xy7pQ2zr",
    ],
)
def test_text_without_url_password_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_formatter_redacts_arguments_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise ConnectionError("cannot reach smpp://acme:s3cret@10.0.0.7:2775")
    except ConnectionError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "upstream %s down: %r",
                                   ("smpp://acme:s3cret@10.0.0.7", "?password=s3cret"), None)
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "s3cret" not in text
    assert "smpp://acme:***@10.0.0.7" in text and "ConnectionError" in text


# --- redact_url: one value known to be a URL, taken apart ----------------------------------



@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("smpp://acme:s3 cr'et@h:2775", "smpp://acme:***@h:2775"),
        ("smpp://acme:s3c@r/e#t@h:x?window=1", "smpp://acme:***@h:x?window=1"),
        ("postgresql://db/x?user=gw&password=s3 cret&ssl=1", "postgresql://db/x?user=gw&password=***&ssl=1"),
        ("acme:s3cret@host:2775", "acme:***@host:2775"),
        ("smpp://acme@h:2775", "smpp://acme@h:2775"),
        ("sqlite+aiosqlite:///var/smppgw.db", "sqlite+aiosqlite:///var/smppgw.db"),
    ],
)
def test_redact_url_masks_any_password_whole(url: str, shown: str) -> None:
    assert redact_url(url) == shown

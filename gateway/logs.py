"""The log lines of `smppgw serve`: text (`<ts> <LEVEL> <logger>: <message>`) or one JSON
object per line, timestamps in ISO 8601 in UTC with the offset written out, passwords of
URLs redacted, and two levels: `log_level` for the project's own loggers, and
`log_level_libraries` for every other (database drivers, the web server, Alembic), whose
DEBUG lines are many and show statements, hashes and message bodies.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from config.redaction import RedactingFormatter, redact
from config.settings import Settings

# The top-level names our code logs under (`getLogger(__name__)` of these packages,
# plus the two named by hand: "smppgw.serve" and the built-in simulator's "smsc_sim").
# Every other logger is a library's.
PROJECT_LOGGERS = (
    "gateway", "store", "config", "auth", "pdu", "smppgw", "smsc_sim", "benchmarks",
)

# Libraries that give their logger a level of their own unless one is set, so the root
# logger's does not reach them: SQLAlchemy sets "sqlalchemy" to WARNING on import.
LIBRARIES_WITH_OWN_LEVEL = ("sqlalchemy",)


def iso_timestamp(created: float) -> str:
    """``2026-11-30T06:10:00.123+00:00``: UTC, so lines of nodes in different zones sort
    together, with the offset written so that no reader has to guess the zone."""
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")


class TextFormatter(RedactingFormatter):
    """``<ts> <LEVEL> <logger>: <message>``, redacted (tracebacks follow on their own lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_timestamp(record.created)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ts, level, logger, message, then the record's `extra=`
    fields (peer, system_id, reason...) and exc_info as one string. Every string is
    redacted field by field (redacting the serialised line could cut through its quoting);
    non-ASCII is escaped, so a line is always one line."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = None  # the first keys, in this order
        log_data["level"] = log_data["logger"] = log_data["message"] = None
        super().add_fields(log_data, record, message_dict)
        # After the extras, so that an extra named like one of these cannot replace it.
        log_data["ts"] = iso_timestamp(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redacted(value) for key, value in log_data.items()}


class _ServeHandler(logging.StreamHandler):
    """The handler configure_logging installs (and replaces when called again)."""


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line to `stream` (stderr by default) in `settings.log_format`, our
    loggers at `settings.log_level` and the rest at `settings.log_level_libraries`.
    Returns the handler installed on the root logger."""
    handler = _ServeHandler(stream if stream is not None else sys.stderr)
    formatter = JsonLineFormatter() if settings.log_format == "json" else TextFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ServeHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level_libraries)
    for name in LIBRARIES_WITH_OWN_LEVEL:
        logging.getLogger(name).setLevel(settings.log_level_libraries)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level)
    # warnings.warn() output would otherwise reach stderr as bare text between the lines.
    logging.captureWarnings(True)
    return handler

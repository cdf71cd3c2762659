"""The one exception type for bad configuration, phrased for the operator who must fix it.

Its message never shows a password: URLs in it are redacted (config.redaction).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from config.redaction import redact

_UNSET: Any = object()


def _show(value: object, setting: str | None) -> str:
    # A secret is not echoed even when it is wrong (say, a TOML number): its type says why.
    if setting and "password" in setting:
        return f"a value of type {type(value).__name__} (not shown)"
    # Paths print as the text the operator typed, not as PosixPath('...').
    if isinstance(value, PurePath):
        return repr(str(value))
    return repr(value)


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent.

    The message names the setting, the bad value and where it came from, e.g.
    ``smpp_port: must be an integer between 0 and 65535, got 'abc' (from SMPPGW_SMPP_PORT)``.
    A URL in it shows no password (``smpp://acme:***@10.0.0.7``); ``value`` keeps the
    value as given.
    """

    def __init__(
        self,
        problem: str,
        *,
        setting: str | None = None,
        value: object = _UNSET,
        source: str | None = None,
    ) -> None:
        self.problem = problem
        self.setting = setting
        self.value = None if value is _UNSET else value
        self._has_value = value is not _UNSET
        self.source = source
        message = f"{setting}: {problem}" if setting else problem
        if self._has_value:
            message += f", got {_show(value, setting)}"
        if source:
            message += f" (from {source})"
        super().__init__(redact(message))

    def with_source(self, source: str | None) -> ConfigError:
        """The same error, saying where the value came from (if it does not already)."""
        if self.source or not source:
            return self
        return ConfigError(
            self.problem,
            setting=self.setting,
            value=self.value if self._has_value else _UNSET,
            source=source,
        )

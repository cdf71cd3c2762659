"""The exception types for bad configuration, phrased for the operator who must fix it:
`ConfigError` for one mistake, `ConfigErrors` (a ConfigError too) for every mistake found
in one pass, so an operator fixes a file once rather than once per error.

No message shows a password: URLs in it are redacted (config.redaction).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

from config.redaction import redact, redact_url

_UNSET: Any = object()


def _show(value: object, setting: str | None) -> str:
    # A secret is not echoed even when it is wrong (say, a TOML number): its type says why.
    if setting and "password" in setting:
        return f"a value of type {type(value).__name__} (not shown)"
    # Paths print as the text the operator typed, not as PosixPath('...').
    if isinstance(value, PurePath):
        return repr(str(value))
    # A URL is taken apart, so even a password free text could not delimit is masked.
    if setting and setting.endswith("url") and isinstance(value, str):
        return repr(redact_url(value))
    return repr(value)


def setting_root(setting: str | None) -> str | None:
    """The setting an error is about: ``upstreams`` for ``upstreams[2] 'smsc-a'.port``."""
    if not setting:
        return None
    match = re.match(r"[a-z_]+", setting)
    return match.group(0) if match else setting


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

    @property
    def messages(self) -> list[str]:
        """Each mistake's message, one per line of a report (here: this one)."""
        return [str(self)]

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

    def with_sources(self, source_of: Callable[[str | None], str | None]) -> ConfigError:
        """The same error, its source looked up from the setting it names."""
        return self.with_source(source_of(setting_root(self.setting)))


class ConfigErrors(ConfigError):
    """Every mistake found in one pass over a configuration, at least one.

    ``errors`` holds each as a `ConfigError` (nested ConfigErrors are flattened) and
    ``messages`` their texts, e.g.
    ``upstreams[2] 'smsc-a'.port: must be an integer between 1 and 65535, got 'x'``.
    The message of the whole is the one message when there is one, else a count and
    then one message per indented line. Being a ConfigError, it is caught by every
    ``except ConfigError``; ``setting``/``value``/``source`` are the first error's.
    """

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        flat: list[ConfigError] = []
        for error in errors:
            flat.extend(error.errors if isinstance(error, ConfigErrors) else [error])
        if not flat:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors: tuple[ConfigError, ...] = tuple(flat)
        first = flat[0]
        self.problem = first.problem
        self.setting = first.setting
        self.value = first.value
        self._has_value = first._has_value
        self.source = first.source
        if len(flat) == 1:
            text = str(first)
        else:
            text = f"{len(flat)} problems:" + "".join(f"\n  {e}" for e in flat)
        ValueError.__init__(self, text)

    @property
    def messages(self) -> list[str]:
        return [str(e) for e in self.errors]

    def with_source(self, source: str | None) -> ConfigErrors:
        return ConfigErrors(e.with_source(source) for e in self.errors)

    def with_sources(self, source_of: Callable[[str | None], str | None]) -> ConfigErrors:
        return ConfigErrors(e.with_sources(source_of) for e in self.errors)


def raise_if_any(errors: list[ConfigError]) -> None:
    """Raise `ConfigErrors` with ``errors`` unless there are none."""
    if errors:
        raise ConfigErrors(errors)

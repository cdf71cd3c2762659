"""Build `Settings` from defaults, a TOML file, the environment and command-line overrides.

Precedence, lowest to highest: `Settings` defaults < TOML file < ``SMPPGW_*`` environment
variables < overrides (CLI flags). Every value says where it came from in error messages.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from config.errors import ConfigError, ConfigErrors, raise_if_any
from config.settings import RULES, Settings, setting_types

log = logging.getLogger(__name__)

ENV_PREFIX = "SMPPGW_"
# Names the config file when load_settings gets none; not a setting itself.
CONFIG_FILE_ENV = "SMPPGW_CONFIG"

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


def load_settings(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Return validated `Settings`, or raise `ConfigError` naming the bad setting and source.

    ``config_file`` is TOML with the settings as **top-level keys** (no ``[gateway]``
    table), spelled exactly like the `Settings` fields::

        state_dir = "/var/lib/smppgw"
        smpp_port = 2775
        tls_port = 3550
        tls_cert = "/etc/smppgw/cert.pem"
        tls_key = "/etc/smppgw/key.pem"

    A flat file maps one-to-one onto the environment variables and the CLI flags, so a
    setting has one name everywhere. Unknown keys are errors (with close matches
    suggested). TOML values must have the setting's type, except that integers are
    accepted for floats, strings for paths, and "" for "none" in optional settings.
    When ``config_file`` is None, ``$SMPPGW_CONFIG`` names the file if set.

    ``env`` (default ``os.environ``): ``SMPPGW_<SETTING>`` in upper case, e.g.
    ``SMPPGW_SMPP_PORT=2775``. Strings are converted by the setting's type: integers,
    floats, booleans (1/0, true/false, yes/no, any case), paths; an empty string means
    none for optional settings. Other ``SMPPGW_*`` variables are logged as a warning
    (with close matches) rather than refused: tests and tools share the prefix for
    their own variables (e.g. ``SMPPGW_TEST_PG_URL``).

    ``overrides``: setting name to value, as parsed CLI flags; None values are skipped
    (flag not given). String values for non-string settings are converted as for ``env``.

    Every bad value found is reported at once: several mistakes raise `ConfigErrors`
    (a ConfigError) listing each with its source. A file that cannot be read or parsed
    is reported alone.
    """
    return load_settings_with_sources(config_file, env=env, overrides=overrides)[0]


def load_settings_with_sources(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """`load_settings`, and where each setting's value came from: a dict with every
    `Settings` field, mapped to ``"default"``, the config file's path, the environment
    variable (``SMPPGW_SMPP_PORT``) or ``"command line"``."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    errors: list[ConfigError] = []

    def refuse(name: str, error: ConfigError) -> None:
        # A bad value is reported, and no lower-precedence value stands in for it.
        errors.append(error)
        values.pop(name, None)
        sources.pop(name, None)

    if config_file is None and env.get(CONFIG_FILE_ENV, "").strip():
        config_file = Path(env[CONFIG_FILE_ENV].strip())
    if config_file is not None:
        path = Path(config_file)
        for key, value in _read_toml(path).items():
            if key not in RULES:
                errors.append(_unknown_key(key, value, source=str(path)))
                continue
            values[key] = value
            sources[key] = str(path)

    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_FILE_ENV:
            continue
        suffix = var[len(ENV_PREFIX) :]
        name = suffix.lower()
        if name in REMOVED and suffix == suffix.upper():
            errors.append(_unknown_key(name, env[var], source=var))
            continue
        if name not in RULES or suffix != suffix.upper():
            log.warning("ignoring %s", _unknown_env(var))
            continue
        try:
            values[name] = parse_value(name, env[var], source=var)
            sources[name] = var
        except ConfigError as exc:
            refuse(name, exc)

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        source = "command line"
        if name not in RULES:
            errors.append(_unknown_key(name, value, source=source))
            continue
        try:
            if isinstance(value, str) and setting_types()[name][0] is not str:
                value = parse_value(name, value, source=source)
            values[name] = value
            sources[name] = source
        except ConfigError as exc:
            refuse(name, exc)

    try:
        settings = Settings(**values)
    except ConfigError as exc:
        # The values that failed on their own are left out above, so what is reported
        # here is new: each error gets the source of the setting it names.
        errors.append(exc.with_sources(sources.get))
        raise ConfigErrors(errors) from None
    raise_if_any(errors)
    return settings, {f.name: sources.get(f.name) or "default" for f in fields(Settings)}


def parse_value(name: str, text: str, *, source: str | None = None) -> Any:
    """Convert the string ``text`` to the type of setting ``name`` (as for env variables)."""
    base, optional = setting_types()[name]
    stripped = text.strip()
    if optional and stripped == "":
        return None
    try:
        if base is bool:
            lowered = stripped.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if base is int:
            return int(stripped)
        if base is float:
            return float(stripped)
        if base is Path:
            return Path(text) if text else text
        return stripped
    except ValueError:
        raise ConfigError(
            f"must be {RULES[name].expect}", setting=name, value=text, source=source
        ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = f"config file {path} is not valid TOML: {exc}"
        match = re.search(r"at line (\d+)", str(exc))
        lines = text.splitlines()
        if match and 1 <= int(match.group(1)) <= len(lines):
            number = int(match.group(1))
            message += f"\n  line {number}: {_quoted_line(lines[number - 1])}"
        raise ConfigError(message) from None


# A line that sets a password (a key of its own, or in an inline table) is quoted only up
# to that key: the rest of the line may be the password.
_SECRET_LINE = re.compile(r"""(["']?\b[\w.-]*password[\w.-]*["']?\s*=).*""", re.IGNORECASE)


def _quoted_line(line: str) -> str:
    """A line of the config file as an error may show it: no password in it."""
    return _SECRET_LINE.sub(r"\1 ***", line)


def _close_matches(key: str) -> str:
    names = [f.name for f in fields(Settings)]
    matches = difflib.get_close_matches(key.lower(), names, n=3, cutoff=0.6)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


# Settings that existed once: naming one is an error that says why it went.
REMOVED = {
    "batch_max_delay_ms": "the store writer commits whatever is waiting as soon as the "
    "previous commit ends, so there is no delay to set; delete it from the configuration",
}


def _unknown_key(key: str, value: Any, *, source: str) -> ConfigError:
    if key.lower() in REMOVED:
        return ConfigError(f"setting {key!r} was removed: {REMOVED[key.lower()]}",
                           source=source)
    hint = _close_matches(key)
    if not hint and isinstance(value, dict) and set(value) & set(RULES):
        hint = "; settings are top-level keys, not inside a table"
    return ConfigError(f"unknown setting {key!r}{hint}", source=source)


def _unknown_env(var: str) -> str:
    hint = _close_matches(var[len(ENV_PREFIX) :])
    if hint:
        # Suggest the variable, not the setting name.
        names = re.findall(r"'(\w+)'", hint)
        hint = "; did you mean " + " or ".join(ENV_PREFIX + n.upper() for n in names) + "?"
    return f"unknown environment variable {var}{hint}"

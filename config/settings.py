"""`Settings`: every knob of the gateway in one frozen object, passed down to whoever needs it.

Like aioquic's QuicConfiguration, there are no hidden globals: the CLI builds one
`Settings` (see `config.loader.load_settings`) and hands it to the listeners, the store
and the dispatcher. Construction validates every field, so a `Settings` that exists is
a usable one.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from config.errors import ConfigError, raise_if_any

# --- rules: what each value must be, said once for both the check and the message ------


@dataclass(frozen=True, slots=True)
class Rule:
    """What a setting accepts: ``expect`` completes the sentence "must be ..."."""

    expect: str
    check: Callable[[Any], bool]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_between(lo: int, hi: int, note: str = "") -> Rule:
    return Rule(f"an integer between {lo} and {hi}{note}", lambda v: _is_int(v) and lo <= v <= hi)


def _int_at_least(lo: int) -> Rule:
    return Rule(f"an integer of at least {lo}", lambda v: _is_int(v) and v >= lo)


def _positive(unit: str) -> Rule:
    return Rule(f"a positive number of {unit}", lambda v: _is_number(v) and v > 0)


def _non_negative(unit: str) -> Rule:
    return Rule(f"a number of {unit}, 0 or more", lambda v: _is_number(v) and v >= 0)


def _one_of(*options: str) -> Rule:
    listed = ", ".join(repr(o) for o in options)
    return Rule(f"one of {listed}", lambda v: isinstance(v, str) and v in options)


def _optional(rule: Rule) -> Rule:
    return Rule(f"{rule.expect} (or empty for none)", lambda v: v is None or rule.check(v))


_BOOL = Rule("true or false (1/0, yes/no)", lambda v: isinstance(v, bool))
_PATH = Rule("a file system path", lambda v: isinstance(v, Path) and str(v) != "")
_HOST = Rule(
    "a host name or IP address without spaces",
    lambda v: isinstance(v, str) and v != "" and not any(c.isspace() for c in v),
)
_PORT = _int_between(0, 65535, " (0 picks a free port)")
# TOML would read an unquoted 1.3 as a float; the hint saves a puzzled operator.
_TLS_VERSION = Rule(
    "the string '1.2' or '1.3' (quoted in TOML)",
    lambda v: isinstance(v, str) and v in ("1.2", "1.3"),
)
_DATABASE_URL = Rule(
    "an SQLAlchemy URL such as 'sqlite+aiosqlite:///var/smppgw.db' or "
    "'postgresql+asyncpg://user@host/db'",
    lambda v: (
        isinstance(v, str)
        and "://" in v
        and v.split("://", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql")
    ),
)
# Credits as text with at most two decimals ("1", "0.05"): the store keeps exact minor
# units, and a TOML float would already have lost that.
_CREDITS = Rule(
    "an amount of credits as text with at most two decimals, e.g. '1' or '0.05'",
    lambda v: isinstance(v, str) and re.fullmatch(r"\d{1,15}(\.\d{1,2})?", v) is not None,
)
# The framing layer must at least hold a submit_sm carrying a full 254-octet
# short_message; the top end keeps one client from making us buffer arbitrary memory.
_PDU_SIZE = _int_between(1024, 16 * 1024 * 1024)

_UPPERCASE_CHOICES = frozenset({"sqlite_synchronous", "log_level", "log_level_libraries"})

# Linux sun_path is 108 bytes including the NUL; a longer socket path fails at bind time
# with an obscure error, so say so at load time.
_MAX_UNIX_SOCKET_PATH = 107

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


# --- the settings object -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Gateway configuration. All durations are in seconds unless the name says ``_ms``."""

    # Storage.
    state_dir: Path = Path("var")
    database_url: str | None = None
    sqlite_synchronous: str = "FULL"

    # SMPP listeners.
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_min_version: str = "1.3"

    # Operator surface.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9775
    # The web panel (customer area): 0 picks a free port, -1 turns it off. Over HTTPS
    # with tls_cert / tls_key when the TLS listener is configured.
    web_host: str = "127.0.0.1"
    web_port: int = 8775
    web_session_ttl: float = 12 * 3600.0
    admin_socket: Path | None = None

    # When true every failed bind answers ESME_RBINDFAIL, so account names cannot be probed.
    uniform_bind_failure: bool = False

    # Connections: refused beyond these (a log line and smppgw_connections_refused_total).
    # The gateway raises its open-file limit to fit max_connections at start.
    max_connections: int = 20000
    max_connections_per_ip: int = 200
    # Output a connection may leave unread before it is dropped (aborted, not closed
    # gracefully: a peer that does not read is never waited for).
    max_unsent_bytes: int = 1048576

    # Bind throttling: failures in bind_fail_window seconds, counted per (system_id,
    # address), per address, and per account from every address together (a much higher
    # ceiling, so strangers cannot lock an owner out); past a limit that key is refused
    # ESME_RBINDTHROTTLED for bind_cooldown seconds. Binds from an address not on the
    # account's list never count against the account. At most bind_checks_pending
    # password checks wait at once; beyond that a bind is throttled at once.
    bind_fail_window: float = 60.0
    bind_fail_limit_pair: int = 5
    bind_fail_limit_ip: int = 20
    bind_fail_limit_account: int = 200
    bind_cooldown: float = 60.0
    bind_checks_pending: int = 32

    # Several nodes on one PostgreSQL: changes made on one node reach the others at once
    # (LISTEN/NOTIFY); every directory_reload_interval seconds each node also re-reads
    # the whole directory, in case a notice was lost.
    directory_reload_interval: float = 60.0
    # Each node writes a heartbeat every node_heartbeat_interval seconds; a node silent
    # for node_ttl seconds counts as gone (its sessions stop counting against bind
    # limits). An outbox claim (a message a node took to send) and a delivery claim (a
    # receipt or MO a node took to give to its receiver) are taken over by another node
    # once their lease has run out.
    node_heartbeat_interval: float = 2.0
    node_ttl: float = 10.0
    outbox_claim_lease: float = 60.0
    delivery_claim_lease: float = 60.0

    # Session timers.
    bind_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    session_max_age: float = 86400.0
    response_timeout: float = 10.0

    # Per-session defaults, used when an account does not set its own.
    default_window: int = 10
    default_throughput: float = 20.0
    max_pdu_size: int = 65536

    # Account control: what a new account starts with (each can be changed per account).
    default_bind_limit: int = 1
    default_gsm_packed: bool = False
    default_max_segments: int = 8
    default_keep_bodies: bool = True
    default_dlr_retention_days: int = 7
    default_stop_mode: str = "dlr"
    # "lenient" takes any source TON/NPI for an exact enabled sender; "strict" refuses
    # what does not fit the sender's kind (ESME_RINVSRCTON / ESME_RINVSRCNPI).
    default_addressing: str = "lenient"
    # Credits per segment when no rate prefix matches, as text: money is never a float.
    default_rate: str = "1.00"
    max_allowed_ips: int = 10
    # History older than this is purged by the retention job, which runs every
    # retention_interval seconds.
    history_retention_days: int = 183
    retention_interval: float = 3600.0

    # Outgoing mail (password rotation, low-balance alerts); off while smtp_host is unset.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "smppgw@localhost"
    smtp_timeout: float = 10.0
    # STARTTLS before anything is sent (refusing a server that does not offer it), and a
    # login when smtp_user is set.
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: str | None = None

    # The store writer: at most this many operations in one commit (it commits whatever
    # is waiting as soon as the previous commit ends; there is no delay to tune).
    batch_max_size: int = 1000

    # Upstream simulator and DLR/MO delivery.
    simulator_delay_ms: float = 200.0
    # Upstream connectors and routes (see config/upstreams.py); none = the simulator.
    upstreams: tuple = ()
    routes: tuple = ()
    upstream_url: str | None = None
    # Back-off of the outbox after a temporary upstream error, doubling from min to max.
    outbox_retry_min: float = 1.0
    outbox_retry_max: float = 300.0
    # The provider's vendor TLVs 0x1401 (outgoing_id on DLRs) and 0x1402 (incoming_id on
    # MOs): the default for new accounts (each can change it); off because smpplib
    # raises on TLV tags it does not know.
    vendor_tlvs: bool = False
    dlr_retry_interval: float = 30.0
    dlr_max_age: float = 7 * 86400.0
    # A submit without validity_period expires after default_validity (EXPIRED receipt);
    # a longer validity_period than max_validity is cut to max_validity.
    default_validity: float = 48 * 3600.0
    max_validity: float = 7 * 86400.0

    create_demo_account: bool = True
    # Part of every message id, so nodes sharing one store never mint the same id.
    node_id: int = 0
    # Logging: log_level for smppgw's own loggers; libraries (database drivers, the web
    # server, Alembic) log at log_level_libraries, WARNING unless asked, since their
    # DEBUG lines are many and may show statements and bodies. log_format "json" writes
    # one JSON object per line for a log shipper; "text" is for people.
    log_level: str = "INFO"
    log_level_libraries: str = "WARNING"
    log_format: str = "text"
    # Apply pending schema migrations at start. None (the default) means yes on SQLite
    # (one node owns its file) and no on PostgreSQL, where an operator runs
    # `smppgw db upgrade` once and a node refuses to start on an older schema.
    auto_migrate: bool | None = None

    def __post_init__(self) -> None:
        # Every bad field at once (ConfigErrors), so a file is fixed in one round.
        errors: list[ConfigError] = []
        for f in fields(self):
            given = getattr(self, f.name)
            value = _coerce(f.name, given)
            object.__setattr__(self, f.name, value)
            rule = RULES[f.name]
            if not rule.check(value):
                errors.append(ConfigError(f"must be {rule.expect}", setting=f.name, value=given))
        if not {e.setting for e in errors} & {"upstreams", "routes", "upstream_url"}:
            from config.upstreams import resolve

            # Connector and route mistakes surface at load time, not at the first message.
            try:
                resolve(self.upstreams, self.routes, self.upstream_url)
            except ConfigError as exc:
                errors.append(exc)
        raise_if_any(errors)
        self._check_consistency()

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or an SQLite file in ``state_dir`` when it is not set."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.state_dir / 'smppgw.db').as_posix()}"

    @property
    def effective_admin_socket(self) -> Path:
        """``admin_socket``, or ``state_dir/admin.sock`` when it is not set."""
        if self.admin_socket is not None:
            return self.admin_socket
        return self.state_dir / "admin.sock"

    @property
    def embedded_store(self) -> bool:
        """True on an SQLite store (the embedded default or a configured file)."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_auto_migrate(self) -> bool:
        """``auto_migrate``, or: on for SQLite, off for PostgreSQL when it is not set."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.embedded_store

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_port != -1

    @property
    def tls_enabled(self) -> bool:
        return self.tls_port is not None

    def _check_consistency(self) -> None:
        if self.tls_port is not None:
            missing = [n for n in ("tls_cert", "tls_key") if getattr(self, n) is None]
            if missing:
                raise ConfigError(
                    f"set to {self.tls_port}, but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set; "
                    "a TLS listener needs both tls_cert and tls_key",
                    setting="tls_port",
                )
        else:
            for name in ("tls_cert", "tls_key"):
                if getattr(self, name) is not None:
                    # Certificates without a port would silently leave TLS off.
                    raise ConfigError(
                        f"set to {str(getattr(self, name))!r}, but tls_port is not set; "
                        "set tls_port to enable the TLS listener",
                        setting=name,
                    )
        if self.node_ttl <= self.node_heartbeat_interval:
            raise ConfigError(
                f"must be longer than node_heartbeat_interval ({self.node_heartbeat_interval:g}"
                " s), or live nodes would be taken for gone between two heartbeats",
                setting="node_ttl", value=self.node_ttl,
            )
        if self.default_validity > self.max_validity:
            raise ConfigError(
                f"must not exceed max_validity ({self.max_validity:g} s)",
                setting="default_validity",
                value=self.default_validity,
            )
        if self.tls_port is not None and self.tls_port == self.smpp_port != 0:
            raise ConfigError(
                f"must differ from smpp_port ({self.smpp_port})",
                setting="tls_port",
                value=self.tls_port,
            )
        if _hosts_overlap(self.web_host, self.smpp_host) and self.web_port > 0:
            for name in ("smpp_port", "tls_port", "metrics_port"):
                if getattr(self, name) == self.web_port:
                    raise ConfigError(f"must differ from {name} on the same host",
                                      setting="web_port", value=self.web_port)
        if _hosts_overlap(self.metrics_host, self.smpp_host) and self.metrics_port > 0:
            for name in ("smpp_port", "tls_port"):
                if getattr(self, name) == self.metrics_port:
                    raise ConfigError(
                        f"must differ from {name} on the same host",
                        setting="metrics_port",
                        value=self.metrics_port,
                    )
        socket_bytes = len(os.fsencode(self.effective_admin_socket))
        if socket_bytes > _MAX_UNIX_SOCKET_PATH:
            name = "admin_socket" if self.admin_socket is not None else "state_dir"
            raise ConfigError(
                f"makes the admin socket path {socket_bytes} bytes long, over the "
                f"{_MAX_UNIX_SOCKET_PATH}-byte Unix socket limit; use a shorter path"
                + ("" if name == "admin_socket" else " or set admin_socket"),
                setting=name,
                value=getattr(self, name),
            )


# What each setting accepts; checked by Settings.__post_init__ and quoted in errors.
RULES: dict[str, Rule] = {
    "state_dir": _PATH,
    "database_url": _optional(_DATABASE_URL),
    "sqlite_synchronous": _one_of("OFF", "NORMAL", "FULL", "EXTRA"),
    "smpp_host": _HOST,
    "smpp_port": _PORT,
    "tls_port": _optional(_PORT),
    "tls_cert": _optional(_PATH),
    "tls_key": _optional(_PATH),
    "tls_min_version": _TLS_VERSION,
    "metrics_host": _HOST,
    "metrics_port": _int_between(-1, 65535, " (0 picks a free port, -1 disables)"),
    "web_host": Rule("a host name or address", lambda v: isinstance(v, str) and bool(v)),
    "web_port": _int_between(-1, 65535, " (0 picks a free port, -1 disables)"),
    "web_session_ttl": _positive("seconds"),
    "admin_socket": _optional(_PATH),
    "uniform_bind_failure": _BOOL,
    "max_connections": _int_between(1, 1_000_000),
    "max_connections_per_ip": _int_between(1, 1_000_000),
    "max_unsent_bytes": _int_between(65536, 1 << 30),
    "bind_fail_window": _positive("seconds"),
    "bind_fail_limit_pair": _int_between(1, 1_000_000),
    "bind_fail_limit_ip": _int_between(1, 1_000_000),
    "bind_fail_limit_account": _int_between(1, 1_000_000),
    "bind_cooldown": _positive("seconds"),
    "bind_checks_pending": _int_between(1, 100_000),
    "directory_reload_interval": _positive("seconds"),
    "node_heartbeat_interval": _positive("seconds"),
    "node_ttl": _positive("seconds"),
    "outbox_claim_lease": _positive("seconds"),
    "delivery_claim_lease": _positive("seconds"),
    "bind_timeout": _positive("seconds"),
    "enquire_link_interval": _positive("seconds"),
    "session_max_age": _positive("seconds"),
    "response_timeout": _positive("seconds"),
    "default_window": _int_at_least(1),
    "default_throughput": _positive("messages per second"),
    "max_pdu_size": _PDU_SIZE,
    "default_bind_limit": _int_between(1, 100),
    "default_gsm_packed": _BOOL,
    "default_max_segments": _int_between(1, 255),
    "default_keep_bodies": _BOOL,
    "default_dlr_retention_days": _int_between(1, 365),
    "default_stop_mode": _one_of("dlr", "refuse"),
    "default_addressing": _one_of("lenient", "strict"),
    "default_rate": _CREDITS,
    "max_allowed_ips": _int_between(1, 1000),
    "history_retention_days": _int_at_least(1),
    "retention_interval": _positive("seconds"),
    "smtp_host": _optional(_HOST),
    "smtp_port": _int_between(1, 65535),
    "smtp_from": Rule(
        "an e-mail address such as 'smppgw@example.net'",
        lambda v: isinstance(v, str) and "@" in v and not any(c.isspace() for c in v),
    ),
    "smtp_timeout": _positive("seconds"),
    "smtp_starttls": _BOOL,
    "smtp_user": _optional(Rule("a user name", lambda v: isinstance(v, str) and v != "")),
    "smtp_password": _optional(Rule("a password", lambda v: isinstance(v, str))),
    "batch_max_size": _int_at_least(1),
    "simulator_delay_ms": _non_negative("milliseconds"),
    "upstreams": Rule(
        "a list of [[upstreams]] tables (TOML file only)",
        lambda v: isinstance(v, tuple) and all(not isinstance(u, str) for u in v),
    ),
    "routes": Rule(
        "a list of [[routes]] tables (TOML file only)",
        lambda v: isinstance(v, tuple) and all(not isinstance(r, str) for r in v),
    ),
    "upstream_url": _optional(
        Rule("an smpp:// (or smpps://) URL naming the system_id, password, host and port",
             lambda v: isinstance(v, str) and v.startswith(("smpp://", "smpps://")))
    ),
    "outbox_retry_min": _positive("seconds"),
    "outbox_retry_max": _positive("seconds"),
    "vendor_tlvs": _BOOL,
    "dlr_retry_interval": _positive("seconds"),
    "dlr_max_age": _positive("seconds"),
    "default_validity": _positive("seconds"),
    "max_validity": _positive("seconds"),
    "create_demo_account": _BOOL,
    "node_id": _int_between(0, 1023),
    "log_level": _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "log_level_libraries": _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "log_format": _one_of("text", "json"),
    "auto_migrate": _optional(_BOOL),
}


# A setting without a rule would go unchecked; fail at import rather than in production.
assert set(RULES) == {f.name for f in fields(Settings)}, "RULES out of step with Settings"


def _hosts_overlap(a: str, b: str) -> bool:
    return a == b or a in _WILDCARD_HOSTS or b in _WILDCARD_HOSTS


# --- type information shared with the loader --------------------------------------------


@cache
def setting_types() -> dict[str, tuple[type, bool]]:
    """Map each setting to (base type, optional?), e.g. ``tls_port -> (int, True)``."""
    hints = typing.get_type_hints(Settings)
    result: dict[str, tuple[type, bool]] = {}
    for f in fields(Settings):
        hint = hints[f.name]
        args = typing.get_args(hint)
        if isinstance(hint, types.UnionType) and type(None) in args:
            (base,) = [a for a in args if a is not type(None)]
            result[f.name] = (base, True)
        else:
            result[f.name] = (hint, False)
    return result


def _coerce(name: str, value: Any) -> Any:
    # Only lossless, unsurprising conversions: the loader does the string parsing.
    base, optional = setting_types()[name]
    if optional and value == "":
        return None
    if base is Path and isinstance(value, str) and value:
        return Path(value)
    if base is float and _is_int(value):
        return float(value)
    if base is tuple and isinstance(value, list):
        return tuple(value)
    if name in _UPPERCASE_CHOICES and isinstance(value, str):
        return value.upper()
    return value

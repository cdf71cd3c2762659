"""Upstream connectors and routes, as the `upstreams` / `routes` TOML tables describe them,
and their validation: every key's type and range, unknown keys (with close matches), and
routes naming known connectors, with every mistake of a file reported in one `ConfigErrors`.

```toml
[[upstreams]]
name = "smsc-a"             # how routes and history name it
type = "smpp"               # or "simulator" (in-process, no network)
host = "10.0.0.7"
port = 2775
system_id = "acme"
password = "secret"
bind = "transceiver"        # transmitter | receiver | transceiver | transmitter+receiver
tls = false
long_messages = "udh"       # a long message goes as UDH parts, "sar" parts, or whole "payload"
window = 10                 # submit_sm outstanding at once
throughput = 100.0          # submit_sm per second
enquire_link_interval = 30.0
reconnect_min = 1.0         # reconnect back-off, doubling up to reconnect_max
reconnect_max = 60.0

[[routes]]
prefix = "33"               # destination prefix; "" matches everything
account = "smpp-k2v9x0q7ab" # optional: only this account's messages
connectors = ["smsc-a", "sim"]   # failover order
```

With neither table the gateway uses one in-process simulator named "simulator" for every
destination. `upstream_url` (e.g. SMPPGW_UPSTREAM_URL=smpp://user:pw@host:2775?window=20)
is the one-connector shortcut for environments without a file.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from config.errors import ConfigError, ConfigErrors, raise_if_any

# "transmitter+receiver" opens two connections to the upstream, a TX for submits and an
# RX for receipts and MOs, as SMSCs that offer no transceiver want.
BIND_MODES = ("transmitter", "receiver", "transceiver", "transmitter+receiver")
CONNECTOR_TYPES = ("smpp", "simulator")
LONG_MESSAGE_MODES = ("udh", "sar", "payload")
# "absent": the subscriber is unreachable (UNDELIV, GSM MAP error 27); when the message
# asked for set_dpf, the simulator later reports the subscriber back (alert_notification).
OUTCOMES = (
    "delivered", "undeliverable", "expired", "rejected", "absent", "throttled", "refused",
)
DEFAULT_SIMULATOR = "simulator"
MAX_WINDOW = 1000


# --- what each key accepts ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Accepts:
    """What one upstream or route key takes: ``expect`` completes "must be ...";
    ``convert`` turns an accepted TOML/JSON form into the field's type (int -> float,
    list -> tuple)."""

    expect: str
    check: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_between(lo: int, hi: int) -> _Accepts:
    return _Accepts(f"an integer between {lo} and {hi}", lambda v: _is_int(v) and lo <= v <= hi)


def _positive(unit: str) -> _Accepts:
    return _Accepts(f"a positive number of {unit}", lambda v: _is_number(v) and v > 0, float)


def _non_negative(unit: str) -> _Accepts:
    return _Accepts(f"a number of {unit}, 0 or more", lambda v: _is_number(v) and v >= 0, float)


def _one_of(options: tuple[str, ...]) -> _Accepts:
    listed = ", ".join(repr(o) for o in options)
    return _Accepts(f"one of {listed}", lambda v: isinstance(v, str) and v in options)


def _c_octet_text(what: str, most: int) -> _Accepts:
    # SMPP 3.4 carries these in C-Octet Strings of most+1 octets: longer text would only
    # fail later, when the connector encodes its bind.
    def check(v: object) -> bool:
        return (isinstance(v, str) and len(v) <= most and "\0" not in v
                and all(ord(c) < 256 for c in v))

    return _Accepts(f"text of at most {most} characters (the SMPP 3.4 {what} limit)", check)


def _is_name(v: object) -> bool:
    # No spaces or commas: routes may list connectors as one "a, b" string.
    return (isinstance(v, str) and 1 <= len(v) <= 64 and v.isprintable()
            and not any(c.isspace() or c == "," for c in v))


def _is_system_id(v: object) -> bool:
    return (isinstance(v, str) and 1 <= len(v) <= 15 and v.isascii() and v.isprintable()
            and " " not in v)


def _is_number_text(v: object) -> bool:
    return (isinstance(v, str) and v != "" and v.isascii() and v.isprintable()
            and " " not in v) or (_is_int(v) and v >= 0)


_BOOL = _Accepts("true or false", lambda v: isinstance(v, bool))
_NAME = _Accepts("text of 1 to 64 characters without spaces or commas", _is_name)
_HOST = _Accepts(
    "a host name or IP address without spaces",
    lambda v: isinstance(v, str) and v != "" and v.isprintable() and " " not in v,
)

UPSTREAM_KEYS: dict[str, _Accepts] = {
    "name": _NAME,
    "type": _one_of(CONNECTOR_TYPES),
    "host": _HOST,
    "port": _int_between(1, 65535),
    "system_id": _c_octet_text("system_id", 15),
    "password": _c_octet_text("password", 8),
    "system_type": _c_octet_text("system_type", 12),
    "bind": _one_of(BIND_MODES),
    "tls": _BOOL,
    "tls_verify": _BOOL,
    "window": _int_between(1, MAX_WINDOW),
    "throughput": _positive("submit_sm per second"),
    "enquire_link_interval": _positive("seconds"),
    "response_timeout": _positive("seconds"),
    "reconnect_min": _positive("seconds"),
    "reconnect_max": _positive("seconds"),
    "long_messages": _one_of(LONG_MESSAGE_MODES),
    "latency_ms": _non_negative("milliseconds"),
    "mix": _Accepts(
        "outcome=weight pairs separated by commas, e.g. 'delivered=0.9,undeliverable=0.1'",
        lambda v: isinstance(v, str),
    ),
    "mo_rate": _non_negative("MOs per second"),
    "mo_to": _Accepts(
        "a list of destination numbers as text, e.g. ['33612345678']",
        lambda v: isinstance(v, (list, tuple)) and all(_is_number_text(n) for n in v),
        lambda v: tuple(str(n) for n in v),
    ),
    "alert_after_ms": _non_negative("milliseconds"),
    "nodes": _Accepts(
        "a list of node_id numbers (0 to 1023) that run this upstream, [] for every node",
        lambda v: isinstance(v, (list, tuple))
        and all(_is_int(n) and 0 <= n <= 1023 for n in v),
        lambda v: tuple(sorted(set(v))),
    ),
}

ROUTE_KEYS: dict[str, _Accepts] = {
    "prefix": _Accepts(
        "a destination prefix of digits as text (quoted in TOML), or '' for every destination",
        lambda v: isinstance(v, str) and (v == "" or (v.isascii() and v.isdigit())),
    ),
    "account": _Accepts(
        "a system_id (1 to 15 printable characters without spaces), or '' for every account",
        lambda v: v is None or v == "" or _is_system_id(v),
        lambda v: v or None,
    ),
    "connectors": _Accepts(
        "a list of upstream names in failover order, e.g. ['smsc-a', 'sim']",
        lambda v: (isinstance(v, str) and all(_is_name(c) for c in _split_names(v)))
        or (isinstance(v, (list, tuple)) and all(_is_name(c) for c in v)),
        lambda v: tuple(_split_names(v)) if isinstance(v, str) else tuple(v),
    ),
}


def _split_names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


# --- the resolved forms -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream connector. Constructing one validates it (`ConfigErrors` listing every
    problem); ints are taken for float keys and lists for ``mo_to``."""

    name: str
    type: str = "smpp"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    bind: str = "transceiver"
    tls: bool = False
    tls_verify: bool = True
    window: int = 10
    throughput: float = 100.0
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    # How a message longer than one SMS that the client did not split goes upstream.
    long_messages: str = "udh"
    # simulator only
    latency_ms: float = 200.0
    mix: str = "delivered=1"
    mo_rate: float = 0.0
    mo_to: tuple[str, ...] = ()
    alert_after_ms: float = 1000.0
    # On several nodes: the node_ids that keep a link to this upstream (an SMSC that
    # allows one bind per account, or one reachable from some machines only); empty
    # means every node. A route falls over to its next connector on the others.
    nodes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        values, errors = _check_upstream(given, _where("upstream", given.get("name")))
        raise_if_any(errors)
        for name, value in values.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One routing rule. Constructing one validates it (`ConfigErrors`); a list is taken
    for ``connectors``; whether they name known upstreams is `resolve`'s to check."""

    connectors: tuple[str, ...]
    prefix: str = ""
    account: str | None = None

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        values, errors = _check_route(given, f"route for prefix {self.prefix!r}")
        raise_if_any(errors)
        for name, value in values.items():
            object.__setattr__(self, name, value)


_UPSTREAM_DEFAULTS = {f.name: f.default for f in fields(UpstreamConfig) if f.name != "name"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """Upstreams and routes resolved together: every route names known connectors."""

    upstreams: tuple[UpstreamConfig, ...]
    routes: tuple[RouteConfig, ...] = field(default=())


# --- checks -------------------------------------------------------------------------------


def _where(where: str, name: object) -> str:
    # "upstreams[2]" becomes "upstreams[2] 'smsc-a'"; a caller's "upstream 'smsc-a'" stays.
    if not _is_name(name) or repr(name) in where:
        return where
    return f"{where} {name!r}"


def _check_keys(
    values: Mapping[str, Any], rules: Mapping[str, _Accepts], where: str
) -> tuple[dict[str, Any], list[ConfigError]]:
    """Each key of ``values`` checked against its rule: the converted values that pass,
    and one error per key that does not."""
    good: dict[str, Any] = {}
    errors: list[ConfigError] = []
    for key, value in values.items():
        rule = rules[key]
        if rule.check(value):
            good[key] = rule.convert(value)
        else:
            errors.append(ConfigError(f"must be {rule.expect}", setting=f"{where}.{key}",
                                      value=value))
    return good, errors


def _check_upstream(
    values: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[ConfigError]]:
    good, errors = _check_keys(values, UPSTREAM_KEYS, where)
    if good.get("type", "smpp") == "smpp" and good.get("system_id") == "":
        errors.append(ConfigError('is required for an smpp upstream (type = "smpp")',
                                  setting=f"{where}.system_id"))
    low, high = good.get("reconnect_min"), good.get("reconnect_max")
    if low is not None and high is not None and high < low:
        errors.append(ConfigError(f"must be at least reconnect_min ({low:g})",
                                  setting=f"{where}.reconnect_max", value=high))
    if "mix" in good:
        try:
            parse_mix(good["mix"])
        except ConfigError as exc:
            errors.append(ConfigError(exc.problem, setting=f"{where}.mix"))
    return good, errors


def _check_route(values: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[ConfigError]]:
    good, errors = _check_keys(values, ROUTE_KEYS, where)
    connectors = good.get("connectors")
    if connectors is not None:
        if not connectors:
            errors.append(ConfigError("names no connectors; list at least one upstream",
                                      setting=f"{where}.connectors"))
        twice = sorted({c for c in connectors if connectors.count(c) > 1})
        if twice:
            errors.append(ConfigError(f"names {', '.join(map(repr, twice))} more than once",
                                      setting=f"{where}.connectors"))
    return good, errors


def _unknown_keys(
    raw: Mapping[Any, Any], known: Collection[str], where: str, kind: str
) -> list[ConfigError]:
    errors = []
    for key in sorted(set(raw) - set(known), key=str):
        matches = difflib.get_close_matches(str(key).lower(), list(known), n=3, cutoff=0.7)
        hint = ("; did you mean " + " or ".join(repr(m) for m in matches) + "?") if matches \
            else f"; known keys: {', '.join(known)}"
        # The value is never shown: a misspelt "pasword" holds a password.
        errors.append(ConfigError(f"unknown {kind} key {key!r}{hint}", setting=where))
    return errors


def _entry_problems(raw: object, where: str, table: str) -> list[ConfigError]:
    if isinstance(raw, Mapping):
        return []
    return [ConfigError(f"must be a table (a {table} entry of key = value lines)",
                        setting=where, value=raw)]


def parse_upstream(raw: Mapping[str, Any], where: str = "upstream") -> UpstreamConfig:
    """An `UpstreamConfig` from one ``[[upstreams]]`` table, or a JSON object of the same keys.

    Every key is checked for its type and range (``port`` 1-65535, ``window`` 1-1000,
    ``throughput`` and the timers positive, ``bind``/``type``/``long_messages`` one of
    their choices, ``system_id``/``password``/``system_type`` within their SMPP 3.4
    lengths, ``mix`` a valid outcome mix, ``system_id`` required for ``type = "smpp"``);
    unknown keys are refused with close matches suggested. Values as JSON gives them are
    accepted: ints for float keys, a list for ``mo_to``. Missing keys take their defaults;
    ``name`` is required.

    Raises `ConfigErrors` listing every problem, each message starting with ``where``
    (and the entry's name when it has a valid one), e.g.
    ``upstream 'smsc-a'.port: must be an integer between 1 and 65535, got 'x'``.
    No message shows a password.
    """
    if isinstance(raw, UpstreamConfig):
        return raw
    raise_if_any(_entry_problems(raw, where, "[[upstreams]]"))
    label = _where(where, raw.get("name"))
    errors = _unknown_keys(raw, UPSTREAM_KEYS, label, "upstream")
    if "name" not in raw:
        errors.append(ConfigError("every upstream needs a name (text of 1 to 64 characters)",
                                  setting=f"{label}.name"))
    given = {**_UPSTREAM_DEFAULTS, **{k: v for k, v in raw.items() if k in UPSTREAM_KEYS}}
    values, problems = _check_upstream(given, label)
    raise_if_any(errors + problems)
    return UpstreamConfig(**values)


def parse_route(
    raw: Mapping[str, Any], where: str = "route", *, upstreams: Collection[str] | None = None
) -> RouteConfig:
    """A `RouteConfig` from one ``[[routes]]`` table, or a JSON object of the same keys.

    ``connectors`` (required) is a list of upstream names in failover order (or one
    comma-separated string), none twice; ``prefix`` digits as text, "" (the default) for
    every destination; ``account`` a system_id, or ""/None/absent for every account.
    Unknown keys are refused with close matches suggested. When ``upstreams`` (the known
    connector names) is given, every connector must be one of them.

    Raises `ConfigErrors` listing every problem, each message starting with ``where``,
    e.g. ``route.prefix: must be a destination prefix of digits as text ..., got 33``.
    """
    if isinstance(raw, RouteConfig):
        route = raw
    else:
        raise_if_any(_entry_problems(raw, where, "[[routes]]"))
        errors = _unknown_keys(raw, ROUTE_KEYS, where, "route")
        if "connectors" not in raw:
            errors.append(ConfigError("is required: the upstream names in failover order",
                                      setting=f"{where}.connectors"))
        given = {"prefix": "", "account": None, **{k: v for k, v in raw.items() if k in ROUTE_KEYS}}
        values, problems = _check_route(given, where)
        raise_if_any(errors + problems)
        route = RouteConfig(**values)
    if upstreams is not None:
        raise_if_any(_unknown_connectors(route.connectors, list(upstreams), where))
    return route


def _unknown_connectors(
    connectors: tuple[str, ...], names: list[str], where: str
) -> list[ConfigError]:
    errors = []
    for connector in connectors:
        if connector in names:
            continue
        matches = difflib.get_close_matches(connector, names, n=1, cutoff=0.6)
        hint = f"; did you mean {matches[0]!r}?" if matches else ""
        errors.append(ConfigError(
            f"names unknown connectors [{connector!r}]{hint} (configured: {', '.join(names)})",
            setting=f"{where}.connectors"))
    return errors


def parse_mix(text: str) -> dict[str, float]:
    """'delivered=0.9,undeliverable=0.1' -> weights; refuses unknown outcomes."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in OUTCOMES:
            raise ConfigError(f"outcome mix {text!r}: {part!r} is not one of {OUTCOMES}=weight",
                              setting="upstreams")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"outcome mix {text!r}: weight {value!r} is not a number",
                              setting="upstreams") from None
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"outcome mix {text!r}: weight {value!r} must be 0 or more",
                              setting="upstreams")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ConfigError(f"outcome mix {text!r} has no positive weight", setting="upstreams")
    return weights


# --- the upstream_url shortcut ------------------------------------------------------------

_URL_TRUE = frozenset({"1", "true", "yes"})
_URL_FALSE = frozenset({"0", "false", "no"})
# Said without a URL in it: an example URL with a password would be redacted to "***".
_URL_FORM = ("must be an smpp:// URL (smpps:// for TLS) whose rest reads "
             "system_id:password@host:port")


def _from_query_text(key: str, text: str) -> Any:
    """A query parameter's text as the type of upstream key ``key`` (the value as given
    when it does not convert, for the check to refuse with its message)."""
    default = _UPSTREAM_DEFAULTS.get(key, "")
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            return True if lowered in _URL_TRUE else False if lowered in _URL_FALSE else text
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        return text
    if isinstance(default, tuple):
        return _split_names(text)
    return text


def upstream_from_url(url: str) -> UpstreamConfig:
    """smpp://system_id:password@host:port?window=20&bind=transmitter (smpps:// for TLS).

    Query parameters are upstream keys, converted from text by the key's type. Every
    mistake is a `ConfigError` (`ConfigErrors` when there are several) naming
    ``upstream_url``; none shows the password.
    """
    def refuse(problem: str) -> ConfigError:
        return ConfigError(problem, setting="upstream_url", value=url)

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # A port that is no number (or out of range), or a malformed IPv6 address.
        raise ConfigErrors([refuse(_URL_FORM + "; the port must be a number from 1 to 65535 "
                                   "and an IPv6 address in [brackets]")]) from None
    if parts.scheme not in ("smpp", "smpps") or not parts.hostname:
        raise ConfigErrors([refuse(_URL_FORM)])
    values: dict[str, Any] = {
        "name": "default",
        "host": parts.hostname,
        "port": 2775 if port is None else port,
        "system_id": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "tls": parts.scheme == "smpps",
    }
    errors: list[ConfigError] = []
    for key, text in parse_qsl(parts.query, keep_blank_values=True):
        if key not in UPSTREAM_KEYS:
            matches = difflib.get_close_matches(key, list(UPSTREAM_KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean {matches[0]!r}?" if matches else ""
            errors.append(ConfigError(f"unknown parameter {key!r}{hint}", setting="upstream_url",
                                      value=url))
            continue
        values[key] = _from_query_text(key, text)
    # Each bad value is named by its key ("upstream_url.window"): a password is described,
    # not echoed (config.errors).
    good, problems = _check_upstream(values, "upstream_url")
    raise_if_any(errors + problems)
    return UpstreamConfig(**good)


# --- resolving a configuration ------------------------------------------------------------


def resolve(
    upstreams: tuple[Any, ...],
    routes: tuple[Any, ...],
    upstream_url: str | None = None,
    simulator_latency_ms: float = 200.0,
) -> Delivery:
    """Check and resolve the configured connectors and routes.

    Raises `ConfigErrors` listing every mistake of every entry, each named by its place
    and name (``upstreams[2] 'smsc-a'.port: ...``, ``routes[0].connectors: ...``; indexes
    count from 0 in the order of the file).
    """
    errors: list[ConfigError] = []
    ups: list[UpstreamConfig] = []
    for index, raw in enumerate(upstreams):
        try:
            ups.append(parse_upstream(raw, f"upstreams[{index}]"))
        except ConfigError as exc:
            errors.append(exc)
    url_names: list[str] = []
    if upstream_url:
        try:
            ups.append(upstream_from_url(upstream_url))
            url_names.append(ups[-1].name)
        except ConfigError as exc:
            errors.append(exc)
    if not upstreams and not upstream_url:
        ups = [UpstreamConfig(name=DEFAULT_SIMULATOR, type="simulator",
                              latency_ms=simulator_latency_ms)]
    names = [u.name for u in ups]
    # Entries that failed their own checks still hold their names: a duplicate among them
    # is worth saying, and a route naming one is not wrong on that account.
    every_name = [*_names_given(upstreams), *url_names] if upstreams or upstream_url else names
    for name in sorted({n for n in every_name if every_name.count(n) > 1}):
        errors.append(ConfigError(f"upstream names must be unique; {name!r} is used "
                                  f"{every_name.count(name)} times", setting="upstreams"))
    known = list(dict.fromkeys(every_name))
    rts: list[RouteConfig] = []
    seen: dict[tuple[str, str | None], int] = {}
    for index, raw in enumerate(routes):
        where = f"routes[{index}]"
        try:
            route = parse_route(raw, where)
        except ConfigError as exc:
            errors.append(exc)
            # Its connectors are still checked, when they are a list of names at all.
            connectors = raw.get("connectors") if isinstance(raw, Mapping) else None
            if ROUTE_KEYS["connectors"].check(connectors):
                named = ROUTE_KEYS["connectors"].convert(connectors)
                errors.extend(_unknown_connectors(named, known, where))
            continue
        errors.extend(_unknown_connectors(route.connectors, known, where))
        key = (route.prefix, route.account)
        if key in seen:
            errors.append(ConfigError(
                f"has the same prefix {route.prefix!r} and account as routes[{seen[key]}], "
                "which always wins; merge their connectors", setting=where))
        seen.setdefault(key, index)
        rts.append(route)
    raise_if_any(errors)
    if not rts:
        # No routing table: everything goes to the connectors in the order given.
        rts = [RouteConfig(connectors=tuple(names))]
    return Delivery(tuple(ups), tuple(rts))


def _names_given(upstreams: tuple[Any, ...]) -> list[str]:
    """The valid names of the configured entries, whether or not the rest of each is."""
    given = (u.name if isinstance(u, UpstreamConfig) else
             u.get("name") if isinstance(u, Mapping) else None for u in upstreams)
    return [n for n in given if _is_name(n)]

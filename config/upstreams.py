"""Upstream connectors and routes, as the `upstreams` / `routes` TOML tables describe them.

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

from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from config.errors import ConfigError

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


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
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

    def __post_init__(self) -> None:
        where = f"upstreams[{self.name!r}]"
        if not self.name or not isinstance(self.name, str) or len(self.name) > 64:
            raise ConfigError("every upstream needs a name of 1 to 64 characters",
                              setting="upstreams")
        if self.type not in CONNECTOR_TYPES:
            raise ConfigError(f"{where}.type must be one of {CONNECTOR_TYPES}",
                              setting="upstreams", value=self.type)
        if self.bind not in BIND_MODES:
            raise ConfigError(f"{where}.bind must be one of {BIND_MODES}",
                              setting="upstreams", value=self.bind)
        if self.long_messages not in LONG_MESSAGE_MODES:
            raise ConfigError(f"{where}.long_messages must be one of {LONG_MESSAGE_MODES}",
                              setting="upstreams", value=self.long_messages)
        for name in ("window", "port"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be a positive integer",
                                  setting="upstreams", value=getattr(self, name))
        for name in ("throughput", "enquire_link_interval", "response_timeout",
                     "reconnect_min", "reconnect_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where}.{name} must be a positive number",
                                  setting="upstreams", value=value)
        if self.reconnect_max < self.reconnect_min:
            raise ConfigError(f"{where}.reconnect_max must be at least reconnect_min",
                              setting="upstreams")
        if self.type == "smpp" and not self.system_id:
            raise ConfigError(f"{where}.system_id is required for an smpp upstream",
                              setting="upstreams")
        parse_mix(self.mix)  # raises with the reason


@dataclass(frozen=True, slots=True)
class RouteConfig:
    connectors: tuple[str, ...]
    prefix: str = ""
    account: str | None = None

    def __post_init__(self) -> None:
        if not self.connectors:
            raise ConfigError(f"route for prefix {self.prefix!r} names no connectors",
                              setting="routes")
        if self.prefix and not self.prefix.isdigit():
            raise ConfigError(f"route prefix {self.prefix!r} must be digits",
                              setting="routes")


@dataclass(frozen=True, slots=True)
class Delivery:
    """Upstreams and routes resolved together: every route names known connectors."""

    upstreams: tuple[UpstreamConfig, ...]
    routes: tuple[RouteConfig, ...] = field(default=())


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
        if weight < 0:
            raise ConfigError(f"outcome mix {text!r}: negative weight", setting="upstreams")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ConfigError(f"outcome mix {text!r} has no positive weight", setting="upstreams")
    return weights


def _upstream(raw: Any) -> UpstreamConfig:
    if isinstance(raw, UpstreamConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError("each [[upstreams]] entry must be a table", setting="upstreams")
    known = {f.name for f in fields(UpstreamConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown upstream keys {unknown}; known: {sorted(known)}",
                          setting="upstreams")
    values = dict(raw)
    if "mo_to" in values:
        values["mo_to"] = tuple(str(n) for n in values["mo_to"])
    for name in ("throughput", "enquire_link_interval", "response_timeout", "reconnect_min",
                 "reconnect_max", "latency_ms", "mo_rate", "alert_after_ms"):
        if isinstance(values.get(name), int) and not isinstance(values.get(name), bool):
            values[name] = float(values[name])
    return UpstreamConfig(**values)


def _route(raw: Any) -> RouteConfig:
    if isinstance(raw, RouteConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError("each [[routes]] entry must be a table", setting="routes")
    unknown = sorted(set(raw) - {"prefix", "account", "connectors"})
    if unknown:
        raise ConfigError(f"unknown route keys {unknown}", setting="routes")
    connectors = raw.get("connectors", ())
    if isinstance(connectors, str):
        connectors = [c.strip() for c in connectors.split(",") if c.strip()]
    return RouteConfig(
        connectors=tuple(connectors), prefix=str(raw.get("prefix", "")),
        account=raw.get("account") or None,
    )


def upstream_from_url(url: str) -> UpstreamConfig:
    """smpp://system_id:password@host:port?window=20&bind=transmitter (smpps:// for TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smpp", "smpps") or not parts.hostname:
        raise ConfigError("must look like smpp://system_id:password@host:port",
                          setting="upstream_url", value=url)
    query = dict(parse_qsl(parts.query))
    values: dict[str, Any] = {
        "name": query.pop("name", "default"),
        "host": parts.hostname,
        "port": parts.port or 2775,
        "system_id": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "tls": parts.scheme == "smpps",
    }
    types = {f.name: f.type for f in fields(UpstreamConfig)}
    for key, text in query.items():
        if key not in types:
            raise ConfigError(f"unknown parameter {key!r}", setting="upstream_url", value=url)
        kind = types[key]
        if kind == "int":
            values[key] = int(text)
        elif kind == "float":
            values[key] = float(text)
        elif kind == "bool":
            values[key] = text.lower() in ("1", "true", "yes")
        else:
            values[key] = text
    return UpstreamConfig(**values)


def resolve(
    upstreams: tuple[Any, ...],
    routes: tuple[Any, ...],
    upstream_url: str | None = None,
    simulator_latency_ms: float = 200.0,
) -> Delivery:
    """Check and resolve the configured connectors and routes (ConfigError on a mistake)."""
    ups = [_upstream(u) for u in upstreams]
    if upstream_url:
        ups.append(upstream_from_url(upstream_url))
    if not ups:
        ups = [UpstreamConfig(name=DEFAULT_SIMULATOR, type="simulator",
                              latency_ms=simulator_latency_ms)]
    names = [u.name for u in ups]
    if len(set(names)) != len(names):
        raise ConfigError(f"upstream names must be unique, got {names}", setting="upstreams")
    rts = [_route(r) for r in routes]
    if not rts:
        # No routing table: everything goes to the connectors in the order given.
        rts = [RouteConfig(connectors=tuple(names))]
    for r in rts:
        missing = [c for c in r.connectors if c not in names]
        if missing:
            raise ConfigError(f"route for prefix {r.prefix!r} names unknown connectors "
                              f"{missing}; configured: {names}", setting="routes")
    return Delivery(tuple(ups), tuple(rts))

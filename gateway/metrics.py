"""Prometheus metrics of one gateway, and the small HTTP endpoint that serves them
(/metrics, and /healthz and /readyz for the service manager and the load balancer).

Each Gateway owns its own CollectorRegistry (no module globals, so tests can run
several gateways in one process). Label values come from closed sets: command names
from the codec table, status names from the status table, so cardinality stays bounded.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from gateway.version import PYTHON, VERSION
from pdu.codec import CommandId
from pdu.receipt import MessageState
from pdu.status import status_name

log = logging.getLogger(__name__)


def command_label(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return "unknown"


class CachedLabels:
    """A labelled metric whose children are looked up once per label set.

    prometheus_client's `labels()` validates and locks on every call; on the submit
    path that was a measurable share of the time, and the label sets are few.
    """

    def __init__(self, metric) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child

    def __getattr__(self, name: str):
        return getattr(self._metric, name)


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class FastCounter:
    """A counter for the hot path: `labels(...)` is one dict look-up and `inc()` one
    addition, no lock (the event loop is one thread); it becomes a Prometheus counter
    only when scraped. prometheus_client's own validates labels and locks every time."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self._children: dict[tuple[str, ...], _Count] = {}
        if not self.label_names:
            self._children[()] = _Count()

    def labels(self, *values: str) -> _Count:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.label_names):
                raise ValueError(f"{self.name} takes labels {self.label_names}, got {values}")
            child = self._children[values] = _Count()
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._children[()].value += amount

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        return [family]


class FastHistogram:
    """A histogram for the hot path: observe() is a bisect and two additions, no lock
    (the event loop is one thread); the buckets become a Prometheus histogram only when
    scraped. prometheus_client's own takes a lock per observation."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def collect(self) -> list[HistogramMetricFamily]:
        cumulative, running = [], 0
        for bound, n in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += n
            cumulative.append((bound, running))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative, self.sum)
        return [family]


class ScrapeTimeGauges:
    """Gauges whose values are read when scraped, from functions the composition gives
    (queue lengths, link states): nothing is counted on the hot path for them.

    What only the store knows (messages waiting for an upstream, receipts waiting for a
    bind) is read by `refreshers`, awaited before each scrape but at most once per
    REFRESH_INTERVAL however often Prometheus asks; their `read()` then returns the
    value the last refresh kept.
    """

    def __init__(self) -> None:
        self._sources: list[tuple[str, str, list[str], Callable[[], Iterable[tuple]]]] = []
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        self._refreshed_at: float | None = None

    def add_refresher(self, refresh: Callable[[], Awaitable[None]]) -> None:
        self._refreshers.append(refresh)

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._refreshed_at is not None and now - self._refreshed_at < REFRESH_INTERVAL:
            return
        self._refreshed_at = now
        for refresh in self._refreshers:
            try:
                await asyncio.wait_for(refresh(), REFRESH_TIMEOUT)
            except Exception:  # the scrape goes on with the values kept last time
                log.warning("a store gauge could not be refreshed", exc_info=True)

    def add(self, name: str, documentation: str, labels: list[str],
            read: Callable[[], Iterable[tuple]]) -> None:
        """`read()` yields (value,) or (label values..., value)."""
        self._sources.append((name, documentation, labels, read))

    def collect(self) -> list[GaugeMetricFamily]:
        families = []
        for name, documentation, labels, read in self._sources:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            try:
                rows = list(read())
            except Exception:  # a scrape must not fail because one source did
                log.exception("gauge %s could not be read", name)
                continue
            for *label_values, value in rows:
                family.add_metric([str(v) for v in label_values], value)
            families.append(family)
        return families


# Store-backed gauges: read at most this often, and given up on after this long.
REFRESH_INTERVAL = 1.0
REFRESH_TIMEOUT = 5.0

# Seconds, for the latency histograms: fine below 10 ms where the targets are.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
COMMIT_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


# How each MT message ended, as `smppgw_mt_final_total` says it: the state (SMPP
# message_state, lower case) and what decided it.
ENDED_BY = (
    "upstream_receipt",  # the upstream's delivery receipt
    "expired",           # its validity ended before an upstream took it
    "no_route",          # no route to its destination any more
    "upstream_refused",  # an upstream refused it for good
    "stop_listed",       # its recipient said STOP (accepted free, ended at once)
    "cancelled",         # cancel_sm
    "replaced",          # a submit_sm with replace_if_present_flag took its place
)
MT_REFUSED_REASONS = ("throttled", "invalid", "no_credit", "store_error")
# The commonest refusals of a bind (gateway.sessions.auth), shown at 0 from the start.
BIND_FAILURE_REASONS = ("bad_password", "unknown_system_id", "ip_not_allowed", "suspended",
                        "throttled", "bind_limit")
_STATE_LABELS = {int(s): s.name.lower() for s in MessageState}


class GatewayMetrics:
    """Every series of one gateway. A message is counted once per stage it passes
    (accepted, handed upstream, ended...), in a counter of that stage, so each one's
    rate means something on its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # What every Prometheus client library exports: process_* (memory, CPU, open
        # files) and python_info, python_gc_*.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Gauge("smppgw_build_info", "The running smppgw: its version and Python's; always 1",
              ["version", "python"], registry=r).labels(VERSION, PYTHON).set(1)
        self.sessions_bound = CachedLabels(Gauge(
            "smppgw_sessions_bound", "SMPP sessions currently bound", ["bind_type"], registry=r
        ))
        self.pdus = FastCounter(
            "smppgw_pdus_total",
            "PDUs handled, by direction, command and command_status",
            ["direction", "command", "status"],
        )
        self.credits_debited = FastCounter(
            "smppgw_credits_debited_total", "Credits debited for accepted messages"
        )
        # The MT path, one counter per stage.
        self.mt_accepted = FastCounter(
            "smppgw_mt_accepted_total",
            "MT messages accepted: stored (and debited) before their submit was answered"
            " ESME_ROK; one per destination of a submit_multi",
        )
        self.mt_refused = FastCounter(
            "smppgw_mt_refused_total",
            "MT messages refused at submit, by reason (throttled, invalid, no_credit,"
            " store_error); smppgw_pdus_total has the command_status each was answered",
            ["reason"],
        )
        self.mt_handed_upstream = FastCounter(
            "smppgw_mt_handed_upstream_total",
            "MT messages an upstream took (its submit_sm_resp said ESME_ROK)",
        )
        self.mt_upstream_retries = FastCounter(
            "smppgw_mt_upstream_retries_total",
            "Hand-overs to an upstream that failed for now; the message is tried again later",
        )
        self.mt_final = FastCounter(
            "smppgw_mt_final_total",
            "MT messages ended, each counted once: by final message_state and what decided"
            " it (upstream_receipt, expired, no_route, upstream_refused, stop_listed,"
            " cancelled, replaced)",
            ["state", "cause"],
        )
        # The MO path.
        self.mo_received = FastCounter(
            "smppgw_mo_received_total",
            "MO messages from upstreams stored for their account (acknowledged upstream)",
        )
        self.mo_refused = FastCounter(
            "smppgw_mo_refused_total",
            "MO messages from upstreams refused, by reason (no_owner: no account owns the"
            " number)", ["reason"],
        )
        self.bind_failures = Counter(
            "smppgw_bind_failures_total", "Refused binds by reason", ["reason"], registry=r
        )
        self.bind_password_checks = Counter(
            "smppgw_bind_password_checks_total",
            "Argon2 verifications started for binds (decoy checks included)",
            registry=r,
        )
        self.deliveries = FastCounter(
            "smppgw_deliveries_total",
            "deliver_sm to customers (DLR and MO) by kind and outcome",
            ["kind", "outcome"],
        )
        self.connections_refused = CachedLabels(Counter(
            "smppgw_connections_refused",
            "SMPP connections aborted as accepted, by the limit reached (max_connections,"
            " max_connections_per_ip)", ["reason"], registry=r,
        ))
        self.connections_dropped = CachedLabels(Counter(
            "smppgw_connections_dropped",
            "SMPP connections aborted by cause: max_unsent_bytes (the peer does not read),"
            " unread_at_close, bind_timeout, unbound_enquire_link", ["reason"], registry=r,
        ))
        self.low_balance_alerts = Counter(
            "smppgw_low_balance_alerts_total",
            "Accounts whose balance fell below their low-balance alert threshold",
            registry=r,
        )
        self.auto_topups = Counter(
            "smppgw_auto_topups_total",
            "Automatic top-ups by outcome (done, capped, failed)",
            ["outcome"],
            registry=r,
        )
        self.submit_latency = FastHistogram(
            "smppgw_submit_latency_seconds",
            "From a submit_sm read to its submit_sm_resp written (accepted ones)",
            LATENCY_BUCKETS,
        )
        self.dlr_latency = FastHistogram(
            "smppgw_dlr_latency_seconds",
            "From an upstream receipt read to the customer's deliver_sm_resp",
            LATENCY_BUCKETS,
        )
        self.commit_seconds = FastHistogram(
            "smppgw_store_commit_seconds", "Duration of one store writer commit",
            LATENCY_BUCKETS,
        )
        self.commit_messages = FastHistogram(
            "smppgw_store_commit_messages",
            "Message rows (accepted MTs, MOs) written per store writer commit; 0 for a"
            " commit of bookkeeping only (hand-overs, outcomes, acknowledgements)",
            COMMIT_SIZE_BUCKETS,
        )
        self.gauges = ScrapeTimeGauges()
        for collector in (self.pdus, self.credits_debited, self.mt_accepted, self.mt_refused,
                          self.mt_handed_upstream, self.mt_upstream_retries, self.mt_final,
                          self.mo_received, self.mo_refused, self.deliveries,
                          self.submit_latency, self.dlr_latency, self.commit_seconds,
                          self.commit_messages, self.gauges):
            r.register(collector)
        # Pre-create the commonest series so a scrape shows them from the start (a
        # rate() over a series that appears mid-way misses its first increase).
        for bind_type in ("transmitter", "receiver", "transceiver"):
            self.sessions_bound.labels(bind_type)
        for reason in ("max_connections", "max_connections_per_ip"):
            self.connections_refused.labels(reason)
        for reason in ("max_unsent_bytes", "unread_at_close", "bind_timeout",
                       "unbound_enquire_link"):
            self.connections_dropped.labels(reason)
        for reason in MT_REFUSED_REASONS:
            self.mt_refused.labels(reason)
        self.mo_refused.labels("no_owner")
        for reason in BIND_FAILURE_REASONS:
            self.bind_failures.labels(reason)
        for outcome in ("done", "capped", "failed"):
            self.auto_topups.labels(outcome)
        for state in ("delivered", "undeliverable", "expired", "rejected"):
            self.mt_final.labels(state, "upstream_receipt")
        self._pdu_children: dict[tuple[str, int, int], _Count] = {}
        self._final_children: dict[tuple[int, str], _Count] = {}

    def committed(self, seconds: float, messages: int) -> None:
        """The store writer finished a commit (its on_commit callback)."""
        self.commit_seconds.observe(seconds)
        self.commit_messages.observe(messages)

    def count_pdu(self, direction: str, command_id: int, status: int) -> None:
        key = (direction, command_id, status)
        child = self._pdu_children.get(key)
        if child is None:
            child = self.pdus.labels(direction, command_label(command_id), status_name(status))
            self._pdu_children[key] = child
        child.inc()

    def mt_ended(self, state: int, cause: str, count: int = 1) -> None:
        """`count` MT messages reached their final `state` (a MessageState), for `cause`
        (one of ENDED_BY): call it exactly where the outcome is handed to the store."""
        key = (state, cause)
        child = self._final_children.get(key)
        if child is None:
            child = self.mt_final.labels(_STATE_LABELS.get(state, "unknown"), cause)
            self._final_children[key] = child
        child.inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# What /readyz asks: (ready, what each check found), e.g. (False, {"store": "...",
# "listeners": "ok"}). Built by the composition, which knows what "ready" needs.
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]
PATHS = b"/metrics, /healthz, /readyz"


class MetricsServer:
    """A minimal HTTP/1.0 server, GET only: /metrics (Prometheus), /healthz (200 while
    the process serves) and /readyz (200 when `readiness` says the node can take
    traffic, else 503 naming what is not ready)."""

    def __init__(self, metrics: GatewayMetrics, host: str, port: int,
                 readiness: Readiness) -> None:
        self._metrics = metrics
        self._host, self._port = host, port
        self._readiness = readiness
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, _ = request.split(b"\r\n", 1)[0].split(b" ", 2)
            path = path.split(b"?")[0]
            if method != b"GET":
                self._reply(writer, b"405 Method Not Allowed", b"text/plain", b"GET only\n")
            elif path == b"/metrics":
                await self._metrics.gauges.refresh()
                self._reply(writer, b"200 OK", CONTENT_TYPE_LATEST.encode(), self._metrics.render())
            elif path == b"/healthz":
                self._reply(writer, b"200 OK", b"text/plain", b"ok\n")
            elif path == b"/readyz":
                await self._ready(writer)
            else:
                self._reply(writer, b"404 Not Found", b"text/plain", b"try " + PATHS + b"\n")
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _ready(self, writer: asyncio.StreamWriter) -> None:
        try:
            ready, checks = await self._readiness()
        except Exception as exc:  # a broken check is an unready node, not a dead endpoint
            log.exception("the readiness check failed")
            ready, checks = False, {"readiness": f"check failed: {exc!r}"}
        body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
        status = b"200 OK" if ready else b"503 Service Unavailable"
        self._reply(writer, status, b"application/json", body)

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: bytes, ctype: bytes, body: bytes) -> None:
        writer.write(
            b"HTTP/1.0 " + status + b"\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
            + body
        )

"""Prometheus metrics of one gateway, and the small HTTP endpoint that serves them.

Each Gateway owns its own CollectorRegistry (no module globals, so tests can run
several gateways in one process). Label values come from closed sets: command names
from the codec table, status names from the status table, so cardinality stays bounded.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from pdu.codec import CommandId
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


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_bound = CachedLabels(Gauge(
            "smppgw_sessions_bound", "SMPP sessions currently bound", ["bind_type"], registry=r
        ))
        self.pdus = Counter(
            "smppgw_pdus_total",
            "PDUs handled, by direction, command and command_status",
            ["direction", "command", "status"],
            registry=r,
        )
        self.credits_debited = Counter(
            "smppgw_credits_debited_total", "Credits debited for accepted messages", registry=r
        )
        self.messages = CachedLabels(Counter(
            "smppgw_messages_total", "Messages by direction and outcome", ["direction", "outcome"],
            registry=r,
        ))
        self.bind_failures = Counter(
            "smppgw_bind_failures_total", "Refused binds by reason", ["reason"], registry=r
        )
        self.deliveries = CachedLabels(Counter(
            "smppgw_deliveries_total",
            "deliver_sm to customers (DLR and MO) by kind and outcome",
            ["kind", "outcome"],
            registry=r,
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
        self.batch_size = Gauge(
            "smppgw_last_commit_batch_messages", "Messages in the last group commit", registry=r
        )
        # Pre-create the commonest series so a scrape shows them from the start.
        for bind_type in ("transmitter", "receiver", "transceiver"):
            self.sessions_bound.labels(bind_type)
        self._pdu_children: dict[tuple[str, int, int], Counter] = {}

    def count_pdu(self, direction: str, command_id: int, status: int) -> None:
        key = (direction, command_id, status)
        child = self._pdu_children.get(key)
        if child is None:
            child = self.pdus.labels(direction, command_label(command_id), status_name(status))
            self._pdu_children[key] = child
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """A minimal HTTP/1.0 server for GET /metrics (the only thing it answers)."""

    def __init__(self, metrics: GatewayMetrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host, self._port = host, port
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
            if method != b"GET":
                self._reply(writer, b"405 Method Not Allowed", b"text/plain", b"GET only\n")
            elif path.split(b"?")[0] != b"/metrics":
                self._reply(writer, b"404 Not Found", b"text/plain", b"try /metrics\n")
            else:
                self._reply(writer, b"200 OK", CONTENT_TYPE_LATEST.encode(), self._metrics.render())
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: bytes, ctype: bytes, body: bytes) -> None:
        writer.write(
            b"HTTP/1.0 " + status + b"\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
            + body
        )

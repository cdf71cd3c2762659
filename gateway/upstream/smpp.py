"""Our SMPP client towards an upstream SMSC, built on the `pdu/` codec.

One `SmppConnector` keeps one bind (TX, RX or TRX, TLS optional) alive: it reconnects
with exponential back-off, sends enquire_link on an idle link, keeps at most `window`
submit_sm outstanding and at most `throughput` per second, and fails every unanswered
request as a temporary error when the link drops or a response times out, so the
outbox retries it. Like the server session, output is buffered and written once per
turn of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from datetime import UTC

from config.upstreams import UpstreamConfig
from gateway.upstream.backoff import backoff_delay
from gateway.upstream.base import (
    CONNECTION_LOST,
    NOT_SENT,
    TIMEOUT,
    Connector,
    DeliverCallback,
    SubmitResult,
)
from gateway.wire import BatchedOutput
from pdu.codec import (
    RESPONSE_BIT,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Pdu,
    PduError,
    SubmitSm,
    Unbind,
    decode,
    encode,
    response_for,
)
from pdu.framing import Framer, FramingError
from pdu.status import CommandStatus
from pdu.tlv import Tag
from store.batcher import NewMessage

log = logging.getLogger(__name__)

_BIND_CLASSES = {
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
    "transceiver": BindTransceiver,
}
_MAX_SEQUENCE = 0x7FFFFFFF
MAX_SHORT_MESSAGE = 254


def submit_sm_for(msg: NewMessage) -> SubmitSm:
    """The submit_sm we send upstream for one of our messages."""
    body = msg.body or b""
    tlvs: list[tuple[int, bytes]] = []
    short = body
    if len(body) > MAX_SHORT_MESSAGE:
        short, tlvs = b"", [(Tag.MESSAGE_PAYLOAD, body)]
    validity = ""
    if msg.expires_at is not None:
        # Absolute UTC time ("00+" = offset 0): the upstream should give up when we do.
        validity = msg.expires_at.astimezone(UTC).strftime("%y%m%d%H%M%S") + "000+"
    return SubmitSm(
        source_addr_ton=msg.source_ton,
        source_addr_npi=msg.source_npi,
        source_addr=msg.source_addr,
        dest_addr_ton=msg.dest_ton,
        dest_addr_npi=msg.dest_npi,
        destination_addr=msg.dest_addr,
        esm_class=msg.esm_class,
        validity_period=validity,
        # Always ask: the receipt updates our history even if the customer wants none.
        registered_delivery=1,
        data_coding=msg.data_coding,
        short_message=short,
        tlvs=tlvs,
    )


class _Link(BatchedOutput, asyncio.Protocol):
    """One TCP/TLS connection to the upstream; lives from connect to close."""

    def __init__(self, owner: SmppConnector) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.framer = Framer()
        self.init_output(asyncio.get_running_loop())
        self.seq = 0
        self.bound = False
        self.bind_result: asyncio.Future[int] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        # seq -> (future, sent at, message id) for submit_sm awaiting submit_sm_resp
        self.pending: dict[int, tuple[asyncio.Future[SubmitResult], float, int]] = {}
        self.enquire_sent: float | None = None
        self.last_rx = time.monotonic()

    def next_seq(self) -> int:
        self.seq = self.seq + 1 if self.seq < _MAX_SEQUENCE else 1
        return self.seq

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        cfg = self.owner.config
        cls = _BIND_CLASSES[cfg.bind]
        self.send(cls(sequence_number=self.next_seq(), system_id=cfg.system_id,
                      password=cfg.password, system_type=cfg.system_type))

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.framer.receive_data(data)
        try:
            frames = self.framer.frames()
        except FramingError as exc:
            log.warning("%s: framing error from upstream, reconnecting: %s", self.owner.name, exc)
            self.close()
            return
        for frame in frames:
            try:
                pdu = decode(frame)
            except PduError as exc:
                self._answer_bad(exc)
                continue
            self._handle(pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bound = False
        if not self.bind_result.done():
            self.bind_result.set_result(-1)
        for future, _, _ in self.pending.values():
            if not future.done():
                future.set_result(SubmitResult(CONNECTION_LOST))
        self.pending.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    # output

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()

    # input

    def _answer_bad(self, exc: PduError) -> None:
        if exc.command_id & RESPONSE_BIT:
            return
        self.send(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))

    def _handle(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid in (CommandId.BIND_TRANSMITTER_RESP, CommandId.BIND_RECEIVER_RESP,
                   CommandId.BIND_TRANSCEIVER_RESP):
            if not self.bind_result.done():
                self.bind_result.set_result(pdu.command_status)
            self.bound = pdu.command_status == 0
        elif cid == CommandId.SUBMIT_SM_RESP or (
            cid == CommandId.GENERIC_NACK and pdu.sequence_number in self.pending
        ):
            entry = self.pending.pop(pdu.sequence_number, None)
            if entry is None:
                return
            future, _, message_id = entry
            upstream_id = getattr(pdu, "message_id", "") or ""
            if pdu.command_status == 0 and not upstream_id:
                # An SMSC that accepts without an id cannot send us a matchable receipt.
                log.warning("%s: submit_sm_resp without message_id", self.owner.name)
            if pdu.command_status == 0 and upstream_id:
                self.owner.recent_ids[upstream_id] = message_id
            if not future.done():
                future.set_result(SubmitResult(pdu.command_status, upstream_id))
            self.owner.pump()
        elif cid == CommandId.ENQUIRE_LINK_RESP:
            self.enquire_sent = None
        elif cid == CommandId.ENQUIRE_LINK:
            self.send(response_for(pdu))
        elif cid in (CommandId.DELIVER_SM, CommandId.DATA_SM):
            if not isinstance(pdu, DeliverSm):
                self.send(response_for(pdu, CommandStatus.ESME_RINVCMDID))
                return
            seq = pdu.sequence_number

            def ack(status: int, seq: int = seq) -> None:
                self.send(response_for(DeliverSm(sequence_number=seq), status))

            self.owner.on_deliver(self.owner.name, pdu, ack)
        elif cid == CommandId.UNBIND:
            self.send(response_for(pdu))
            self.bound = False
            self.close()
        elif cid == CommandId.UNBIND_RESP:
            self.close()
        elif not cid & RESPONSE_BIT:
            self.send(GenericNack(sequence_number=pdu.sequence_number,
                                  command_status=CommandStatus.ESME_RINVCMDID))


class SmppConnector(Connector):
    def __init__(self, config: UpstreamConfig, on_deliver: DeliverCallback) -> None:
        super().__init__()
        self.config = config
        self.name = config.name
        self.on_deliver = on_deliver
        self._queue: deque[tuple[NewMessage, asyncio.Future[SubmitResult]]] = deque()
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._stopping = False
        self._tokens = 0.0
        self._token_time = time.monotonic()
        self._pump_handle: asyncio.TimerHandle | None = None
        self.connects = 0

    # state seen by the outbox

    @property
    def is_up(self) -> bool:
        link = self._link
        return link is not None and link.bound and self.config.bind != "receiver"

    @property
    def in_flight(self) -> int:
        return len(self._link.pending) if self._link is not None else 0

    @property
    def capacity(self) -> int:
        if not self.is_up:
            return 0
        # A second of traffic (at least a window) keeps the pipe full without letting
        # messages sit in our queue long enough to outlive their claim.
        budget = max(self.config.window, int(self.config.throughput))
        return max(0, budget - len(self._queue) - self.in_flight)

    # life cycle

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"upstream-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        link = self._link
        if link is not None and link.bound:
            link.send(Unbind(sequence_number=link.next_seq()))
            try:
                await asyncio.wait_for(asyncio.shield(link.closed), 2.0)
            except TimeoutError:
                pass
        if link is not None:
            link.close()
        for task in (self._task, self._timer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._fail_queue()

    def _fail_queue(self) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_result(SubmitResult(NOT_SENT))

    async def _run(self) -> None:
        attempt = 0
        cfg = self.config
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                context = _tls_context(cfg) if cfg.tls else None
                _, link = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Link(self), cfg.host, cfg.port, ssl=context,
                        server_hostname=cfg.host if context else None,
                    ),
                    cfg.response_timeout,
                )
                status = await asyncio.wait_for(link.bind_result, cfg.response_timeout)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max)
                log.info("%s: cannot connect to %s:%s (%s); retrying in %.1fs",
                         self.name, cfg.host, cfg.port, exc or type(exc).__name__, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if status != 0:
                link.close()
                delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max)
                log.warning("%s: bind refused with status 0x%08X; retrying in %.1fs",
                            self.name, status & 0xFFFFFFFF, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.connects += 1
            self._link = link
            log.info("%s: bound as %s to %s:%s", self.name, cfg.bind, cfg.host, cfg.port)
            self._timer = loop.create_task(self._watch(link))
            self.pump()
            self.on_up()
            await link.closed
            self._timer.cancel()
            self._link = None
            if not self._stopping:
                log.warning("%s: connection to upstream lost; reconnecting", self.name)
                # Queued but not written: the outbox takes them back without counting.
                self._fail_queue()
                await asyncio.sleep(backoff_delay(0, cfg.reconnect_min, cfg.reconnect_max))

    async def _watch(self, link: _Link) -> None:
        """enquire_link on an idle link, and response time-outs."""
        cfg = self.config
        tick = min(1.0, cfg.enquire_link_interval / 2, cfg.response_timeout / 2)
        while not link.closed.done():
            await asyncio.sleep(tick)
            now = time.monotonic()
            expired = [s for s, (_, at, _) in link.pending.items()
                       if now - at > cfg.response_timeout]
            for seq in expired:
                future, _, _ = link.pending.pop(seq)
                if not future.done():
                    future.set_result(SubmitResult(TIMEOUT))
            if expired:
                self.pump()
            if link.enquire_sent is not None:
                if now - link.enquire_sent > cfg.response_timeout:
                    log.warning("%s: no enquire_link_resp in %.0fs, reconnecting",
                                self.name, cfg.response_timeout)
                    link.close()
                    return
            elif now - link.last_rx > cfg.enquire_link_interval:
                link.enquire_sent = now
                link.send(EnquireLink(sequence_number=link.next_seq()))

    # sending

    def send(self, msg: NewMessage) -> asyncio.Future[SubmitResult]:
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        if not self.is_up:
            future.set_result(SubmitResult(NOT_SENT))
            return future
        self._queue.append((msg, future))
        self.pump()
        return future

    def pump(self) -> None:
        link = self._link
        if link is None or not link.bound:
            return
        cfg = self.config
        now = time.monotonic()
        burst = max(1.0, min(float(cfg.window), cfg.throughput))
        self._tokens = min(burst, self._tokens + (now - self._token_time) * cfg.throughput)
        self._token_time = now
        while self._queue and len(link.pending) < cfg.window and self._tokens >= 1.0:
            msg, future = self._queue.popleft()
            if future.done():
                continue
            seq = link.next_seq()
            try:
                pdu = submit_sm_for(msg)
                pdu.sequence_number = seq
                data = encode(pdu)
            except ValueError as exc:
                log.error("%s: message %s cannot be encoded: %s", self.name, msg.id, exc)
                future.set_result(SubmitResult(CommandStatus.ESME_RINVMSGLEN))
                continue
            link.pending[seq] = (future, now, msg.id)
            link.write(data)
            self._tokens -= 1.0
        if self._queue and self._tokens < 1.0 and self._pump_handle is None:
            wait = (1.0 - self._tokens) / cfg.throughput
            self._pump_handle = asyncio.get_running_loop().call_later(wait, self._pump_later)

    def _pump_later(self) -> None:
        self._pump_handle = None
        self.pump()


def _tls_context(cfg: UpstreamConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not cfg.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

"""Our SMPP client towards an upstream SMSC, built on the `pdu/` codec.

One `SmppConnector` keeps its binds alive: one transceiver (or transmitter, or
receiver), or a transmitter + receiver pair for SMSCs without transceivers; receipts
are matched by upstream id whichever connection of the upstream brings them. It
reconnects with exponential back-off, sends enquire_link on an idle link, keeps at
most `window` submit_sm outstanding and at most `throughput` per second, and fails
every unanswered request as a temporary error when the link drops or a response
times out, so the outbox retries it. A long message the client did not split is sent
as the upstream wants it (`long_messages`): UDH parts, sar_* parts, or whole in
message_payload; the client's own parameters go with it. Output is buffered and
written once per turn of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from config.upstreams import UpstreamConfig
from gateway.link_protocol import LinkProtocol
from gateway.upstream.backoff import backoff_delay
from gateway.upstream.base import (
    CONNECTION_LOST,
    NOT_SENT,
    TEMPORARY_STATUSES,
    TIMEOUT,
    Connector,
    DeliverCallback,
    HandOvers,
    PartRef,
    SubmitResult,
)
from gateway.upstream.stats import CONNECTING, DOWN, FAILED, STOPPED, UP
from pdu.codec import (
    CommandId,
    DeliverSm,
    Pdu,
    SubmitSm,
    addresses,
)
from pdu.fields import ESM_CLASS_UDHI
from pdu.link import (
    BindRefused,
    Bound,
    Closed,
    Link,
    LinkConfig,
    Request,
    Response,
    ResponseTimeout,
    Role,
    State,
)
from pdu.smpptime import format_smpp_time
from pdu.status import CommandStatus, status_name
from pdu.text import split_payload
from pdu.tlv import Tag, decode_tlvs, int_tlv
from store.writer import NewMessage

log = logging.getLogger(__name__)

_BIND_STATES = {
    "transmitter": State.BOUND_TX,
    "receiver": State.BOUND_RX,
    "transceiver": State.BOUND_TRX,
}
_TRANSMITS = frozenset({"transmitter", "transceiver"})
MAX_SHORT_MESSAGE = 254
_SAR_TAGS = frozenset({Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM})


def _ignore(status: int) -> None:
    pass


def concat_ref(message_id: int) -> int:
    """The concatenation reference (1-255) of a message the gateway splits: a function
    of its id, so a retry that sends only the missing parts uses the same one, and
    spread over the id's time and sequence bits so consecutive messages differ."""
    return (message_id ^ (message_id >> 12) ^ (message_id >> 22)) % 255 + 1


def submits_for(
    msg: NewMessage, *, long_messages: str = "udh", gsm_packed: bool = False
) -> list[SubmitSm]:
    """The submit_sm PDUs that carry one of our messages upstream, in part order.

    Always asks for a receipt (it updates our history even if the customer wants none),
    carries the validity as an absolute UTC time, and the client's service_type,
    protocol_id, priority_flag and optional parameters. A message the client split
    (UDH or sar_*) is one PDU as it came; one longer than an SMS is cut into UDH or
    sar_* parts, or sent whole in message_payload, by `long_messages`.
    """
    body = msg.body or b""
    tlvs = decode_tlvs(msg.tlvs, 0, len(msg.tlvs)) if msg.tlvs else []
    common = {
        "service_type": msg.service_type or "",
        "source_addr_ton": msg.source_ton,
        "source_addr_npi": msg.source_npi,
        "source_addr": msg.source_addr,
        "dest_addr_ton": msg.dest_ton,
        "dest_addr_npi": msg.dest_npi,
        "destination_addr": msg.dest_addr,
        "protocol_id": msg.protocol_id or 0,
        "priority_flag": msg.priority_flag or 0,
        # The upstream should give up when we do.
        "validity_period": format_smpp_time(msg.expires_at) if msg.expires_at else "",
        "registered_delivery": 1,
        "data_coding": msg.data_coding,
    }
    client_split = bool(msg.esm_class & ESM_CLASS_UDHI) or any(t in _SAR_TAGS for t, _ in tlvs)
    parts = [body]
    ref = concat_ref(msg.id)
    if not client_split and (msg.segments or 1) > 1 and long_messages != "payload":
        # 8-bit references and parts sized for them: exactly the segments priced.
        parts = split_payload(
            body, msg.data_coding, gsm_packed=gsm_packed,
            ref=ref if long_messages == "udh" else None,
        )
    if len(parts) == 1:
        if len(body) > MAX_SHORT_MESSAGE or (
            long_messages == "payload" and (msg.segments or 1) > 1
        ):
            return [SubmitSm(**common, esm_class=msg.esm_class, short_message=b"",
                             tlvs=[*tlvs, (Tag.MESSAGE_PAYLOAD, body)])]
        return [SubmitSm(**common, esm_class=msg.esm_class, short_message=body, tlvs=tlvs)]
    total = len(parts)
    if long_messages == "udh":
        return [SubmitSm(**common, esm_class=msg.esm_class | ESM_CLASS_UDHI, short_message=part,
                         tlvs=list(tlvs)) for part in parts]
    return [
        SubmitSm(**common, esm_class=msg.esm_class, short_message=part, tlvs=[
            *tlvs, int_tlv(Tag.SAR_MSG_REF_NUM, ref), int_tlv(Tag.SAR_TOTAL_SEGMENTS, total),
            int_tlv(Tag.SAR_SEGMENT_SEQNUM, seq),
        ])
        for seq, part in enumerate(parts, start=1)
    ]


@dataclass(slots=True)
class _Sending:
    """One message on its way: its parts' answers, resolved when all are in."""

    msg: NewMessage
    future: asyncio.Future[SubmitResult]
    ids: list[str]
    waiting: int
    failures: list[int] = field(default_factory=list)

    def answer(self, owner: SmppConnector, index: int, status: int, upstream_id: str) -> None:
        if status == 0 and upstream_id:
            self.ids[index] = upstream_id
            parts = len(self.ids)
            owner.handovers.record(owner.name, upstream_id, (
                self.msg if parts == 1 else PartRef(self.msg.id, index + 1, parts)
            ))
        elif status != 0:
            self.failures.append(status)
        self.waiting -= 1
        if self.waiting > 0 or self.future.done():
            return
        multi = len(self.ids) > 1
        if not self.failures:
            result = SubmitResult(0, self.ids[0], tuple(self.ids) if multi else ())
        else:
            # A refusal of one part is the message's; a temporary failure is retried
            # for the parts that did not get through.
            permanent = [s for s in self.failures if s >= 0 and s not in TEMPORARY_STATUSES]
            status = permanent[0] if permanent else self.failures[0]
            result = SubmitResult(status, "", tuple(self.ids) if multi else ())
        self.future.set_result(result)


class _Link(LinkProtocol):
    """One TCP/TLS connection to the upstream, as an ESME; lives from connect to close."""

    def __init__(self, owner: SmppConnector, bind: str) -> None:
        cfg = owner.config
        super().__init__(Link(LinkConfig(
            role=Role.ESME, window_out=cfg.window, response_timeout=cfg.response_timeout,
            enquire_link_interval=cfg.enquire_link_interval,
        ), asyncio.get_running_loop().time()))
        self.owner = owner
        self.bind = bind
        self.bind_result: asyncio.Future[int] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        # Why the link ended, for the operator's log line and `upstream list`.
        self.close_reason = ""

    @property
    def bound(self) -> bool:
        return self.link.bound and not self.link.closing

    def on_open(self) -> None:
        cfg = self.owner.config
        self.link.bind(_BIND_STATES[self.bind], self.loop.time(), system_id=cfg.system_id,
                       password=cfg.password, system_type=cfg.system_type)

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        if exc is not None:
            self.close_reason = str(exc) or type(exc).__name__
        elif not self.close_reason:
            self.close_reason = "the upstream closed the connection"
        if not self.bind_result.done():
            self.bind_result.set_result(-1)
        for _, context in awaiting:
            sending, index, _ = context
            sending.answer(self.owner, index, CONNECTION_LOST, "")
        if not self.closed.done():
            self.closed.set_result(None)

    def handle_event(self, event: Any) -> None:
        kind = type(event)
        owner = self.owner
        if kind is Response:
            sending, index, written = event.context
            owner.stats.round_trip(self.loop.time() - written)
            upstream_id = ""
            if event.command_id == CommandId.SUBMIT_SM_RESP and event.command_status == 0:
                upstream_id = event.pdu().message_id
                if not upstream_id:
                    # An SMSC that accepts without an id cannot send a matchable receipt.
                    log.warning("%s: submit_sm_resp without message_id", owner.name)
            sending.answer(owner, index, event.command_status, upstream_id)
            owner.pump()
        elif kind is Request:
            self._request(event.pdu)
        elif kind is ResponseTimeout:
            sending, index, _ = event.context
            sending.answer(owner, index, TIMEOUT, "")
            owner.pump()
        elif kind is Bound:
            if not self.bind_result.done():
                self.bind_result.set_result(0)
        elif kind is BindRefused:
            if not self.bind_result.done():
                self.bind_result.set_result(event.status)
            self.link.close("bind refused")
        elif kind is Closed:
            if not self.bind_result.done():
                self.bind_result.set_result(-1)
            self.close_reason = self.close_reason or str(event.reason)
            log.debug("%s: %s link closing: %s", owner.name, self.bind, event.reason)

    def _request(self, pdu: Pdu) -> None:
        owner = self.owner
        cid = pdu.command_id
        if cid == CommandId.DELIVER_SM:
            owner.on_deliver(owner.name, pdu, partial(self._ack, pdu))
        elif cid == CommandId.DATA_SM:
            # A receipt or MO sent as data_sm is taken as the deliver_sm it stands for
            # (its text is in message_payload) and answered with data_sm_resp.
            as_deliver = DeliverSm(
                sequence_number=pdu.sequence_number, service_type=pdu.service_type,
                **addresses(pdu), esm_class=pdu.esm_class,
                registered_delivery=pdu.registered_delivery, data_coding=pdu.data_coding,
                tlvs=pdu.tlvs,
            )
            owner.on_deliver(owner.name, as_deliver, partial(self._ack, pdu))
        elif cid == CommandId.ALERT_NOTIFICATION:
            # No response exists for alert_notification (SMPP 3.4 4.12).
            owner.on_deliver(owner.name, pdu, _ignore)

    def _ack(self, request: Pdu, status: int) -> None:
        if not self.link.closing:
            self.respond(request, status)


class SmppConnector(Connector):
    def __init__(
        self, config: UpstreamConfig, on_deliver: DeliverCallback, handovers: HandOvers
    ) -> None:
        super().__init__(handovers)
        self.config = config
        self.name = config.name
        self.on_deliver = on_deliver
        self._binds = tuple(config.bind.split("+"))
        # (message on its way, part index, PDU) not yet written
        self._queue: deque[tuple[_Sending, int, SubmitSm]] = deque()
        self._links: dict[str, _Link] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Stopped by an operator: no new message is taken while those in flight finish.
        self._draining = False
        self._tokens = 0.0
        self._token_time = time.monotonic()
        self._pump_handle: asyncio.TimerHandle | None = None
        self.connects = 0

    # state seen by the outbox

    @property
    def _tx(self) -> _Link | None:
        for bind, link in self._links.items():
            if bind in _TRANSMITS and link.bound:
                return link
        return None

    @property
    def is_up(self) -> bool:
        return self._tx is not None and not self._draining

    def link_states(self) -> list[tuple[str, bool]]:
        return [(bind, bind in self._links and self._links[bind].bound) for bind in self._binds]

    @property
    def in_flight(self) -> int:
        link = self._tx
        return link.link.awaiting if link is not None else 0

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
        self._stopping = self._draining = False
        self.stats.set_state(CONNECTING)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._guarded(bind), name=f"upstream-{self.name}-{bind}")
            for bind in self._binds
        ]

    async def stop(self, drain: float | None = None) -> None:
        """Unbind and stop. With `drain` (seconds), first take no new message and wait
        up to that long for the answers of those written (the rest fail as temporary
        errors, which the outbox retries on another connector or later)."""
        self._draining = True
        self._fail_queue()
        if drain:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain
            while self.in_flight and loop.time() < deadline:
                await asyncio.sleep(0.05)
        self._stopping = True
        self.stats.set_state(STOPPED)
        for link in list(self._links.values()):
            link.unbind("the gateway is stopping")
        for link in list(self._links.values()):
            try:
                await asyncio.wait_for(asyncio.shield(link.closed), 2.0)
            except TimeoutError:
                link.close("unbind unanswered at stop")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_queue()

    def _link_down(self, bind: str, attempt: int, delay: float, reason: str) -> None:
        """A connect or bind that failed: the state says why; the log says it loudly on
        the first failure and then every tenth, not at every back-off step."""
        if attempt > 0:
            self.stats.reconnects += 1
        self.stats.set_state(DOWN, reason)
        level = logging.ERROR if attempt % 10 == 0 else logging.DEBUG
        log.log(level, "upstream %s: %s link: %s; retrying in %.1fs (attempt %d)",
                self.name, bind, reason, delay, attempt + 1)

    def _fail_queue(self) -> None:
        while self._queue:
            sending, index, _ = self._queue.popleft()
            sending.answer(self, index, NOT_SENT, "")

    async def _guarded(self, bind: str) -> None:
        """`_run`, with any way it ends other than a stop said out loud and shown."""
        try:
            await self._run(bind)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.set_state(FAILED, f"{type(exc).__name__}: {exc}")
            log.exception("upstream %s: the %s link stopped on an error and will not "
                          "reconnect until the upstream is started again: %s: %s",
                          self.name, bind, type(exc).__name__, exc)  # noqa: TRY401 - the line itself must say why

    async def _run(self, bind: str) -> None:
        attempt = 0
        cfg = self.config
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                context = _tls_context(cfg) if cfg.tls else None
                _, link = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Link(self, bind), cfg.host, cfg.port, ssl=context,
                        server_hostname=cfg.host if context else None,
                    ),
                    cfg.response_timeout,
                )
                status = await link.bind_result
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max)
                self._link_down(bind, attempt, delay, f"cannot connect to {cfg.host}:{cfg.port}:"
                                f" {exc or type(exc).__name__}")
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if status != 0:
                link.close("bind refused")
                delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max)
                reason = (f"bind refused with {status_name(status)}" if status > 0 else
                          f"the connection ended before the bind was answered"
                          f" ({link.close_reason or 'no reason given'})")
                self._link_down(bind, attempt, delay, reason)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.connects += 1
            self._links[bind] = link
            if all(b in self._links for b in self._binds):
                self.stats.set_state(UP)
            log.info("upstream %s: bound as %s to %s:%s", self.name, bind, cfg.host, cfg.port)
            if bind in _TRANSMITS:
                self.pump()
                self.on_up()
            try:
                await link.closed
            finally:
                if self._links.get(bind) is link:
                    del self._links[bind]
            if not self._stopping:
                delay = backoff_delay(0, cfg.reconnect_min, cfg.reconnect_max)
                reason = link.close_reason or "connection lost"
                self.stats.reconnects += 1
                self.stats.set_state(DOWN, reason)
                log.error("upstream %s: the %s link to %s:%s was lost (%s); reconnecting in"
                          " %.1fs", self.name, bind, cfg.host, cfg.port, reason, delay)
                if bind in _TRANSMITS:
                    # Queued but not written: the outbox takes them back without counting.
                    self._fail_queue()
                await asyncio.sleep(delay)

    # sending

    def send(
        self, msg: NewMessage, *, gsm_packed: bool = False, done_parts: dict[int, str] | None = None
    ) -> asyncio.Future[SubmitResult]:
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        if not self.is_up:
            future.set_result(SubmitResult(NOT_SENT))
            return future
        try:
            pdus = submits_for(msg, long_messages=self.config.long_messages,
                               gsm_packed=gsm_packed)
        except ValueError as exc:
            log.error("%s: message %s cannot be sent: %s", self.name, msg.id, exc)
            future.set_result(SubmitResult(CommandStatus.ESME_RINVMSGLEN))
            return future
        done = done_parts or {}
        ids = [done.get(i + 1, "") for i in range(len(pdus))]
        todo = [i for i in range(len(pdus)) if not ids[i]]
        sending = _Sending(msg, future, ids, len(todo))
        if not todo:
            sending.waiting = 1
            sending.answer(self, 0, 0, ids[0])
            return future
        for index in todo:
            self._queue.append((sending, index, pdus[index]))
        self.pump()
        return future

    def pump(self) -> None:
        tx = self._tx
        if tx is None:
            return
        cfg = self.config
        now = time.monotonic()
        burst = max(1.0, min(float(cfg.window), cfg.throughput))
        self._tokens = min(burst, self._tokens + (now - self._token_time) * cfg.throughput)
        self._token_time = now
        link = tx.link
        loop_now = tx.loop.time()
        sent = False
        while self._queue and link.window_free() and self._tokens >= 1.0:
            sending, index, pdu = self._queue.popleft()
            if sending.future.done():
                continue
            try:
                link.send(pdu, loop_now, (sending, index, loop_now))
            except ValueError as exc:
                log.error("%s: message %s cannot be encoded: %s", self.name, sending.msg.id, exc)
                sending.answer(self, index, CommandStatus.ESME_RINVMSGLEN, "")
                continue
            sent = True
            self._tokens -= 1.0
        if sent:
            tx.kick()
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


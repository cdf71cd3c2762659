"""One ESME connection: the asyncio adapter around the codec and the state table.

Bytes come in through `data_received` into one buffer, are cut into frames, decoded
and dispatched by the rules in `gateway.states`. Everything the session answers is
appended to an output buffer that is written once per turn of the event loop, so a
group commit that releases a hundred submit_sm_resp costs one write, not a hundred.
Nothing here awaits on the hot path: submits hand a future to the batcher and the
answer is written from its callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from gateway.limits import TokenBucket
from gateway.states import (
    BIND_COMMANDS,
    BOUND_STATES,
    RECEIVING_STATES,
    State,
    check_request,
    check_response,
)
from gateway.wire import BatchedOutput
from pdu.codec import (
    HEADER,
    PDU_CLASSES,
    RESPONSE_BIT,
    CommandId,
    EnquireLink,
    GenericNack,
    Outbind,
    Pdu,
    PduError,
    Unbind,
    decode,
    encode,
    response_for,
)
from pdu.framing import Framer, FramingError
from pdu.status import CommandStatus
from pdu.tlv import Tag, int_tlv

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.app import Gateway
    from gateway.dispatcher import PendingDelivery

log = logging.getLogger(__name__)

BIND_TYPE = {
    State.BOUND_TX: "transmitter",
    State.BOUND_RX: "receiver",
    State.BOUND_TRX: "transceiver",
}
SMSC_SYSTEM_ID = "smppgw"
# deliver_sm the gateway keeps outstanding per session before it waits for responses.
DELIVER_WINDOW = 10
_MAX_SEQUENCE = 0x7FFFFFFF
# Frames handled per event-loop turn before other sessions get theirs.
FRAMES_PER_TURN = 64
# A bind asking for SMPP 5.0 (interface_version 0x50) gets a 5.0 session: its bind_resp
# carries sc_interface_version 0x50 and its submit responses congestion_state.
INTERFACE_VERSION_50 = 0x50
CONGESTION_REPORTED = frozenset(
    {CommandId.SUBMIT_SM, CommandId.DATA_SM, CommandId.SUBMIT_MULTI}
)


class SmppSession(BatchedOutput, asyncio.Protocol):
    def __init__(
        self, gateway: Gateway, *, tls: bool = False, outbind_for: Account | None = None
    ) -> None:
        self.gw = gateway
        self.tls = tls
        # Set when the gateway dialled this connection to send outbind: only that
        # account may bind on it, as a receiver.
        self.outbind_for = outbind_for
        loop = asyncio.get_running_loop()
        self.outbind_result: asyncio.Future[bool] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.state = State.OPEN
        self.account = None
        self.peer_ip = ""
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self._framer = Framer(gateway.settings.max_pdu_size)
        self._frames: deque[bytes] = deque()
        self._paused = False
        self.init_output(asyncio.get_running_loop())
        self._seq = 0
        self._binding = False
        self._closing = False
        self.outstanding_submits = 0
        self.window = gateway.settings.default_window
        self.rate = TokenBucket(gateway.settings.default_throughput)
        self.enquire_sent_at = 0.0
        self._deliveries: dict[int, PendingDelivery] = {}
        self._deliver_queue: deque[PendingDelivery] = deque()
        self._sent_requests: dict[int, float] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self.last_rx = time.monotonic()
        self.bound_at = 0.0
        self.smpp50 = False

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer_ip = str(peer[0]).split("%")[0]
        self.peer = f"{peer[0]}:{peer[1]}" if len(peer) >= 2 else str(peer)
        self.gw.sessions.add(self)
        timeout = self.gw.settings.bind_timeout
        self._timers.append(self.loop.call_later(timeout, self._bind_timeout))
        account = self.outbind_for
        if account is not None:
            self.send_pdu(Outbind(
                sequence_number=self.next_sequence(),
                system_id=account.outbind_system_id or SMSC_SYSTEM_ID,
                password=account.outbind_password or "",
            ))

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self._framer.receive_data(data)
        if not self._paused:
            self._process()

    def _process(self) -> None:
        """Handle at most FRAMES_PER_TURN frames, then yield the loop to other sessions.

        One read can hold a thousand PDUs; handling them all in one callback would let
        a flooding client delay every other session. Reading pauses while frames wait.
        """
        if self._closing:
            return
        handled = 0
        while handled < FRAMES_PER_TURN:
            if not self._frames:
                try:
                    self._frames.extend(self._framer.frames())
                except FramingError as exc:
                    log.info("%s: framing error, closing: %s", self.peer, exc)
                    self.send_pdu(
                        GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
                    )
                    self.close()
                    return
                if not self._frames:
                    break
            self._handle_frame(self._frames.popleft())
            handled += 1
            if self._closing:
                return
        more = bool(self._frames)
        if not more and handled == FRAMES_PER_TURN:
            try:
                self._frames.extend(self._framer.frames())
                more = bool(self._frames)
            except FramingError:
                more = True  # raised again, and answered, on the next turn
        if more:
            if not self._paused:
                self._paused = True
                self.transport.pause_reading()
            self.loop.call_soon(self._process)
        elif self._paused:
            self._paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        was_bound = self.state in BOUND_STATES
        previous = self.state
        self.state = State.CLOSED
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.gw.sessions.discard(self)
        if was_bound:
            self.gw.metrics.sessions_bound.labels(BIND_TYPE[previous]).dec()
            self.gw.on_session_unbound(self)
        # Whatever was sent and not acknowledged goes back to the store's retry.
        unacked = list(self._deliveries.values()) + list(self._deliver_queue)
        self._deliveries.clear()
        self._deliver_queue.clear()
        if unacked:
            self.gw.dispatcher.returned(unacked)
        if not self.outbind_result.done():
            self.outbind_result.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    # --- output ----------------------------------------------------------------------

    def send_pdu(self, pdu: Pdu) -> None:
        self.write(encode(pdu))
        self.gw.metrics.count_pdu("out", pdu.command_id, pdu.command_status)

    def next_sequence(self) -> int:
        self._seq = self._seq + 1 if self._seq < _MAX_SEQUENCE else 1
        return self._seq

    def respond(self, request: Pdu, status: int = 0, **body) -> None:
        response = response_for(request, status, **body)
        if self.smpp50 and request.command_id in CONGESTION_REPORTED:
            response.tlvs.append(int_tlv(Tag.CONGESTION_STATE, self.gw.congestion(self)))
        self.send_pdu(response)

    def close(self) -> None:
        """Flush what is queued, then close the transport."""
        if self._closing:
            return
        self._closing = True
        self.flush()
        if self.transport is not None:
            self.transport.close()

    # --- input -----------------------------------------------------------------------

    def _handle_frame(self, frame: bytes) -> None:
        metrics = self.gw.metrics
        try:
            pdu = decode(frame)
        except PduError as exc:
            metrics.count_pdu("in", exc.command_id, exc.status)
            self._answer_decode_error(exc)
            return
        metrics.count_pdu("in", pdu.command_id, pdu.command_status)
        cid = pdu.command_id
        if cid & RESPONSE_BIT:
            self._handle_response(pdu)
            return
        if self._binding:
            # The bind is being checked; nothing else is valid until it is answered.
            self.respond(pdu, CommandStatus.ESME_RINVBNDSTS)
            return
        status = check_request(self.state, cid)
        if status:
            if cid in (CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION):
                self.send_pdu(GenericNack(sequence_number=pdu.sequence_number, command_status=status))
            else:
                self.respond(pdu, status)
            return
        if cid == CommandId.SUBMIT_SM:
            self.gw.submitter.submit_sm(self, pdu)
        elif cid == CommandId.SUBMIT_MULTI:
            self.gw.submitter.submit_multi(self, pdu)
        elif cid == CommandId.DATA_SM:
            self.gw.submitter.data_sm(self, pdu)
        elif cid == CommandId.ENQUIRE_LINK:
            self.respond(pdu)
        elif cid in BIND_COMMANDS:
            self._binding = True
            self.loop.create_task(self._bind(pdu))
        elif cid == CommandId.UNBIND:
            self._unbind(pdu)
        else:
            self.gw.submitter.other_request(self, pdu)

    def _answer_decode_error(self, exc: PduError) -> None:
        cid = exc.command_id
        cls = PDU_CLASSES.get(cid)
        if cls is None or cid & RESPONSE_BIT or cid in (
            CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION
        ):
            self.send_pdu(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))
            return
        log.debug("%s: %s", self.peer, exc)
        # A known request with a bad field: answer its own response with the status.
        self.respond(cls(sequence_number=exc.sequence_number), exc.status)

    def _handle_response(self, pdu: Pdu) -> None:
        if not check_response(self.state, pdu.command_id):
            return  # a response we never asked for: drop it, as the spec allows
        if self._sent_requests.pop(pdu.sequence_number, None) is not None:
            self.enquire_sent_at = 0.0
        if pdu.command_id in (CommandId.DELIVER_SM_RESP, CommandId.DATA_SM_RESP) or (
            pdu.command_id == CommandId.GENERIC_NACK and pdu.sequence_number in self._deliveries
        ):
            delivery = self._deliveries.pop(pdu.sequence_number, None)
            if delivery is None:
                return
            self.gw.dispatcher.acknowledged(delivery, pdu.command_status)
            self._pump_deliveries()
        elif pdu.command_id == CommandId.UNBIND_RESP and self.state == State.UNBOUND:
            self.close()

    # --- bind / unbind ---------------------------------------------------------------

    async def _bind(self, pdu: Pdu) -> None:
        try:
            status, account = await self.gw.authenticate(
                pdu, self.peer_ip, outbind_for=self.outbind_for
            )
        except Exception:
            log.exception("%s: bind check failed", self.peer)
            status, account = CommandStatus.ESME_RSYSERR, None
        self._binding = False
        if self._closing:
            return
        state = BIND_COMMANDS[pdu.command_id]
        if not status and self.outbind_for is not None and state not in RECEIVING_STATES:
            # outbind asks the ESME to receive (SMPP 3.4 2.2.1): not to transmit here.
            status = CommandStatus.ESME_RINVBNDSTS
        if not status and not self.gw.bind_slot_free(account, state):
            self.gw.metrics.bind_failures.labels("bind_limit").inc()
            status = CommandStatus.ESME_RBINDFAIL
        tlvs = []
        if pdu.interface_version >= INTERFACE_VERSION_50:
            tlvs.append(int_tlv(Tag.SC_INTERFACE_VERSION, INTERFACE_VERSION_50))
        # aiosmpplib cannot parse a failed bind_resp without a body, so one is always sent.
        self.respond(pdu, status, system_id=SMSC_SYSTEM_ID, tlvs=tlvs)
        if status:
            if self.outbind_for is not None and not self.outbind_result.done():
                self.outbind_result.set_result(False)
            return
        self.smpp50 = bool(tlvs)
        self.state = state
        self.account = account
        self.window = account.window
        self.rate = TokenBucket(account.throughput)
        self.bound_at = time.monotonic()
        self._timers[0].cancel()
        self.gw.metrics.sessions_bound.labels(BIND_TYPE[self.state]).inc()
        log.info("%s: bound as %s for %s", self.peer, BIND_TYPE[self.state], account.system_id)
        self.gw.on_session_bound(self)
        if not self.outbind_result.done():
            self.outbind_result.set_result(True)

    def _unbind(self, pdu: Pdu) -> None:
        previous = self.state
        self.respond(pdu)
        self.state = State.UNBOUND
        if previous in BOUND_STATES:
            self.gw.metrics.sessions_bound.labels(BIND_TYPE[previous]).dec()
            self.gw.on_session_unbound(self)
        # Some clients (aiosmpplib) half-close right after unbind; close from our side.
        self.close()

    def _bind_timeout(self) -> None:
        if not self.outbind_result.done():
            self.outbind_result.set_result(False)
        if self.state == State.OPEN and not self._closing:
            log.info("%s: no bind within %.0fs, closing", self.peer, self.gw.settings.bind_timeout)
            self.close()

    def request_unbind(self) -> None:
        """Gateway-initiated unbind (shutdown, kick, password rotation)."""
        if self.state not in BOUND_STATES:
            self.close()
            return
        previous = self.state
        self.send_pdu(Unbind(sequence_number=self.next_sequence()))
        self.state = State.UNBOUND
        self.gw.metrics.sessions_bound.labels(BIND_TYPE[previous]).dec()
        self.gw.on_session_unbound(self)
        self._timers.append(self.loop.call_later(self.gw.settings.response_timeout, self.close))

    # --- deliveries to the ESME (DLR and MO) -----------------------------------------

    @property
    def can_receive(self) -> bool:
        return self.state in RECEIVING_STATES and not self._closing

    @property
    def delivery_load(self) -> int:
        return len(self._deliveries) + len(self._deliver_queue)

    def deliver(self, delivery: PendingDelivery) -> None:
        self._deliver_queue.append(delivery)
        self._pump_deliveries()

    def _pump_deliveries(self) -> None:
        queue = self._deliver_queue
        while queue and len(self._deliveries) < DELIVER_WINDOW and self.can_receive:
            delivery = queue.popleft()
            seq = self.next_sequence()
            delivery.sent_at = time.monotonic()
            self._deliveries[seq] = delivery
            body = delivery.body
            self.write(
                HEADER.pack(16 + len(body), CommandId.DELIVER_SM, 0, seq) + body
            )
            self.gw.metrics.count_pdu("out", CommandId.DELIVER_SM, 0)

    def alert(self, pdu: Pdu) -> None:
        """An alert_notification: a request the ESME never answers (SMPP 3.4 4.12)."""
        pdu.sequence_number = self.next_sequence()
        self.send_pdu(pdu)

    def send_enquire_link(self, now: float) -> None:
        seq = self.next_sequence()
        self._sent_requests[seq] = now
        self.enquire_sent_at = now
        self.send_pdu(EnquireLink(sequence_number=seq))

    def oldest_unanswered_delivery(self) -> float:
        return min((d.sent_at for d in self._deliveries.values()), default=0.0)

    def keep(self, now: float) -> None:
        """Periodic care (the gateway calls it every second): link checks and age."""
        s = self.gw.settings
        if self.state not in BOUND_STATES or self._closing:
            return
        if self.enquire_sent_at and now - self.enquire_sent_at > s.response_timeout:
            log.info("%s: enquire_link unanswered for %.0fs, closing", self.peer,
                     s.response_timeout)
            self.close()
            return
        oldest = self.oldest_unanswered_delivery()
        if oldest and now - oldest > s.response_timeout:
            log.info("%s: deliver_sm unanswered for %.0fs, closing", self.peer, s.response_timeout)
            self.close()
            return
        if now - self.bound_at > s.session_max_age:
            log.info("%s: session reached its maximum age, unbinding", self.peer)
            self.request_unbind()
            return
        if not self.enquire_sent_at and now - self.last_rx > s.enquire_link_interval:
            self.send_enquire_link(now)


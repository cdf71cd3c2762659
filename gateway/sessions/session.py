"""One customer connection: the SMSC side of a `pdu.link.Link`, wired to the gateway.

The link keeps the rules (states, windows, timers); this adapter says what they mean
here: a bind is checked by the authenticator and the registry's bind limits, a
submit goes to the submit pipeline, query/cancel/replace to the operations, receipts
and MOs go out as deliver_sm in the link's window and their answers back to the
delivery tracker. Nothing awaits on the hot path: a submit hands a future to the
store and the answer is written from its callback. A connection beyond the registry's
limits (in all, per address) is aborted as it is accepted, before any SMPP. A refused
bind logs one WARNING (sessions.auth.log_refused_bind); a bound session one INFO line when
it binds and one when it unbinds or its connection goes, never one per PDU.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.link_protocol import LinkProtocol
from gateway.sessions.auth import log_refused_bind
from gateway.sessions.limits import TokenBucket
from pdu.codec import CommandId, Pdu
from pdu.link import (
    BIND_STATE,
    BIND_TYPE,
    RECEIVING_STATES,
    Closed,
    Link,
    LinkConfig,
    Request,
    Response,
    ResponseTimeout,
    State,
    Unbound,
)
from pdu.status import CommandStatus
from pdu.tlv import Tag, int_tlv

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.metrics import GatewayMetrics
    from gateway.sessions.auth import Authenticator
    from gateway.sessions.presence import Presence
    from gateway.sessions.registry import SessionRegistry

log = logging.getLogger(__name__)

SMSC_SYSTEM_ID = "smppgw"
# A bind asking for SMPP 5.0 (interface_version 0x50) gets a 5.0 session: its bind_resp
# carries sc_interface_version 0x50 and its submit responses congestion_state.
INTERFACE_VERSION_50 = 0x50
_CONGESTION_REPORTED = frozenset(
    {CommandId.SUBMIT_SM, CommandId.DATA_SM, CommandId.SUBMIT_MULTI}
)
# Numbers of this process's customer connections, so that a session's bound and ended
# lines can be paired in the log.
_SESSION_NUMBERS = itertools.count(1)


class Delivery(Protocol):
    """A receipt or MO on its way to the customer: a ready deliver_sm body."""

    body: bytes


class SubmitHandler(Protocol):
    def submit_sm(self, session: CustomerSession, pdu: Pdu) -> None: ...
    def data_sm(self, session: CustomerSession, pdu: Pdu) -> None: ...
    def submit_multi(self, session: CustomerSession, pdu: Pdu) -> None: ...


class OperationHandler(Protocol):
    def handle(self, session: CustomerSession, pdu: Pdu) -> None: ...


class DeliveryTracker(Protocol):
    def acknowledged(self, delivery: Any, status: int) -> None: ...
    def returned(self, deliveries: list[Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What a customer session uses of the rest of the gateway, and nothing more."""

    link_config: LinkConfig
    throughput: float
    authenticator: Authenticator
    registry: SessionRegistry
    # This node among the others: bind limits counted on every node of the store.
    presence: Presence
    submits: SubmitHandler
    operations: OperationHandler
    deliveries: DeliveryTracker
    metrics: GatewayMetrics
    # How full the next group commit is, 0..1 (for SMPP 5.0 congestion_state).
    commit_pressure: Callable[[], float]


class CustomerSession(LinkProtocol):
    def __init__(
        self, services: SessionServices, *, tls: bool = False,
        outbind_for: Account | None = None,
    ) -> None:
        super().__init__(Link(services.link_config, asyncio.get_running_loop().time(),
                              observe=services.metrics.count_pdu))
        self.services = services
        self.tls = tls
        # Set when the gateway dialled this connection to send outbind: only that
        # account may bind on it, as a receiver.
        self.outbind_for = outbind_for
        self.outbind_result: asyncio.Future[bool] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.account: Account | None = None
        self.peer_ip = ""
        self.peer = ""
        self.rate = TokenBucket(services.throughput)
        self.smpp50 = False
        self._queue: deque[Delivery] = deque()
        # The bind type while bound (the gauge and the registry are told when it ends).
        self._bound_as: str | None = None
        self.number = next(_SESSION_NUMBERS)
        self._bound_at = 0.0
        # Why the connection ends, when we end it (for the line of a session closed bound).
        self._ended_by_us = ""

    # --- what the rest of the gateway sees ----------------------------------------------

    @property
    def state(self) -> State:
        return self.link.state

    @property
    def system_id(self) -> str:
        return self.account.system_id if self.account is not None else ""

    @property
    def bind_type(self) -> str:
        return self._bound_as or self.link.state.value

    @property
    def can_receive(self) -> bool:
        return self.link.can_receive and not self.link.closing

    @property
    def delivery_load(self) -> int:
        return self.link.awaiting + len(self._queue)

    @property
    def window(self) -> int:
        return self.link.window_in or self.services.link_config.window_in or 1

    @property
    def received_at(self) -> float:
        """Loop time the bytes of the request being handled arrived (submit latency)."""
        return self.link.last_rx

    @property
    def outstanding(self) -> int:
        """The client's requests we have not answered yet."""
        return self.link.peer_outstanding

    def respond(self, request: Pdu, status: int = 0, **body: Any) -> Pdu:
        if self.smpp50 and request.command_id in _CONGESTION_REPORTED:
            body["tlvs"] = [int_tlv(Tag.CONGESTION_STATE, self.congestion())]
        return super().respond(request, status, **body)

    def congestion(self) -> int:
        """SMPP 5.0 congestion_state, 0 (idle) to 100 (congested): the fuller of this
        session's window and of the next group commit, so a client sees load rising
        before it is throttled."""
        window = self.link.peer_outstanding / max(self.window, 1)
        return min(100, round(100 * max(window, self.services.commit_pressure())))

    def request_unbind(self) -> None:
        """Gateway-initiated unbind (shutdown, kick, password rotation)."""
        self.unbind("unbind requested by the gateway")

    def deliver(self, delivery: Delivery) -> None:
        self._queue.append(delivery)
        self._pump()

    def alert(self, pdu: Pdu) -> None:
        """An alert_notification: a request the ESME never answers (SMPP 3.4 4.12)."""
        self.link.notify(pdu)
        self.kick()

    # --- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer_ip = str(peer[0]).split("%")[0]
        self.peer = f"{peer[0]}:{peer[1]}" if len(peer) >= 2 else str(peer)
        registry = self.services.registry
        if self.outbind_for is not None:
            registry.add(self, self.peer_ip)  # one we dialled: counted, never refused
        else:
            refused = registry.admit(self, self.peer_ip)
            if refused:
                self.services.metrics.connections_refused.labels(refused).inc()
                transport.abort()
                return
        super().connection_made(transport)

    def on_open(self) -> None:
        account = self.outbind_for
        if account is not None:
            self.link.outbind(account.outbind_system_id or SMSC_SYSTEM_ID,
                              account.outbind_password or "")

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        services = self.services
        services.registry.discard(self)
        if self._ended_by_us:
            self._left("closed", "gateway", self._ended_by_us)
        elif exc is not None:
            self._left("closed", "peer", f"connection lost: {exc}")
        else:
            self._left("closed", "peer", "connection closed by the peer")
        # Whatever was sent and not acknowledged goes back to the store's retry.
        unacked = [context for _, context in awaiting if context is not None]
        unacked += self._queue
        self._queue.clear()
        if unacked:
            services.deliveries.returned(unacked)
        if not self.outbind_result.done():
            self.outbind_result.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def on_dropped(self, cause: str) -> None:
        self.services.metrics.connections_dropped.labels(cause).inc()
        self._ended_by_us = f"dropped: {cause}"

    def handle_event(self, event: Any) -> None:
        kind = type(event)
        if kind is Request:
            self._request(event.pdu)
        elif kind is Response:
            self.services.deliveries.acknowledged(event.context, event.command_status)
            self._pump()
        elif kind is ResponseTimeout:
            log.info("%s: deliver_sm unanswered for %.0fs, closing", self.peer,
                     self.link.config.response_timeout)
            self.services.deliveries.returned([event.context])
            self.link.close("deliver_sm unanswered")
        elif kind is Unbound:
            self._left("unbound", "peer" if event.by_peer else "gateway", event.reason)
        elif kind is Closed:
            log.debug("%s: closing: %s", self.peer, event.reason)
            self._ended_by_us = self._ended_by_us or event.reason
            if not self.outbind_result.done():
                self.outbind_result.set_result(False)

    def _request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        services = self.services
        if cid == CommandId.SUBMIT_SM:
            services.submits.submit_sm(self, pdu)
        elif cid == CommandId.SUBMIT_MULTI:
            services.submits.submit_multi(self, pdu)
        elif cid == CommandId.DATA_SM:
            services.submits.data_sm(self, pdu)
        elif cid in BIND_STATE:
            self.loop.create_task(self._bind(pdu))
        else:
            services.operations.handle(self, pdu)

    # --- bind ---------------------------------------------------------------------------

    async def _bind(self, pdu: Pdu) -> None:
        services = self.services
        try:
            status, account = await services.authenticator.check(
                pdu, self.peer_ip, outbind_for=self.outbind_for
            )
        except Exception:  # noqa: BLE001  (logged with its traceback just below)
            # The refusal's one line, at ERROR and with the traceback: our fault, not theirs.
            status = self._refuse_bind(pdu, "error", CommandStatus.ESME_RSYSERR,
                                       level=logging.ERROR, exc_info=True)
            account = None
        if self.link.state is not State.BINDING:
            return  # the connection went away meanwhile
        state = BIND_STATE[pdu.command_id]
        if not status and self.outbind_for is not None and state not in RECEIVING_STATES:
            # outbind asks the ESME to receive (SMPP 3.4 2.2.1): not to transmit here.
            status = self._refuse_bind(pdu, "outbind_not_receiver",
                                       CommandStatus.ESME_RINVBNDSTS)
        if not status and not services.registry.bind_slot_free(account, state):
            status = self._refuse_bind(pdu, "bind_limit", CommandStatus.ESME_RBINDFAIL)
        if not status:
            # The same limit on every node of the store (registered if there is room).
            if not await services.presence.bind(self, account, BIND_TYPE[state]):
                status = self._refuse_bind(pdu, "bind_limit", CommandStatus.ESME_RBINDFAIL)
            elif self.link.state is not State.BINDING:
                services.presence.unbound(self)  # the connection went away meanwhile
                return
        tlvs = []
        if pdu.interface_version >= INTERFACE_VERSION_50:
            tlvs.append(int_tlv(Tag.SC_INTERFACE_VERSION, INTERFACE_VERSION_50))
        if status:
            # aiosmpplib cannot parse a failed bind_resp without a body: one is sent.
            self.link.refuse_bind(pdu, status, system_id=SMSC_SYSTEM_ID, tlvs=tlvs)
            self.kick()
            if self.outbind_for is not None and not self.outbind_result.done():
                self.outbind_result.set_result(False)
            return
        self.link.accept_bind(pdu, self.loop.time(), window_in=account.window,
                              system_id=SMSC_SYSTEM_ID, tlvs=tlvs)
        self.kick()
        self.smpp50 = bool(tlvs)
        self.account = account
        self.rate = TokenBucket(account.throughput)
        self._bound_as = self.link.bind_type
        self._bound_at = self.loop.time()
        services.metrics.sessions_bound.labels(self._bound_as).inc()
        log.info("session bound: session=%d system_id=%s peer=%s bind_type=%s", self.number,
                 account.system_id, self.peer, self._bound_as,
                 extra={"session": self.number, "system_id": account.system_id,
                        "peer": self.peer, "bind_type": self._bound_as})
        services.registry.add_bound(self)
        if not self.outbind_result.done():
            self.outbind_result.set_result(True)

    def _refuse_bind(
        self, pdu: Pdu, reason: str, status: int, *, level: int = logging.WARNING,
        exc_info: bool = False,
    ) -> int:
        """A refusal decided here rather than by the authenticator (which counts and
        logs its own): counted under `reason` and logged, once. Returns `status`."""
        self.services.metrics.bind_failures.labels(reason).inc()
        log_refused_bind(self.peer_ip, pdu.system_id, reason, status, level=level,
                         exc_info=exc_info)
        return status

    def _left(self, how: str, by: str, reason: str) -> None:
        """The session is no longer bound: `how` is "unbound" (an unbind either way) or
        "closed" (the connection went while bound), `by` "peer" or "gateway"."""
        bound_as = self._bound_as
        if bound_as is None:
            return
        bound_for = self.loop.time() - self._bound_at
        log.info("session %s: session=%d system_id=%s peer=%s bind_type=%s bound_for=%.1fs "
                 "by=%s reason=%s", how, self.number, self.system_id, self.peer, bound_as,
                 bound_for, by, reason,
                 extra={"session": self.number, "system_id": self.system_id,
                        "peer": self.peer, "bind_type": bound_as,
                        "bound_seconds": round(bound_for, 3), "by": by, "reason": reason})
        self.services.metrics.sessions_bound.labels(bound_as).dec()
        self._bound_as = None
        self.services.registry.remove_bound(self)
        self.services.presence.unbound(self)

    # --- deliveries to the ESME (DLR and MO) -----------------------------------------

    def _pump(self) -> None:
        link = self.link
        queue = self._queue
        if not queue or not self.can_receive:
            return
        now = self.loop.time()
        while queue and link.window_free():
            delivery = queue.popleft()
            link.send_body(CommandId.DELIVER_SM, delivery.body, now, delivery)
        self.kick()


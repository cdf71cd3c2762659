"""One SMPP link, sans-IO: the rules of a connection, for either side of it.

Everything that affects the state of a connection lives here, as h11's _state.py has
it for HTTP: the bind state table of both roles (the SMSC answering ESMEs, the ESME
binding to an SMSC), sequence numbers, the window of requests the peer may have
outstanding and of requests we have outstanding, the requests awaiting a response and
their deadlines, enquire_link on an idle link, the bind time-out and the session's
maximum age. It takes bytes (`receive_data`) and hands back events (`next_event`);
the application acts through methods that queue bytes (`data_to_send`). It never
reads a clock: every call that starts a deadline takes `now`, and the caller arms one
timer at `next_deadline()` and calls `handle_timer(now)` when it fires.

What the link answers by itself: enquire_link; unbind (then it closes); a request not
allowed in the current state (ESME_RINVBNDSTS, or ESME_RALYBND for a second bind); a
request beyond the window (ESME_RTHROTTLED); a PDU that does not decode (the status
the codec gives, or generic_nack); a framing error (generic_nack, then close).
What it drops without a word (a Closed event with an `abort` cause: the adapter
aborts the connection rather than wait for a peer to read): no bind within the bind
time-out, and enquire_link before a bind faster than `unbound_enquire_rate`.
Everything else is an event for the application, which answers requests with
`respond`, binds with `accept_bind`/`refuse_bind` (SMSC) or `bind` (ESME), and sends
its own requests with `send` while `window_free()` allows.

Over our usual 500 lines on purpose: like h11's _state.py, the rules of a connection
are read (and changed) in one place, the state tables beside the code that obeys them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pdu.codec import (
    HEADER,
    HEADER_SIZE,
    PDU_CLASSES,
    RESPONSE_BIT,
    RESPONSE_CLASS,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
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
from pdu.fields import INTERFACE_VERSION_34
from pdu.framing import DEFAULT_MAX_PDU_SIZE, Framer, FramingError
from pdu.status import CommandStatus

C = CommandId
MAX_SEQUENCE = 0x7FFFFFFF


class Role(Enum):
    SMSC = "smsc"  # we answer binds: the gateway towards its customers, the simulator
    ESME = "esme"  # we bind: the gateway towards an upstream, the load generator, tests


class State(Enum):
    OPEN = "open"
    BINDING = "binding"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"


BIND_STATE = {
    C.BIND_TRANSMITTER: State.BOUND_TX,
    C.BIND_RECEIVER: State.BOUND_RX,
    C.BIND_TRANSCEIVER: State.BOUND_TRX,
}
BIND_CLASS = {
    State.BOUND_TX: BindTransmitter,
    State.BOUND_RX: BindReceiver,
    State.BOUND_TRX: BindTransceiver,
}
BIND_TYPE = {
    State.BOUND_TX: "transmitter",
    State.BOUND_RX: "receiver",
    State.BOUND_TRX: "transceiver",
}
BOUND_STATES = frozenset(BIND_TYPE)
RECEIVING_STATES = frozenset({State.BOUND_RX, State.BOUND_TRX})
TRANSMITTING_STATES = frozenset({State.BOUND_TX, State.BOUND_TRX})

# --- the state table: which requests the peer may send in each state (SMPP 3.4 2.3) --

_SUBMITS = frozenset({C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM,
                      C.REPLACE_SM})
_DELIVERIES = frozenset({C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION})
_ALWAYS = frozenset({C.ENQUIRE_LINK, C.UNBIND})

# What an ESME may send to us when we are the SMSC.
FROM_ESME: dict[State, frozenset[int]] = {
    State.OPEN: frozenset(BIND_STATE) | {C.ENQUIRE_LINK},
    State.BINDING: frozenset(),  # nothing until the bind is answered
    State.BOUND_TX: _SUBMITS | _ALWAYS,
    State.BOUND_RX: _ALWAYS,
    State.BOUND_TRX: _SUBMITS | _ALWAYS,
    State.UNBINDING: _ALWAYS,
    State.CLOSED: frozenset(),
}
# What an SMSC may send to us when we are the ESME.
FROM_SMSC: dict[State, frozenset[int]] = {
    State.OPEN: frozenset({C.OUTBIND, C.ENQUIRE_LINK}),
    State.BINDING: frozenset({C.ENQUIRE_LINK}),
    State.BOUND_TX: _ALWAYS,
    State.BOUND_RX: _DELIVERIES | _ALWAYS,
    State.BOUND_TRX: _DELIVERIES | _ALWAYS,
    State.UNBINDING: _ALWAYS,
    State.CLOSED: frozenset(),
}
# Requests that have no response PDU: a refusal of them is a generic_nack.
NO_RESPONSE = frozenset({C.OUTBIND, C.ALERT_NOTIFICATION})
# Requests the link handles itself; the others are the application's to answer and
# take a place in the window until they are.
_OWN = frozenset(BIND_STATE) | _ALWAYS | NO_RESPONSE


def following_sequence(seq: int) -> int:
    """The sequence number after `seq`: 1 to 0x7FFFFFFF, then 1 again (SMPP 3.4 3.2)."""
    return seq + 1 if seq < MAX_SEQUENCE else 1


def allowed(role: Role, state: State, command_id: int) -> int:
    """0 when the peer may send this request now, else the status to refuse it with."""
    table = FROM_ESME if role is Role.SMSC else FROM_SMSC
    if command_id in table[state]:
        return CommandStatus.ESME_ROK
    if command_id in BIND_STATE and state in BOUND_STATES:
        return CommandStatus.ESME_RALYBND
    return CommandStatus.ESME_RINVBNDSTS


# --- configuration and events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkConfig:
    role: Role
    max_pdu_size: int = DEFAULT_MAX_PDU_SIZE
    # Requests the peer may have unanswered at once (None: no limit), and requests we
    # may have unanswered (deliver_sm for an SMSC, submit_sm for an ESME).
    window_in: int | None = None
    window_out: int = 10
    response_timeout: float = 10.0
    # Idle time before we send enquire_link (None: never).
    enquire_link_interval: float | None = 30.0
    # SMSC: no bind within this long after the connection opened -> dropped.
    bind_timeout: float | None = None
    # SMSC: bound for this long -> we unbind (the provider's daily unbind).
    max_age: float | None = None
    # Before a bind, enquire_link is answered `unbound_enquire_burst` at once and then
    # `unbound_enquire_rate` per second; one more drops the link (a peer that probes
    # and never binds is not answered at line speed). None: no limit.
    unbound_enquire_rate: float | None = 1.0
    unbound_enquire_burst: int = 5
    # What the adapter lets a connection leave unread (its transport's buffer and what
    # the link holds) before it drops it; None: no cap. Not the link's to enforce: it
    # cannot see the transport.
    max_unsent_bytes: int | None = 1 << 20


@dataclass(slots=True)
class Request:
    """A request from the peer for the application: answer it with `respond` (a bind
    with accept_bind/refuse_bind; outbind and alert_notification have no answer)."""

    pdu: Pdu


@dataclass(slots=True)
class Response:
    """The answer to one of our requests; the body is decoded on demand."""

    command_id: int
    command_status: int
    sequence_number: int
    frame: bytes
    context: Any

    def pdu(self) -> Pdu:
        return decode(self.frame)


@dataclass(slots=True)
class StrayResponse:
    """A response to nothing we are waiting for (too late, or to a request written
    without the link): the spec lets it be dropped, and most applications do."""

    frame: bytes

    def pdu(self) -> Pdu:
        return decode(self.frame)


@dataclass(slots=True)
class ResponseTimeout:
    """One of our requests got no answer within response_timeout."""

    command_id: int
    sequence_number: int
    context: Any


@dataclass(slots=True)
class Bound:
    """ESME: the SMSC accepted our bind."""

    state: State
    response: Pdu


@dataclass(slots=True)
class BindRefused:
    """ESME: the SMSC refused our bind (the link is OPEN again)."""

    status: int
    response: Pdu | None


@dataclass(slots=True)
class Unbound:
    """The link left a bound state: the peer unbound, or we did (max age, `unbind`)."""

    state: State
    by_peer: bool
    reason: str


@dataclass(slots=True)
class Closed:
    """Send what `data_to_send` holds, then close the transport; or, when `abort` names
    a cause (BIND_TIMEOUT, UNBOUND_ENQUIRE_LINK), drop the connection at once and send
    nothing: a peer that may not read is not waited for."""

    reason: str
    abort: str = ""


Event = (
    Request | Response | StrayResponse | ResponseTimeout | Bound | BindRefused | Unbound | Closed
)

# Keys of our own requests in the awaiting table, apart from the application's.
_ENQUIRE, _UNBIND, _BIND = "enquire_link", "unbind", "bind"
# Why the link drops a connection rather than close it (Closed.abort): short names,
# fit for a metric's label.
BIND_TIMEOUT = "bind_timeout"
UNBOUND_ENQUIRE_LINK = "unbound_enquire_link"
_UNBOUND_STATES = frozenset({State.OPEN, State.BINDING})


class LinkError(RuntimeError):
    """The application asked for something the link's state or window forbids."""


class Link:
    """The SMPP connection state machine for one role; see the module docstring."""

    def __init__(
        self, config: LinkConfig, now: float,
        observe: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """`observe(direction, command_id, command_status)` is told of every PDU in
        ("in") and out ("out"), the link's own answers included (for metrics)."""
        self.config = config
        self._observe = observe
        self.role = config.role
        self.state = State.OPEN
        self._framer = Framer(config.max_pdu_size)
        self._frames: deque[bytes] = deque()
        # Frames of the peer handled so far, the ones the link answers itself included:
        # what an adapter counts to bound the work of one turn.
        self.frames_in = 0
        self._events: deque[Event] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._seq = 0
        # seq -> (command_id, deadline, context); insertion order is deadline order,
        # as every request has the same time-out.
        self._awaiting: dict[int, tuple[int, float, Any]] = {}
        self._app_awaiting = 0
        self._enquire_seq: int | None = None
        self.peer_outstanding = 0
        self.window_in = config.window_in
        self.last_rx = now
        self.bound_at = 0.0
        self._bind_deadline = (
            now + config.bind_timeout
            if config.role is Role.SMSC and config.bind_timeout is not None else None
        )
        self._closing = False
        self._abort = ""
        # The token bucket of enquire_link before a bind (refilled from last_rx).
        self._probes = float(config.unbound_enquire_burst)
        self._probes_at = now

    # --- state seen by the application --------------------------------------------

    @property
    def bound(self) -> bool:
        return self.state in BOUND_STATES

    @property
    def bind_type(self) -> str | None:
        return BIND_TYPE.get(self.state)

    @property
    def can_receive(self) -> bool:
        """A deliver_sm may be sent to this ESME (we are its SMSC)."""
        return self.state in RECEIVING_STATES

    @property
    def can_transmit(self) -> bool:
        """A submit_sm may go to this SMSC (we are its ESME)."""
        return self.state in TRANSMITTING_STATES

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def abort_cause(self) -> str:
        """Why the link asks for its connection to be dropped at once ("": it does not)."""
        return self._abort

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued and not yet taken by `data_to_send`."""
        return self._out_bytes

    @property
    def awaiting(self) -> int:
        """The application's requests still waiting for a response."""
        return self._app_awaiting

    def window_free(self) -> int:
        return max(0, self.config.window_out - self._app_awaiting)

    def next_sequence(self) -> int:
        self._seq = following_sequence(self._seq)
        return self._seq

    # --- bytes in, events out -----------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state is State.CLOSED:
            return
        self.last_rx = now
        self._framer.receive_data(data)

    def next_event(self, max_frames: int | None = None) -> Event | None:
        """The next event, or None when everything received so far is handled. With
        `max_frames`, also None once that many frames were handled without an event:
        frames the link answers itself (a flood of requests refused before a bind)
        yield none, and would otherwise all be handled in this one call."""
        stop_at = None if max_frames is None else self.frames_in + max_frames
        while True:
            if self._events:
                return self._events.popleft()
            if self.state is State.CLOSED:
                return None
            if stop_at is not None and self.frames_in >= stop_at:
                return None
            if not self._frames:
                try:
                    frames = self._framer.frames()
                except FramingError as exc:
                    self._write_pdu(GenericNack(sequence_number=exc.sequence_number,
                                                command_status=exc.status))
                    self._close(f"framing error: {exc}")
                    continue
                if not frames:
                    return None
                self._frames.extend(frames)
            self.frames_in += 1
            event = self._frame(self._frames.popleft())
            if event is not None:
                return event

    def _frame(self, frame: bytes) -> Event | None:
        _, command_id, status, seq = HEADER.unpack_from(frame, 0)
        if self._observe is not None:
            self._observe("in", command_id, status)
        if command_id & RESPONSE_BIT:
            return self._response(command_id, status, seq, frame)
        if command_id == C.ENQUIRE_LINK and self.state in _UNBOUND_STATES and (
            not self._probe_allowed()
        ):
            self._close("enquire_link before a bind, faster than allowed",
                        UNBOUND_ENQUIRE_LINK)
            return None
        try:
            pdu = decode(frame)
        except PduError as exc:
            self._answer_bad(exc)
            return None
        refusal = allowed(self.role, self.state, command_id)
        if refusal:
            self._refuse(pdu, refusal)
            return None
        if command_id == C.ENQUIRE_LINK:
            self._write_pdu(response_for(pdu))
            return None
        if command_id == C.UNBIND:
            self._write_pdu(response_for(pdu))
            previous = self.state
            self._close("unbound by the peer")
            return Unbound(previous, True, "unbound by the peer") if previous in BOUND_STATES \
                else None
        if command_id in BIND_STATE:
            self.state = State.BINDING
            return Request(pdu)
        if command_id not in NO_RESPONSE:
            window = self.window_in
            if window is not None and self.peer_outstanding >= window:
                self._write_pdu(response_for(pdu, CommandStatus.ESME_RTHROTTLED))
                return None
            self.peer_outstanding += 1
        return Request(pdu)

    def _probe_allowed(self) -> bool:
        rate = self.config.unbound_enquire_rate
        if rate is None:
            return True
        now = self.last_rx
        self._probes = min(float(self.config.unbound_enquire_burst),
                           self._probes + (now - self._probes_at) * rate)
        self._probes_at = now
        if self._probes < 1.0:
            return False
        self._probes -= 1.0
        return True

    def _answer_bad(self, exc: PduError) -> None:
        cid = exc.command_id
        cls = PDU_CLASSES.get(cid)
        if cid & RESPONSE_BIT:
            return  # a response we cannot read: dropped, as an unmatched one would be
        if cls is None or cid in NO_RESPONSE or cid not in RESPONSE_CLASS:
            self._write_pdu(GenericNack(sequence_number=exc.sequence_number,
                                        command_status=exc.status))
            return
        # A known request with a bad field: its own response with the field's status.
        self._write_pdu(response_for(cls(sequence_number=exc.sequence_number), exc.status))

    def _refuse(self, pdu: Pdu, status: int) -> None:
        if pdu.command_id in NO_RESPONSE:
            self._write_pdu(GenericNack(sequence_number=pdu.sequence_number,
                                        command_status=status))
        else:
            self._write_pdu(response_for(pdu, status))

    def _response(self, command_id: int, status: int, seq: int, frame: bytes) -> Event | None:
        entry = self._awaiting.get(seq)
        if entry is None or (
            command_id != entry[0] | RESPONSE_BIT and command_id != C.GENERIC_NACK
        ):
            return StrayResponse(frame)
        del self._awaiting[seq]
        context = entry[2]
        if context is _ENQUIRE:
            self._enquire_seq = None
            return None
        if context is _UNBIND:
            self._close("unbound")
            return None
        if context is _BIND:
            pdu = decode(frame) if len(frame) > HEADER_SIZE or status == 0 else None
            if status == 0 and command_id != C.GENERIC_NACK:
                self.state = BIND_STATE[entry[0]]
                self.bound_at = self.last_rx
                return Bound(self.state, pdu)  # type: ignore[arg-type]
            self.state = State.OPEN
            return BindRefused(status, pdu)
        self._app_awaiting -= 1
        return Response(command_id, status, seq, frame, context)

    # --- the application's actions -------------------------------------------------

    def respond(self, request: Pdu, status: int = 0, **body: Any) -> Pdu:
        """Answer a request the link handed over (`body` holds the response's fields,
        `tlvs` among them); returns the response as it was queued."""
        response = response_for(request, status, **body)
        self._write_pdu(response)
        if request.command_id not in _OWN and self.peer_outstanding:
            self.peer_outstanding -= 1
        return response

    def send(self, pdu: Pdu, now: float, context: Any = None) -> int:
        """Send one of our requests; its Response (or ResponseTimeout) carries
        `context`. Returns its sequence number."""
        self._check_send(pdu.command_id)
        seq = pdu.sequence_number = self.next_sequence()
        self._write_pdu(pdu)
        self._await(seq, pdu.command_id, now, context)
        return seq

    def send_body(self, command_id: int, body: bytes, now: float, context: Any = None) -> int:
        """send() for a request whose body is already encoded (stored deliver_sm)."""
        self._check_send(command_id)
        seq = self.next_sequence()
        frame = HEADER.pack(HEADER_SIZE + len(body), command_id, 0, seq) + body
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._observe is not None:
            self._observe("out", command_id, 0)
        self._await(seq, command_id, now, context)
        return seq

    def notify(self, pdu: Pdu) -> None:
        """Send a request that has no response (alert_notification)."""
        pdu.sequence_number = self.next_sequence()
        self._write_pdu(pdu)

    def write_raw(self, data: bytes) -> None:
        """Queue bytes as they are, outside every rule (a test client sending what a
        broken peer would; its answers come back as StrayResponse)."""
        self._out.append(data)
        self._out_bytes += len(data)

    def _check_send(self, command_id: int) -> None:
        if self.state not in BOUND_STATES:
            raise LinkError(f"cannot send 0x{command_id:08X} in state {self.state.value}")
        if self._app_awaiting >= self.config.window_out:
            raise LinkError("the outgoing window is full")

    def _await(self, seq: int, command_id: int, now: float, context: Any) -> None:
        self._awaiting[seq] = (command_id, now + self.config.response_timeout, context)
        self._app_awaiting += 1

    # SMSC role ------------------------------------------------------------------

    def accept_bind(self, request: Pdu, now: float, *, window_in: int | None = None,
                    **body: Any) -> Pdu:
        """Answer a bind with ESME_ROK: the link is bound as the request asked."""
        if self.state is not State.BINDING:
            raise LinkError(f"no bind to accept in state {self.state.value}")
        response = response_for(request, 0, **body)
        self._write_pdu(response)
        self.state = BIND_STATE[request.command_id]
        self.bound_at = now
        self._bind_deadline = None
        if window_in is not None:
            self.window_in = window_in
        return response

    def refuse_bind(self, request: Pdu, status: int, **body: Any) -> None:
        """Answer a bind with an error; the ESME may try again until the bind time-out."""
        if self.state is not State.BINDING:
            raise LinkError(f"no bind to refuse in state {self.state.value}")
        self._write_pdu(response_for(request, status, **body))
        self.state = State.OPEN

    def outbind(self, system_id: str, password: str) -> None:
        """SMSC: ask the ESME at the other end of a connection we opened to bind."""
        if self.role is not Role.SMSC or self.state is not State.OPEN:
            raise LinkError("outbind is sent by an SMSC on an open link")
        self.notify(Outbind(system_id=system_id, password=password))

    # ESME role ------------------------------------------------------------------

    def bind(self, state: State, now: float, *, system_id: str, password: str,
             system_type: str = "", interface_version: int = INTERFACE_VERSION_34,
             **fields: Any) -> int:
        """ESME: send a bind for `state` (BOUND_TX/RX/TRX); Bound or BindRefused follows."""
        if self.role is not Role.ESME or self.state is not State.OPEN:
            raise LinkError("bind is sent by an ESME on an open link")
        pdu = BIND_CLASS[state](system_id=system_id, password=password,
                                system_type=system_type,
                                interface_version=interface_version, **fields)
        seq = pdu.sequence_number = self.next_sequence()
        self._write_pdu(pdu)
        self._awaiting[seq] = (pdu.command_id, now + self.config.response_timeout, _BIND)
        self.state = State.BINDING
        return seq

    # either role ----------------------------------------------------------------

    def unbind(self, now: float, reason: str = "unbind requested") -> None:
        """Leave the bound state: unbind, and close when answered or timed out. A link
        that is not bound just closes."""
        if self.state not in BOUND_STATES:
            if self.state is not State.UNBINDING:
                self._close(reason)
            return
        previous = self.state
        seq = self.next_sequence()
        self._write_pdu(Unbind(sequence_number=seq))
        self._awaiting[seq] = (C.UNBIND, now + self.config.response_timeout, _UNBIND)
        self.state = State.UNBINDING
        self._events.append(Unbound(previous, False, reason))

    def close(self, reason: str) -> None:
        """Give up the link at once (a Closed event follows)."""
        self._close(reason)

    def outstanding(self) -> list[tuple[int, Any]]:
        """(command_id, context) of the application's requests awaiting a response."""
        return [(cid, ctx) for cid, _, ctx in self._awaiting.values()
                if ctx not in (_ENQUIRE, _UNBIND, _BIND)]

    def connection_lost(self) -> list[tuple[int, Any]]:
        """The transport is gone: returns (command_id, context) of every application
        request that was still waiting for a response."""
        lost = self.outstanding()
        self._awaiting.clear()
        self._app_awaiting = 0
        self.state = State.CLOSED
        self._closing = True
        return lost

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        return data

    # --- time ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When handle_timer has something to do, at the earliest (None: nothing)."""
        if self.state is State.CLOSED:
            return None
        deadline = self._bind_deadline
        if self._awaiting:
            first = next(iter(self._awaiting.values()))[1]
            deadline = first if deadline is None else min(deadline, first)
        if self.state in BOUND_STATES:
            interval = self.config.enquire_link_interval
            if interval is not None and self._enquire_seq is None:
                due = self.last_rx + interval
                deadline = due if deadline is None else min(deadline, due)
            max_age = self.config.max_age
            if max_age is not None:
                due = self.bound_at + max_age
                deadline = due if deadline is None else min(deadline, due)
        return deadline

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`: time-outs, enquire_link, the maximum age."""
        if self.state is State.CLOSED:
            return
        if self._bind_deadline is not None and now >= self._bind_deadline and (
            self.state in (State.OPEN, State.BINDING)
        ):
            self._close("no bind within the bind time-out", BIND_TIMEOUT)
            return
        while self._awaiting:
            seq, (command_id, deadline, context) = next(iter(self._awaiting.items()))
            if deadline > now:
                break
            del self._awaiting[seq]
            if context is _ENQUIRE:
                self._close("enquire_link unanswered")
                return
            if context is _UNBIND:
                self._close("unbind unanswered")
                return
            if context is _BIND:
                self._close("bind unanswered")
                return
            self._app_awaiting -= 1
            self._events.append(ResponseTimeout(command_id, seq, context))
        if self.state not in BOUND_STATES:
            return
        max_age = self.config.max_age
        if max_age is not None and now >= self.bound_at + max_age:
            self.unbind(now, "the session reached its maximum age")
            return
        interval = self.config.enquire_link_interval
        if interval is not None and self._enquire_seq is None and now - self.last_rx >= interval:
            seq = self.next_sequence()
            self._write_pdu(EnquireLink(sequence_number=seq))
            self._awaiting[seq] = (C.ENQUIRE_LINK, now + self.config.response_timeout, _ENQUIRE)
            self._enquire_seq = seq

    # --- internals ---------------------------------------------------------------------

    def _write_pdu(self, pdu: Pdu) -> None:
        frame = encode(pdu)
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._observe is not None:
            self._observe("out", pdu.command_id, pdu.command_status)

    def _close(self, reason: str, abort: str = "") -> None:
        if self._closing:
            return
        self._closing = True
        self.state = State.CLOSED
        self._frames.clear()
        if abort:
            # Nothing more is sent to a peer we drop: what is queued is discarded.
            self._abort = abort
            self._out.clear()
            self._out_bytes = 0
        self._events.append(Closed(reason, abort))


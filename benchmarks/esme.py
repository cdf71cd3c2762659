"""One ESME connection of the load generator, on the project's SMPP link.

A `LinkProtocol` around a `pdu.link.Link` in the ESME role: the link frames, numbers,
windows and answers enquire_link and unbind; the session only counts. submit_sm goes
out as a body encoded once (`Link.send_body` packs only the header), the message_id
is read straight from the submit_sm_resp frame, every deliver_sm is answered, and
everything queued in one turn of the loop leaves in one write.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from benchmarks.load import LOST_ON_DISCONNECT, RESPONSE_TIMEOUT, Load
from gateway.link_protocol import LinkProtocol
from pdu.codec import HEADER_SIZE, CommandId, EnquireLink, Pdu
from pdu.fields import ESM_CLASS_MESSAGE_TYPE
from pdu.link import (
    BindRefused,
    Bound,
    Event,
    Link,
    LinkConfig,
    Request,
    Response,
    ResponseTimeout,
    Role,
    State,
    Unbound,
)
from pdu.tlv import Tag, as_cstr

SUBMIT_SM = CommandId.SUBMIT_SM
SUBMIT_SM_RESP = CommandId.SUBMIT_SM_RESP
DELIVER_SM = CommandId.DELIVER_SM
ENQUIRE_LINK = CommandId.ENQUIRE_LINK


def receipt_fields(pdu: Pdu) -> tuple[int, str, str]:
    """(esm_class, receipted message id, stat) of a deliver_sm.

    The id comes from the receipted_message_id TLV, or from `id:` in the receipt text
    when the TLV is absent; read by hand, not with the gateway's own receipt parser,
    so the generator checks what the gateway wrote.
    """
    text = pdu.short_message
    tlv = pdu.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
    message_id = as_cstr(tlv) if tlv else ""
    if not message_id:
        at = text.find(b"id:")
        if at >= 0:
            message_id = text[at + 3 :].split(b" ", 1)[0].decode("latin-1")
    stat = ""
    at = text.find(b"stat:")
    if at >= 0:
        stat = text[at + 5 :].split(b" ", 1)[0].decode("latin-1")
    return pdu.esm_class, message_id, stat


class _Probe:
    """The context of one of our enquire_link: when it was sent."""

    __slots__ = ("sent_at",)

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at


class EsmeSession(LinkProtocol):
    """One bound transceiver: sends submit_sm within its window, answers the SMSC."""

    def __init__(self, load: Load, system_id: str, password: str) -> None:
        config = load.config
        link = Link(
            LinkConfig(
                role=Role.ESME,
                window_out=config.window,
                # The run's own time limit bounds every wait; a lost answer is counted
                # when the connection goes.
                response_timeout=config.time_limit,
                # Idle mode sends its own, measured, enquire_link.
                enquire_link_interval=None,
            ),
            load.loop.time(),
            # The server's enquire_link, answered by the link, are counted where they
            # are the point (idle mode): a busy link is not probed, and an observer
            # would cost two calls per message.
            observe=self._observe if config.idle_seconds > 0 else None,
        )
        super().__init__(link)
        self.load = load
        self.system_id = system_id
        self.password = password
        self.windowed = config.rate is None and config.idle_seconds <= 0
        self.bound: asyncio.Future[int] = load.loop.create_future()
        self.closed: asyncio.Future[None] = load.loop.create_future()
        self.unbound = False

    # --- LinkProtocol ------------------------------------------------------------------

    def on_open(self) -> None:
        self.link.bind(State.BOUND_TRX, self.loop.time(), system_id=self.system_id,
                       password=self.password)

    def handle_event(self, event: Event) -> None:
        if type(event) is Response:
            self._response(event)
        else:
            self._other(event)

    def _other(self, event: Event) -> None:
        kind = type(event)
        if kind is Request:
            self._request(event.pdu)  # type: ignore[union-attr]
        elif kind is Bound or kind is BindRefused:
            status = 0 if kind is Bound else event.status  # type: ignore[union-attr]
            if not self.bound.done():
                self.bound.set_result(status)
        elif kind is ResponseTimeout:
            if event.command_id == SUBMIT_SM:  # type: ignore[union-attr]
                self.load.unanswered(RESPONSE_TIMEOUT, 1)
        elif kind is Unbound:
            self.unbound = True  # by the server, or by us at the end of the load

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        if not self.unbound:
            self.load.disconnects += 1
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind_resp"))
        if not self.closed.done():
            self.closed.set_result(None)
        lost = sum(1 for command_id, _ in awaiting if command_id == SUBMIT_SM)
        if lost:
            self.load.unanswered(LOST_ON_DISCONNECT, lost)

    def _observe(self, direction: str, command_id: int, status: int) -> None:
        # The link answers the server's enquire_link itself; this is where they are seen.
        if command_id == ENQUIRE_LINK and direction == "in":
            self.load.server_enquire_links += 1

    # --- what comes in -----------------------------------------------------------------

    def _response(self, event: Response) -> None:
        # The hot path: one call per submit_sm_resp, one submit_sm sent in its place.
        now = perf_counter()
        load = self.load
        sent_at = event.context
        if type(sent_at) is _Probe:
            load.enquire_latencies.append(now - sent_at.sent_at)
            return
        load.responses += 1
        status = event.command_status
        load.statuses[status] += 1
        load.submit_latencies.append(now - sent_at)
        load.last_response_at = now
        if status == 0 and event.command_id == SUBMIT_SM_RESP:
            load.accepted += 1
            if load.track_dlrs:
                frame = event.frame
                end = frame.find(b"\x00", HEADER_SIZE)
                message_id = frame[HEADER_SIZE : end if end >= 0 else len(frame)]
                load.message_accepted(message_id.decode("latin-1"), sent_at)
        if not load.remaining:
            load.check_finished()
        elif self.windowed:
            # One answered, one more sent: the window stays full.
            load.remaining -= 1
            load.submitted += 1
            link = self.link
            link.send_body(SUBMIT_SM, load.submit_body, link.last_rx, now)

    def _request(self, pdu: Pdu) -> None:
        load = self.load
        if pdu.command_id == DELIVER_SM:
            esm_class, message_id, stat = receipt_fields(pdu)
            if esm_class & ESM_CLASS_MESSAGE_TYPE:
                load.dlr(message_id, stat, perf_counter())
                load.check_finished()
            else:
                load.other_deliver_sm += 1
        # Answered inside the turn: the write at its end carries the response.
        self.link.respond(pdu)

    # --- sending ------------------------------------------------------------------------

    def send_submits(self, count: int) -> int:
        """Send up to `count` (bounded by the window); returns how many went out."""
        link = self.link
        count = min(count, link.window_free())
        if count <= 0 or not link.can_transmit or self.transport is None \
                or self.transport.is_closing():
            return 0
        now, sent_at = self.loop.time(), perf_counter()
        body = self.load.submit_body
        for _ in range(count):
            link.send_body(SUBMIT_SM, body, now, sent_at)
        self.load.submitted += count
        self.kick()
        return count

    def enquire_link(self) -> None:
        if not self.link.bound or self.transport is None or self.transport.is_closing():
            return
        self.link.send(EnquireLink(), self.loop.time(), context=_Probe(perf_counter()))
        self.load.enquire_sent += 1
        self.kick()

    async def leave(self, timeout: float = 5.0) -> None:
        """Unbind, wait for the answer (or `timeout`), close."""
        if self.transport is None or self.transport.is_closing():
            return
        self.unbound = True
        self.unbind("end of the load")
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            pass
        self.transport.close()

"""The asyncio shell around a `pdu.link.Link`, shared by every SMPP connection we hold.

It feeds the socket's bytes to the link, hands the link's events to `handle_event`,
writes what the link queued once per turn of the event loop (a group commit that
releases a hundred responses costs one write), and keeps one timer armed at the link's
next deadline. A flood is handled `FRAMES_PER_TURN` events at a time with reading
paused in between, so one client cannot hold the loop. Subclasses say what the events
mean (the customer session, the upstream connector's links, the simulator, the load
generator, the tests' client).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pdu.codec import Pdu
from pdu.link import Closed, Event, Link

# Events handled per turn of the event loop before other connections get theirs.
FRAMES_PER_TURN = 64


class LinkProtocol(asyncio.Protocol):
    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._scheduled = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed_transport = False

    # --- what subclasses say --------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """One event of the link (a Closed event is acted on here after this call)."""

    def on_open(self) -> None:
        """The connection is up (send a bind, or outbind, here)."""

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        """The connection is gone; `awaiting` are our requests left unanswered."""

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.on_open()
        self.kick()

    def data_received(self, data: bytes) -> None:
        self.link.receive_data(data, self.loop.time())
        if not self._paused:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.on_lost(self.link.connection_lost(), exc)

    # --- acting on the link ------------------------------------------------------------

    def kick(self) -> None:
        """Something was queued on the link: write it (and handle new events) this turn."""
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._process)

    def respond(self, request: Pdu, status: int = 0, **body: Any) -> Pdu:
        response = self.link.respond(request, status, **body)
        self.kick()
        return response

    def send(self, pdu: Pdu, context: Any = None) -> int:
        seq = self.link.send(pdu, self.loop.time(), context)
        self.kick()
        return seq

    def close(self, reason: str = "closed by us") -> None:
        self.link.close(reason)
        self.kick()

    def unbind(self, reason: str = "unbind requested") -> None:
        self.link.unbind(self.loop.time(), reason)
        self.kick()

    # --- the turn ----------------------------------------------------------------------

    def _process(self) -> None:
        self._scheduled = False
        link = self.link
        closed = False
        handled = 0
        while handled < FRAMES_PER_TURN:
            event = link.next_event()
            if event is None:
                break
            handled += 1
            self.handle_event(event)
            if type(event) is Closed:
                closed = True
        transport = self.transport
        if transport is None:
            return
        if handled == FRAMES_PER_TURN and not closed:
            # More may wait: give other connections a turn, and stop reading meanwhile.
            if not self._paused:
                self._paused = True
                transport.pause_reading()
            self.kick()
        elif self._paused:
            self._paused = False
            transport.resume_reading()
        data = link.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if link.closing:
            if not self._closed_transport:
                self._closed_transport = True
                transport.close()
            return
        self._arm(link.next_deadline())

    def _arm(self, deadline: float | None) -> None:
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # Only ever moved earlier: a timer firing early finds nothing due and re-arms,
        # which costs less than re-arming on every received byte.
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.link.handle_timer(self.loop.time())
        self._process()

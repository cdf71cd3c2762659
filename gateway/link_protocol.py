"""The asyncio shell around a `pdu.link.Link`, shared by every SMPP connection we hold.

It feeds the socket's bytes to the link, hands the link's events to `handle_event`,
writes what the link queued once per turn of the event loop (a group commit that
releases a hundred responses costs one write), and keeps one timer armed at the link's
next deadline. A flood is handled `FRAMES_PER_TURN` events (`LINK_FRAMES_PER_TURN`
frames) at a time with reading paused in between, so one client cannot hold the loop.

Output is back-pressured: while the transport's buffer is above its high-water mark
(asyncio's pause_writing) the connection is not read and its events wait, so a peer
that does not read cannot make us queue answers for it; past the link's
`max_unsent_bytes` the connection is dropped (aborted: closing would wait to flush to
a peer that does not read), and a close that does not drain within `CLOSE_GRACE` is
too. Subclasses say what the events mean (the customer session, the upstream
connector's links, the simulator, the load generator, the tests' client).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pdu.codec import Pdu
from pdu.link import Closed, Event, Link

log = logging.getLogger(__name__)

# Events handled per turn of the event loop before other connections get theirs.
FRAMES_PER_TURN = 64
# Frames handled per turn, the ones the link answers itself (enquire_link, requests
# refused before a bind) included: cheap, but a read of 256 KiB of them is some ten
# thousand, and uvloop reads on while reading is not paused, timers waiting meanwhile.
LINK_FRAMES_PER_TURN = 16 * FRAMES_PER_TURN
# Seconds a closed connection may take to hand its last bytes to the peer before it is
# aborted (a peer that does not read would hold it, and its buffer, for ever).
CLOSE_GRACE = 5.0

# Why a connection was dropped (aborted), beside the link's own causes: fit for labels.
MAX_UNSENT_BYTES = "max_unsent_bytes"
UNREAD_AT_CLOSE = "unread_at_close"


class LinkProtocol(asyncio.Protocol):
    close_grace = CLOSE_GRACE

    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._scheduled = False
        # Reading is paused while a turn's budget of events ran out or while the
        # transport's buffer is above its high-water mark (writing paused).
        self._budget_spent = False
        self._writing_paused = False
        self._reading_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._grace: asyncio.TimerHandle | None = None
        self._close_reason = ""
        self._shut = False  # the transport was closed or aborted

    # --- what subclasses say --------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """One event of the link (a Closed event is acted on here after this call)."""

    def on_open(self) -> None:
        """The connection is up (send a bind, or outbind, here)."""

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        """The connection is gone; `awaiting` are our requests left unanswered."""

    def on_dropped(self, cause: str) -> None:
        """The connection is being aborted: `cause` is the link's (BIND_TIMEOUT,
        UNBOUND_ENQUIRE_LINK) or ours (MAX_UNSENT_BYTES, UNREAD_AT_CLOSE)."""

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.on_open()
        self.kick()

    def data_received(self, data: bytes) -> None:
        self.link.receive_data(data, self.loop.time())
        if not self._reading_paused:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._shut = True
        for handle in (self._timer, self._grace):
            if handle is not None:
                handle.cancel()
        self._timer = self._grace = None
        self.on_lost(self.link.connection_lost(), exc)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._sync_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._sync_reading()
        self.kick()

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

    @property
    def unsent_bytes(self) -> int:
        """What this connection holds for its peer: the transport's buffer and the link's."""
        transport = self.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return buffered + self.link.unsent_bytes

    # --- the turn ----------------------------------------------------------------------

    def _process(self) -> None:
        self._scheduled = False
        transport = self.transport
        if transport is None or self._shut:
            return
        link = self.link
        more = False
        if not self._writing_paused:
            more = self._handle_events(FRAMES_PER_TURN)
        if link.closing:
            # The link takes no more frames: its last events are few, handle them all.
            self._handle_events(None)
            self._shut_down(transport)
            return
        if more:
            # More may wait: give other connections a turn, and stop reading meanwhile.
            self.kick()
        if more != self._budget_spent:
            self._budget_spent = more
            self._sync_reading()
        if not self._writing_paused:
            data = link.data_to_send()
            if data:
                transport.write(data)  # may pause writing at once
        if self._writing_paused:
            cap = link.config.max_unsent_bytes
            if cap is not None and self.unsent_bytes > cap:
                self._drop(MAX_UNSENT_BYTES, f"more than {cap} bytes unsent (the peer does "
                                             "not read)")
                return
        self._arm(link.next_deadline())

    def _handle_events(self, budget: int | None) -> bool:
        """Hand over up to `budget` events, from as many frames as `LINK_FRAMES_PER_TURN`
        allows for `FRAMES_PER_TURN` events (None: all, from all frames received);
        True when the budget ran out. Frames the link answers itself make no event and
        would otherwise all be handled in one call, a whole read of them."""
        link = self.link
        if budget is None:
            while (event := link.next_event()) is not None:
                self._hand_over(event)
            return False
        frame_budget = budget * LINK_FRAMES_PER_TURN // FRAMES_PER_TURN
        handled = 0
        start = link.frames_in
        while handled < budget:
            frames_left = frame_budget - (link.frames_in - start)
            if frames_left <= 0:
                break
            event = link.next_event(frames_left)
            if event is None:
                # All received is handled, unless the frame budget stopped it.
                if link.frames_in - start < frame_budget:
                    return False
                break
            handled += 1
            self._hand_over(event)
        return not link.closing

    def _hand_over(self, event: Event) -> None:
        self.handle_event(event)
        if type(event) is Closed:
            self._close_reason = event.reason

    def _sync_reading(self) -> None:
        transport = self.transport
        if transport is None or self._shut or transport.is_closing():
            return
        paused = self._budget_spent or self._writing_paused
        if paused != self._reading_paused:
            self._reading_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _shut_down(self, transport: asyncio.Transport) -> None:
        """The link closed: drop the connection if it says so, else send what is left
        and close, aborting if the peer has not taken it within the grace."""
        link = self.link
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cause = link.abort_cause
        if cause:
            self._drop(cause, self._close_reason)
            return
        data = link.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        cap = link.config.max_unsent_bytes
        if cap is not None and transport.get_write_buffer_size() > cap:
            self._drop(MAX_UNSENT_BYTES, f"more than {cap} bytes unsent at close")
            return
        self._shut = True
        transport.close()
        if transport.get_write_buffer_size():
            self._grace = self.loop.call_later(self.close_grace, self._unread_at_close)

    def _unread_at_close(self) -> None:
        self._grace = None
        transport = self.transport
        if transport is not None:
            self._drop(UNREAD_AT_CLOSE,
                       f"the peer did not read what was left within {self.close_grace:g}s "
                       "of the close")

    def _drop(self, cause: str, detail: str) -> None:
        """Abort the connection: nothing more is sent, nothing waits for the peer."""
        transport = self.transport
        self._shut = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.on_dropped(cause)
        level = logging.WARNING if cause == MAX_UNSENT_BYTES else logging.INFO
        if log.isEnabledFor(level):
            peer = transport.get_extra_info("peername") if transport is not None else None
            log.log(level, "%s: connection dropped (%s): %s", _peer_label(peer), cause, detail)
        if transport is not None:
            transport.abort()

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
        if self._shut:
            return
        self.link.handle_timer(self.loop.time())
        self._process()


def _peer_label(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "?")

"""A small asyncio ESME on the project's SMPP link (`pdu.link`, ESME role), for tests
that need exact control of what goes on the wire; third-party clients cover real-world
behaviour. It reads only while a test reads, so a test that stops reading is a peer
that answers nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pdu.codec import RESPONSE_BIT, BindTransceiver, Pdu, encode
from pdu.link import (
    BIND_STATE,
    NO_RESPONSE,
    BindRefused,
    Bound,
    Closed,
    Event,
    Link,
    LinkConfig,
    Request,
    Response,
    Role,
    State,
    StrayResponse,
    allowed,
)

CONFIG = LinkConfig(
    role=Role.ESME,
    enquire_link_interval=None,
    # The gateway's windows are what tests probe, not ours.
    window_out=1 << 30,
    response_timeout=3600.0,
)


def _fields(pdu: Pdu) -> dict[str, Any]:
    """The body of a PDU as keyword arguments (its mandatory fields and its TLVs)."""
    body = {name: getattr(pdu, name) for name, *_ in pdu.FIELDS}
    body["tlvs"] = list(pdu.tlvs)
    return body


class RawClient:
    """The link numbers, frames and matches answers; it never probes by itself and
    nothing is refused for our own window. What a test sends outside the rules (before
    a bind, a second bind, a fixed sequence number, an outbind, raw bytes) is written
    as it is, and the answers come back as stray responses, which `read` returns like
    any other. Requests from the gateway are the test's to answer, but enquire_link and
    unbind, which the link answers itself: `wait_received` says when one came."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.loop = asyncio.get_running_loop()
        self.received: list[int] = []  # command_id of every PDU in, in order
        self.link = Link(CONFIG, self.loop.time(), observe=self._observe)
        # Requests from the gateway the test has not answered yet, by sequence number.
        self._unanswered: dict[int, Pdu] = {}
        # PDUs read while waiting for something else (`wait_received`), for `read`.
        self._backlog: deque[Pdu] = deque()
        self._waited = 0
        self._closed = ""

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def next_seq(self) -> int:
        return self.link.next_sequence()

    # --- sending ------------------------------------------------------------------------

    async def send(self, pdu: Pdu) -> int:
        """Send one PDU; returns its sequence number (given by the link unless set)."""
        link = self.link
        now = self.loop.time()
        cid = pdu.command_id
        if pdu.is_response:
            request = self._unanswered.pop(pdu.sequence_number, None)
            if request is not None and (request.command_id | RESPONSE_BIT) == cid:
                link.respond(request, pdu.command_status, **_fields(pdu))
            else:
                link.write_raw(encode(pdu))
        elif pdu.sequence_number:
            link.write_raw(encode(pdu))
        elif cid in BIND_STATE and link.state is State.OPEN:
            pdu.sequence_number = link.bind(BIND_STATE[cid], now, **_fields(pdu))
        # What an SMSC's table lets an ESME send in this state goes through the link.
        elif link.bound and allowed(Role.SMSC, link.state, cid) == 0:
            link.send(pdu, now)
        else:
            pdu.sequence_number = link.next_sequence()
            link.write_raw(encode(pdu))
        self._flush()
        await self.writer.drain()
        return pdu.sequence_number

    async def send_raw(self, data: bytes) -> None:
        self.link.write_raw(data)
        self._flush()
        await self.writer.drain()

    async def request(self, pdu: Pdu, timeout: float = 5.0) -> Pdu:
        seq = await self.send(pdu)
        while True:
            answer = await self.read(timeout)
            if answer.sequence_number == seq and answer.is_response:
                return answer

    async def bind(self, system_id: str, password: str, cls=BindTransceiver) -> Pdu:
        return await self.request(cls(system_id=system_id, password=password))

    # --- reading ------------------------------------------------------------------------

    async def read(self, timeout: float = 5.0) -> Pdu:
        """The next PDU from the gateway (requests and responses, in order), but for
        enquire_link and unbind, which the link answers. ConnectionError once closed."""
        while not self._backlog:
            await self._receive(timeout)
        return self._backlog.popleft()

    async def wait_received(self, command_id: int, timeout: float = 5.0) -> None:
        """Until the gateway has sent `command_id` (since the last call), reading on;
        for enquire_link and unbind, which `read` never returns."""
        loop = self.loop
        deadline = loop.time() + timeout
        while command_id not in self.received[self._waited :]:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no 0x{command_id:08X} within {timeout}s")
            try:
                await self._receive(left)
            except ConnectionError:
                if command_id in self.received[self._waited :]:
                    break
                raise
        self._waited = self.received.index(command_id, self._waited) + 1

    async def _receive(self, timeout: float) -> None:
        """Read once from the socket and let the link handle it; PDUs go to the backlog."""
        if self._closed:
            raise ConnectionError(self._closed)
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            self._closed = "connection closed by the gateway"
            raise ConnectionError(self._closed)
        link = self.link
        now = self.loop.time()
        link.receive_data(data, now)
        deadline = link.next_deadline()
        if deadline is not None and deadline <= now:
            link.handle_timer(now)
        while (event := link.next_event()) is not None:
            pdu = self._pdu_of(event)
            if pdu is not None:
                self._backlog.append(pdu)
        self._flush()

    def _pdu_of(self, event: Event) -> Pdu | None:
        kind = type(event)
        if kind is Request:
            pdu = event.pdu  # type: ignore[union-attr]
            if pdu.command_id not in NO_RESPONSE:
                self._unanswered[pdu.sequence_number] = pdu
            return pdu
        if kind is Response or kind is StrayResponse:
            return event.pdu()  # type: ignore[union-attr]
        if kind is Bound or kind is BindRefused:
            return event.response  # type: ignore[union-attr]
        if kind is Closed:
            self._closed = f"link closed: {event.reason}"  # type: ignore[union-attr]
            self._flush()
            self.writer.close()
        # ResponseTimeout (an hour) and Unbound (seen in `received`) carry no PDU.
        return None

    def _observe(self, direction: str, command_id: int, status: int) -> None:
        if direction == "in":
            self.received.append(command_id)

    def _flush(self) -> None:
        data = self.link.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

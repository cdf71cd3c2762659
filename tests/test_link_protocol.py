"""gateway.link_protocol: the asyncio adapter's back-pressure, driven through a fake
transport whose buffer the test fills and drains. While writing is paused the
connection is not read and its events wait; past max_unsent_bytes, at a dropping
close (bind time-out) and when a close does not drain, the transport is aborted."""

from __future__ import annotations

import asyncio

from gateway.link_protocol import LINK_FRAMES_PER_TURN, LinkProtocol
from pdu.codec import BindTransceiver, CommandId, EnquireLink, SubmitSm, encode
from pdu.framing import Framer
from pdu.link import Link, LinkConfig, Request, Role


class FakeTransport(asyncio.Transport):
    """Keeps what is written in `buffered` until the test drains it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.buffered = 0
        self.reading = True
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default=None):
        return ("192.0.2.1", 40000) if name == "peername" else default


class Recorder(LinkProtocol):
    def __init__(self, **config) -> None:
        super().__init__(Link(LinkConfig(role=Role.SMSC, **config),
                              asyncio.get_running_loop().time()))
        self.events: list = []
        self.dropped: list[str] = []

    def handle_event(self, event) -> None:
        self.events.append(event)
        if type(event) is Request and event.pdu.command_id == CommandId.BIND_TRANSCEIVER:
            self.link.accept_bind(event.pdu, self.loop.time(), system_id="gw")


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def connected(**config) -> tuple[Recorder, FakeTransport]:
    protocol, transport = Recorder(**config), FakeTransport()
    protocol.on_dropped = protocol.dropped.append  # type: ignore[method-assign]
    protocol.connection_made(transport)
    await turn()
    return protocol, transport


async def test_paused_writing_stops_reading_and_events_until_resumed():
    protocol, transport = await connected()
    protocol.pause_writing()
    assert not transport.reading
    protocol.data_received(encode(BindTransceiver(sequence_number=1, system_id="a")))
    protocol.kick()
    await turn()
    assert protocol.events == []
    protocol.resume_writing()
    assert transport.reading
    await turn()
    assert len(protocol.events) == 1 and transport.reading


async def test_answers_held_while_paused_are_written_when_resumed():
    protocol, transport = await connected()
    protocol.data_received(encode(EnquireLink(sequence_number=1)))
    assert len(transport.written) == 16  # answered in the same turn
    protocol.pause_writing()
    protocol.link.respond(SubmitSm(sequence_number=2))  # an answer the application gives
    protocol.kick()
    await turn()
    assert len(transport.written) == 16 and protocol.unsent_bytes == 16 + 17
    transport.buffered = 0
    protocol.resume_writing()
    await turn()
    assert len(transport.written) == 16 + 17 and not transport.aborted


async def test_unsent_output_past_max_unsent_bytes_aborts():
    protocol, transport = await connected(max_unsent_bytes=1000)
    protocol.data_received(encode(BindTransceiver(sequence_number=1, system_id="a")))
    await turn()
    transport.buffered = 990  # the peer stopped reading
    protocol.pause_writing()
    protocol.link.respond(SubmitSm(sequence_number=2))
    protocol.kick()
    await turn()
    assert transport.aborted and not transport.closed
    assert protocol.dropped == ["max_unsent_bytes"]


async def test_bind_timeout_aborts_and_sends_nothing():
    protocol, transport = await connected(bind_timeout=0.05)
    protocol.data_received(encode(SubmitSm(sequence_number=1)))  # answered RINVBNDSTS
    protocol.pause_writing()  # and the peer does not read
    protocol.data_received(encode(SubmitSm(sequence_number=2)))
    await asyncio.sleep(0.1)
    assert transport.aborted and not transport.closed
    assert protocol.dropped == ["bind_timeout"]


def answers(transport: FakeTransport) -> int:
    framer = Framer()
    framer.receive_data(transport.written)
    return len(framer.frames())


async def test_a_flood_the_link_refuses_itself_is_handled_a_budget_a_turn():
    # Refused before a bind, these make no event: they count against the turn's budget
    # all the same, else one read of them holds the loop and the bind timer with it.
    protocol, transport = await connected()
    flood = 3 * LINK_FRAMES_PER_TURN + 10
    protocol.data_received(b"".join(encode(SubmitSm(sequence_number=i))
                                    for i in range(1, flood + 1)))
    assert answers(transport) == LINK_FRAMES_PER_TURN and not transport.reading
    for _ in range(4):  # the rest, a budget a turn, then reading again
        await turn()
    assert answers(transport) == flood and transport.reading
    assert protocol.events == []


async def test_close_that_does_not_drain_is_aborted_after_the_grace():
    protocol, transport = await connected()
    protocol.close_grace = 0.05
    transport.buffered = 500
    protocol.close("closed by us")
    await turn()
    assert transport.closed and not transport.aborted
    await asyncio.sleep(0.1)
    assert transport.aborted and protocol.dropped == ["unread_at_close"]


async def test_close_that_drains_is_not_aborted():
    protocol, transport = await connected()
    protocol.close_grace = 0.05
    protocol.close("closed by us")
    await turn()
    assert transport.closed
    protocol.connection_lost(None)
    await asyncio.sleep(0.1)
    assert not transport.aborted and protocol.dropped == []

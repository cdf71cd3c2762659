"""Helpers for interop tests: a relay that records the submit_sm a third-party client
puts on the wire (before the gateway normalises anything), and a bounded wait.

The relay parses only the SMPP header and the address fields itself, so what it reports
does not depend on the gateway's own codec.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number


@dataclass(frozen=True, slots=True)
class WireSubmit:
    """A submit_sm as the client sent it, and the gateway's answer to it."""

    source_addr: str
    source_ton: int
    source_npi: int
    dest_addr: str
    dest_ton: int
    dest_npi: int
    esm_class: int
    data_coding: int
    command_status: int | None = None
    message_id: str | None = None


def _cstr(body: bytes, offset: int) -> tuple[str, int]:
    end = body.index(b"\0", offset)
    return body[offset:end].decode("latin-1"), end + 1


def parse_submit_sm(body: bytes) -> WireSubmit:
    """The address fields, esm_class and data_coding of a submit_sm body."""
    _service_type, at = _cstr(body, 0)
    source_ton, source_npi = body[at], body[at + 1]
    source_addr, at = _cstr(body, at + 2)
    dest_ton, dest_npi = body[at], body[at + 1]
    dest_addr, at = _cstr(body, at + 2)
    esm_class = body[at]
    at += 3  # esm_class, protocol_id, priority_flag
    _schedule, at = _cstr(body, at)
    _validity, at = _cstr(body, at)
    data_coding = body[at + 2]  # after registered_delivery, replace_if_present_flag
    return WireSubmit(source_addr, source_ton, source_npi, dest_addr, dest_ton, dest_npi,
                      esm_class, data_coding)


class SubmitTap:
    """A loopback TCP relay in front of the gateway's SMPP port.

    Every byte passes through unchanged, PDU by PDU; each submit_sm from the client is
    recorded with the submit_sm_resp that answered it (paired by sequence_number within
    its connection), in the order the client sent them.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.submits: list[WireSubmit] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def answered(self) -> list[WireSubmit]:
        return [s for s in self.submits if s.command_status is not None]

    def accepted(self) -> list[WireSubmit]:
        return [s for s in self.submits if s.command_status == 0]

    async def _accept(self, client_r, client_w) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            gw_r, gw_w = await asyncio.open_connection(*self.target)
            pending: dict[int, int] = {}  # sequence_number -> index in self.submits
            await asyncio.gather(
                self._relay(client_r, gw_w, lambda h, b: self._from_client(h, b, pending)),
                self._relay(gw_r, client_w, lambda h, b: self._from_gateway(h, b, pending)),
                return_exceptions=True,
            )
        finally:
            client_w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _relay(reader, writer, inspect: Callable[[tuple, bytes], None]) -> None:
        try:
            while True:
                head = await reader.readexactly(HEADER.size)
                header = HEADER.unpack(head)
                body = await reader.readexactly(header[0] - HEADER.size)
                inspect(header, body)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _from_client(self, header: tuple, body: bytes, pending: dict[int, int]) -> None:
        if header[1] == SUBMIT_SM:
            pending[header[3]] = len(self.submits)
            self.submits.append(parse_submit_sm(body))

    def _from_gateway(self, header: tuple, body: bytes, pending: dict[int, int]) -> None:
        if header[1] != SUBMIT_SM_RESP or header[3] not in pending:
            return
        index = pending.pop(header[3])
        message_id = body.split(b"\0", 1)[0].decode() if body else None
        self.submits[index] = replace(
            self.submits[index], command_status=header[2], message_id=message_id or None
        )


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` every 50 ms; AssertionError naming `what` after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)

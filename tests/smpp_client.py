"""A small asyncio ESME built on our codec, for tests that need exact control of
what goes on the wire (third-party clients cover real-world behaviour)."""

from __future__ import annotations

import asyncio

from pdu.codec import BindTransceiver, Pdu, decode, encode
from pdu.framing import Framer


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._framer = Framer()
        self._frames: list[bytes] = []
        self.seq = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, pdu: Pdu) -> None:
        if not pdu.sequence_number:
            pdu.sequence_number = self.next_seq()
        self.writer.write(encode(pdu))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout: float = 5.0) -> Pdu:
        while not self._frames:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionError("connection closed by the gateway")
            self._framer.receive_data(data)
            self._frames.extend(self._framer.frames())
        return decode(self._frames.pop(0))

    async def request(self, pdu: Pdu, timeout: float = 5.0) -> Pdu:
        await self.send(pdu)
        while True:
            answer = await self.read(timeout)
            if answer.sequence_number == pdu.sequence_number and answer.is_response:
                return answer

    async def bind(self, system_id: str, password: str, cls=BindTransceiver) -> Pdu:
        return await self.request(cls(system_id=system_id, password=password))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass

"""The floor (scenario 7): the least an SMPP server in Python and asyncio must do.

It frames with `pdu.framing.Framer`, fully decodes every PDU with `pdu.codec.decode`,
answers binds with ESME_ROK, submit_sm with a fresh message_id, enquire_link and
unbind, and nothing else: no authentication, no store, no accounting. Whatever the
gateway measures can be read as a fraction of this, on the same machine and loop.

Run: ``python -m benchmarks.floor --port 0``; it prints ``floor: listening on
HOST:PORT`` and then ``floor: ready``, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys

from pdu.codec import HEADER, CommandId, PduError, decode
from pdu.framing import Framer, FramingError

_BIND_RESP_BODY = b"floor\x00"
_BIND_RESP = {
    CommandId.BIND_TRANSMITTER: CommandId.BIND_TRANSMITTER_RESP,
    CommandId.BIND_RECEIVER: CommandId.BIND_RECEIVER_RESP,
    CommandId.BIND_TRANSCEIVER: CommandId.BIND_TRANSCEIVER_RESP,
}


class FloorSession(asyncio.Protocol):
    """One connection: decode everything, answer the four requests a load needs."""

    def __init__(self, ids: itertools.count) -> None:
        self._framer = Framer()
        self._ids = ids
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._framer.receive_data(data)
        try:
            frames = self._framer.frames()
        except FramingError:
            self.transport.close()
            return
        out: list[bytes] = []
        for frame in frames:
            try:
                pdu = decode(frame)
            except PduError:
                continue
            cid, seq = pdu.command_id, pdu.sequence_number
            if cid == CommandId.SUBMIT_SM:
                body = b"%d\x00" % next(self._ids)
                out.append(HEADER.pack(16 + len(body), CommandId.SUBMIT_SM_RESP, 0, seq) + body)
            elif cid == CommandId.ENQUIRE_LINK:
                out.append(HEADER.pack(16, CommandId.ENQUIRE_LINK_RESP, 0, seq))
            elif cid in _BIND_RESP:
                out.append(HEADER.pack(16 + len(_BIND_RESP_BODY), _BIND_RESP[cid], 0, seq)
                           + _BIND_RESP_BODY)
            elif cid == CommandId.UNBIND:
                out.append(HEADER.pack(16, CommandId.UNBIND_RESP, 0, seq))
        if out:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    ids = itertools.count(1)
    server = await loop.create_server(lambda: FloorSession(ids), host, port, backlog=1024)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    print(f"floor: listening on {bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("floor: ready", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from benchmarks.loadgen import run

    run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

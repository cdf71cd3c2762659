"""The SMSC simulator as a standalone SMPP server: a real upstream on another port.

    python -m gateway.smsc_sim --port 2776 --latency-ms 200 \\
        --mix delivered=0.9,undeliverable=0.05,expired=0.03,rejected=0.02 \\
        --mo-rate 0.5 --mo-to 33700000001

Any bind is accepted unless --system-id/--password are given. Every accepted submit_sm
gets an id and, after the latency, a receipt with an outcome drawn from the mix
(throttled/refused answer the submit_sm itself). Receipts wait for a bound RX/TRX
session, as a real SMSC keeps them for an absent ESME; on SIGTERM the simulator stops
reading, answers what it read, and saves undelivered receipts to --state, which the
next start sends, so stopping and starting it loses nothing. --log appends one JSON
line per accepted message, so tests can count what reached the "network".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from gateway.simulator import SUBMIT_ERRORS, SimulatedNetwork
from gateway.wire import BatchedOutput
from pdu.codec import (
    HEADER_SIZE,
    RESPONSE_BIT,
    CommandId,
    DeliverSm,
    GenericNack,
    Pdu,
    PduError,
    decode,
    encode,
    response_for,
)
from pdu.framing import Framer, FramingError
from pdu.status import CommandStatus
from pdu.text import decode_short_message

log = logging.getLogger("smsc_sim")

BIND_REQUESTS = {CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER}
RECEIVES = {CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER}
TRANSMITS = {CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER}
DELIVER_WINDOW = 10
REDELIVER_DELAY = 1.0


class SimSession(BatchedOutput, asyncio.Protocol):
    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.framer = Framer()
        self.init_output(asyncio.get_running_loop())
        self.bind: int | None = None
        self.seq = 0
        self.outstanding: dict[int, bytes] = {}  # seq -> deliver_sm frame awaiting resp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)
        # Receipts sent but not acknowledged go back to the queue.
        for frame in self.outstanding.values():
            self.server.queue.appendleft(frame[HEADER_SIZE:])
        self.outstanding.clear()
        self.server.pump()

    def data_received(self, data: bytes) -> None:
        self.framer.receive_data(data)
        try:
            frames = self.framer.frames()
        except FramingError:
            self.close()
            return
        for frame in frames:
            try:
                pdu = decode(frame)
            except PduError as exc:
                if not exc.command_id & RESPONSE_BIT:
                    self.send(GenericNack(sequence_number=exc.sequence_number,
                                          command_status=exc.status))
                continue
            self.handle(pdu)

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()

    @property
    def can_receive(self) -> bool:
        return self.bind in RECEIVES and len(self.outstanding) < DELIVER_WINDOW

    def deliver(self, body: bytes) -> None:
        self.seq = self.seq % 0x7FFFFFFF + 1
        frame = (16 + len(body)).to_bytes(4, "big") + int(CommandId.DELIVER_SM).to_bytes(
            4, "big") + bytes(4) + self.seq.to_bytes(4, "big") + body
        self.outstanding[self.seq] = frame
        self.write(frame)

    def handle(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        server = self.server
        if cid in BIND_REQUESTS:
            ok = server.check_credentials(pdu)
            self.send(response_for(pdu, 0 if ok else CommandStatus.ESME_RINVPASWD,
                                   system_id="smsc_sim"))
            if ok:
                self.bind = cid
                server.pump()
        elif cid == CommandId.SUBMIT_SM:
            if self.bind not in TRANSMITS:
                self.send(response_for(pdu, CommandStatus.ESME_RINVBNDSTS))
                return
            status, upstream_id = server.accept(pdu)
            self.send(response_for(pdu, status, message_id=upstream_id))
        elif cid == CommandId.DELIVER_SM_RESP:
            frame = self.outstanding.pop(pdu.sequence_number, None)
            if frame is not None and pdu.command_status != 0:
                self.loop.call_later(REDELIVER_DELAY, server.requeue, frame[HEADER_SIZE:])
            server.pump()
        elif cid == CommandId.ENQUIRE_LINK:
            self.send(response_for(pdu))
        elif cid == CommandId.UNBIND:
            self.send(response_for(pdu))
            self.bind = None
            self.close()
        elif not cid & RESPONSE_BIT:
            self.send(response_for(pdu, CommandStatus.ESME_RINVCMDID))


class SimServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.network = SimulatedNetwork(args.mix, seed=args.seed)
        self.latency = args.latency_ms / 1000
        self.sessions: set[SimSession] = set()
        self.queue: deque[bytes] = deque()  # deliver_sm bodies waiting for a receiver
        self.scheduled: dict[asyncio.TimerHandle, bytes] = {}
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        self.loop = asyncio.get_running_loop()
        self.accepted = 0

    def check_credentials(self, bind: Pdu) -> bool:
        a = self.args
        if a.system_id and bind.system_id != a.system_id:
            return False
        return not a.password or bind.password == a.password

    def accept(self, pdu: Pdu) -> tuple[int, str]:
        outcome = self.network.outcome()
        if outcome in SUBMIT_ERRORS:
            return SUBMIT_ERRORS[outcome], ""
        upstream_id = self.network.next_id()
        try:
            text = decode_short_message(pdu.short_message, pdu.data_coding)
        except ValueError:
            text = ""
        self.accepted += 1
        if self.log_file is not None:
            self.log_file.write(json.dumps({
                "id": upstream_id, "source": pdu.source_addr, "dest": pdu.destination_addr,
                "text": text, "outcome": outcome,
            }) + "\n")
            self.log_file.flush()
        receipt = self.network.receipt(
            upstream_id, outcome, source_addr=pdu.source_addr, dest_addr=pdu.destination_addr,
            submitted=datetime.now(UTC), text=text[:20],
        )
        if pdu.registered_delivery & 0x03:
            self.schedule(encode(receipt)[HEADER_SIZE:], self.latency)
        return 0, upstream_id

    def schedule(self, body: bytes, delay: float) -> None:
        handle: asyncio.TimerHandle

        def due() -> None:
            self.scheduled.pop(handle, None)
            self.requeue(body)

        handle = self.loop.call_later(delay, due)
        self.scheduled[handle] = body

    def requeue(self, body: bytes) -> None:
        self.queue.append(body)
        self.pump()

    def pump(self) -> None:
        while self.queue:
            receivers = [s for s in self.sessions if s.can_receive]
            if not receivers:
                return
            session = min(receivers, key=lambda s: len(s.outstanding))
            session.deliver(self.queue.popleft())

    async def generate_mo(self) -> None:
        numbers = self.args.mo_to
        i = 0
        while True:
            await asyncio.sleep(1 / self.args.mo_rate)
            mo = self.network.mo(numbers[i % len(numbers)])
            i += 1
            self.requeue(_body(mo))

    # state across restarts

    def load_state(self, path: Path) -> int:
        if not path.exists():
            return 0
        bodies = json.loads(path.read_text() or "[]")
        for hex_body in bodies:
            self.queue.append(bytes.fromhex(hex_body))
        path.unlink()
        return len(bodies)

    def save_state(self, path: Path) -> int:
        pending = list(self.queue)
        for session in self.sessions:
            pending += [frame[HEADER_SIZE:] for frame in session.outstanding.values()]
            session.outstanding.clear()
        for handle, body in self.scheduled.items():
            handle.cancel()
            pending.append(body)
        self.scheduled.clear()
        self.queue.clear()
        path.write_text(json.dumps([b.hex() for b in pending]))
        return len(pending)


def _body(pdu: DeliverSm) -> bytes:
    return encode(pdu)[HEADER_SIZE:]


async def serve(args: argparse.Namespace) -> int:
    server = SimServer(args)
    loaded = server.load_state(Path(args.state)) if args.state else 0
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: SimSession(server), args.host, args.port)
    host, port = listener.sockets[0].getsockname()[:2]
    print(f"smsc_sim: listening on {host}:{port}", flush=True)
    if loaded:
        print(f"smsc_sim: {loaded} receipts from the previous run are waiting", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mo_task = None
    if args.mo_rate > 0 and args.mo_to:
        mo_task = loop.create_task(server.generate_mo())
    print("smsc_sim: ready", flush=True)
    await stop.wait()
    # Stop reading first: whatever was read is answered, whatever was not was never
    # accepted, so the ESME may safely send it again.
    listener.close()
    if mo_task is not None:
        mo_task.cancel()
    for session in list(server.sessions):
        if session.transport is not None:
            session.transport.pause_reading()
    await asyncio.sleep(0.05)
    saved = server.save_state(Path(args.state)) if args.state else 0
    for session in list(server.sessions):
        session.close()
    await asyncio.sleep(0.05)
    print(f"smsc_sim: stopped after {server.accepted} messages; {saved} receipts saved",
          flush=True)
    if server.log_file is not None:
        server.log_file.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smsc_sim", description="SMPP 3.4 SMSC simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2776, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=200.0, help="submit to receipt")
    p.add_argument("--mix", default="delivered=1",
                   help="outcome weights: delivered, undeliverable, expired, rejected, "
                        "throttled, refused")
    p.add_argument("--mo-rate", type=float, default=0.0, help="MO messages per second")
    p.add_argument("--mo-to", type=lambda s: [n for n in s.split(",") if n], default=[],
                   help="comma-separated numbers MOs are sent to")
    p.add_argument("--system-id", default="", help="accept only this system_id")
    p.add_argument("--password", default="", help="accept only this password")
    p.add_argument("--log", default="", help="append a JSON line per accepted message")
    p.add_argument("--state", default="", help="receipts kept across a stop and start")
    p.add_argument("--seed", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

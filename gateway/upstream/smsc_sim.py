"""The SMSC simulator as a standalone SMPP server: a real upstream on another port.

    python -m gateway.upstream.smsc_sim --port 2776 --latency-ms 200 \\
        --mix delivered=0.9,undeliverable=0.05,expired=0.03,rejected=0.02 \\
        --mo-rate 0.5 --mo-to 33700000001

Every accepted submit_sm gets an id and, after the latency, a receipt (deliver_sm, or
data_sm with --receipt-pdu) whose outcome comes from the mix; an "absent" message that
set set_dpf is followed by an alert_notification. Receipts and alerts wait for a bound
RX/TRX session; on SIGTERM what is undelivered goes to --state for the next start.
--log writes one JSON line per accepted message with every field it came with.
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
from typing import Any

from gateway.link_protocol import LinkProtocol
from gateway.upstream.simulator import SUBMIT_ERRORS, SimulatedNetwork, as_data_sm, wants_alert
from pdu.codec import HEADER, HEADER_SIZE, CommandId, DeliverSm, Pdu, decode, encode
from pdu.fields import ESM_CLASS_UDHI
from pdu.link import Link, LinkConfig, Request, Response, ResponseTimeout, Role
from pdu.status import CommandStatus
from pdu.text import decode_short_message
from pdu.tlv import Tag, as_int
from pdu.udh import InvalidUdh, concat_info, parse_udh

log = logging.getLogger("smsc_sim")

BIND_REQUESTS = {CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER}
RECEIPT_PDUS = ("deliver_sm", "data_sm")
DELIVER_WINDOW = 10
REDELIVER_DELAY = 1.0


class SimSession(LinkProtocol):
    """One ESME connection to the simulator: an SMSC-side link."""

    def __init__(self, server: SimServer) -> None:
        # The ESME answers receipts when it can: a slow one is not refused or repeated.
        super().__init__(Link(LinkConfig(
            role=Role.SMSC, window_out=DELIVER_WINDOW, response_timeout=3600.0,
            enquire_link_interval=None,
        ), asyncio.get_running_loop().time()))
        self.server = server

    def on_open(self) -> None:
        self.server.sessions.add(self)

    def on_lost(self, awaiting: list[tuple[int, Any]], exc: Exception | None) -> None:
        self.server.sessions.discard(self)
        # Receipts sent but not acknowledged go back to the queue.
        for _, frame in reversed(awaiting):
            self.server.queue.appendleft(frame)
        self.server.pump()

    @property
    def can_receive(self) -> bool:
        return self.link.can_receive and self.link.window_free() > 0

    @property
    def load(self) -> int:
        return self.link.awaiting

    def deliver(self, frame: bytes) -> None:
        """Send a queued frame (its sequence_number is the link's)."""
        command_id = HEADER.unpack_from(frame, 0)[1]
        if command_id == CommandId.ALERT_NOTIFICATION:
            # alert_notification has no response (SMPP 3.4 4.12): nothing to wait for.
            self.link.notify(decode(frame))
        else:
            self.link.send_body(command_id, frame[HEADER_SIZE:], self.loop.time(), frame)
        self.kick()

    def outstanding(self) -> list[bytes]:
        return [frame for _, frame in self.link.outstanding()]

    def handle_event(self, event: Any) -> None:
        kind = type(event)
        server = self.server
        if kind is Request:
            self._request(event.pdu)
        elif kind is Response:
            if event.command_status != 0:
                self.loop.call_later(REDELIVER_DELAY, server.requeue, event.context)
            server.pump()
        elif kind is ResponseTimeout:
            server.requeue(event.context)

    def _request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        server = self.server
        if cid in BIND_REQUESTS:
            if server.check_credentials(pdu):
                self.link.accept_bind(pdu, self.loop.time(), system_id="smsc_sim")
                self.kick()
                server.pump()
            else:
                self.link.refuse_bind(pdu, CommandStatus.ESME_RINVPASWD, system_id="smsc_sim")
                self.kick()
        elif cid == CommandId.SUBMIT_SM:
            if server.args.never_answer:
                return
            status, upstream_id = server.accept(pdu)
            self.respond(pdu, status, message_id=upstream_id)
        else:
            self.respond(pdu, CommandStatus.ESME_RINVCMDID)


class SimServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.network = SimulatedNetwork(args.mix, seed=args.seed)
        self.latency = args.latency_ms / 1000
        self.alert_after = args.alert_after_ms / 1000
        self.sessions: set[SimSession] = set()
        # Whole frames (sequence_number stamped on sending) waiting for a receiver.
        self.queue: deque[bytes] = deque()
        self.scheduled: dict[asyncio.TimerHandle, bytes] = {}
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        self.loop = asyncio.get_running_loop()
        self.listener: asyncio.Server | None = None
        self.mo_task: asyncio.Task[None] | None = None
        self.accepted = 0

    async def start(self) -> tuple[str, int]:
        """Listen (and start the MO generator); the address actually bound."""
        a = self.args
        self.listener = await self.loop.create_server(lambda: SimSession(self), a.host, a.port)
        if a.mo_rate > 0 and a.mo_to:
            self.mo_task = self.loop.create_task(self.generate_mo())
        host, port = self.listener.sockets[0].getsockname()[:2]
        return host, port

    async def stop(self) -> int:
        """Stop as on SIGTERM; the number of frames saved to --state."""
        # Stop reading first: whatever was read is answered, whatever was not was never
        # accepted, so the ESME may safely send it again.
        if self.listener is not None:
            self.listener.close()
        if self.mo_task is not None:
            self.mo_task.cancel()
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.pause_reading()
        await asyncio.sleep(0.05)
        saved = self.save_state(Path(self.args.state)) if self.args.state else 0
        for handle in self.scheduled:
            handle.cancel()
        self.scheduled.clear()
        for session in list(self.sessions):
            session.close("the simulator is stopping")
        await asyncio.sleep(0.05)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        return saved

    def check_credentials(self, bind: Pdu) -> bool:
        a = self.args
        if a.system_id and bind.system_id != a.system_id:
            return False
        return not a.password or bind.password == a.password

    def accept(self, pdu: Pdu) -> tuple[int, str]:
        user_data = pdu.short_message or pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b""
        udh = _udh_concat(pdu.esm_class, user_data)
        sar = _sar_concat(pdu)
        part = udh["seq"] if udh else sar["seq"] if sar else None
        if self.args.fail_part and part == self.args.fail_part:
            outcome = "undeliverable"
        else:
            outcome = self.network.outcome()
        if outcome in SUBMIT_ERRORS:
            return SUBMIT_ERRORS[outcome], ""
        upstream_id = self.network.next_id()
        text = _text(pdu, user_data)
        self.accepted += 1
        if self.log_file is not None:
            self.log_file.write(json.dumps(
                _log_record(pdu, upstream_id, outcome, text, udh, sar)) + "\n")
            self.log_file.flush()
        receipt = self.network.receipt(
            upstream_id, outcome, source_addr=pdu.source_addr, dest_addr=pdu.destination_addr,
            submitted=datetime.now(UTC), text=text[:20],
        )
        if pdu.registered_delivery & 0x03:
            self.schedule(self._frame(receipt), self.latency)
        if outcome == "absent" and wants_alert(pdu.tlvs):
            # Scheduled now rather than when the receipt is due, so --state keeps both.
            alert = self.network.alert(
                pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi,
                pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi,
            )
            self.schedule(encode(alert), self.latency + self.alert_after)
        return 0, upstream_id

    def _frame(self, deliver: DeliverSm) -> bytes:
        """A receipt or MO as the PDU --receipt-pdu asks for."""
        return encode(as_data_sm(deliver) if self.args.receipt_pdu == "data_sm" else deliver)

    def schedule(self, frame: bytes, delay: float) -> None:
        handle: asyncio.TimerHandle

        def due() -> None:
            self.scheduled.pop(handle, None)
            self.requeue(frame)

        handle = self.loop.call_later(delay, due)
        self.scheduled[handle] = frame

    def requeue(self, frame: bytes) -> None:
        self.queue.append(frame)
        self.pump()

    def pump(self) -> None:
        while self.queue:
            receivers = [s for s in self.sessions if s.can_receive]
            if not receivers:
                return
            session = min(receivers, key=lambda s: s.load)
            session.deliver(self.queue.popleft())

    async def generate_mo(self) -> None:
        numbers = self.args.mo_to
        i = 0
        while True:
            await asyncio.sleep(1 / self.args.mo_rate)
            mo = self.network.mo(numbers[i % len(numbers)])
            i += 1
            self.requeue(self._frame(mo))

    # state across restarts

    def load_state(self, path: Path) -> int:
        if not path.exists():
            return 0
        saved = json.loads(path.read_text() or "[]")
        if isinstance(saved, list):
            # Written before frames were kept whole: deliver_sm bodies.
            frames = [_deliver_sm_frame(bytes.fromhex(h)) for h in saved]
        else:
            frames = [bytes.fromhex(h) for h in saved["frames"]]
        self.queue.extend(frames)
        path.unlink()
        return len(frames)

    def save_state(self, path: Path) -> int:
        pending = list(self.queue)
        for session in self.sessions:
            pending += session.outstanding()
        for handle, frame in self.scheduled.items():
            handle.cancel()
            pending.append(frame)
        self.scheduled.clear()
        self.queue.clear()
        path.write_text(json.dumps({"frames": [f.hex() for f in pending]}))
        return len(pending)


def _deliver_sm_frame(body: bytes) -> bytes:
    return HEADER.pack(HEADER_SIZE + len(body), CommandId.DELIVER_SM, 0, 0) + body


def _udh_concat(esm_class: int, user_data: bytes) -> dict[str, int] | None:
    """Where a UDHI message sits in its concatenated whole, or None."""
    if not esm_class & ESM_CLASS_UDHI:
        return None
    try:
        concat = concat_info(parse_udh(user_data)[0])
    except InvalidUdh:
        return None
    return None if concat is None else {"ref": concat.ref, "total": concat.total,
                                        "seq": concat.seq}


def _sar_concat(pdu: Pdu) -> dict[str, int | None] | None:
    """The sar_* TLVs of a message as ref/total/seq (a missing one is None), or None."""
    values = {
        key: pdu.get_tlv(tag) for key, tag in (
            ("ref", Tag.SAR_MSG_REF_NUM), ("total", Tag.SAR_TOTAL_SEGMENTS),
            ("seq", Tag.SAR_SEGMENT_SEQNUM),
        )
    }
    if all(v is None for v in values.values()):
        return None
    return {key: None if v is None else as_int(v) for key, v in values.items()}


def _text(pdu: Pdu, user_data: bytes) -> str:
    """What the subscriber reads: the user data after any UDH, decoded; "" if binary."""
    if pdu.esm_class & ESM_CLASS_UDHI:
        try:
            user_data = parse_udh(user_data)[1]
        except InvalidUdh:
            return ""
    try:
        return decode_short_message(user_data, pdu.data_coding)
    except ValueError:
        return ""


def _log_record(
    pdu: Pdu, upstream_id: str, outcome: str, text: str,
    udh: dict[str, int] | None, sar: dict[str, int | None] | None,
) -> dict[str, Any]:
    return {
        "id": upstream_id, "source": pdu.source_addr, "dest": pdu.destination_addr,
        "text": text, "outcome": outcome,
        "source_ton": pdu.source_addr_ton, "source_npi": pdu.source_addr_npi,
        "dest_ton": pdu.dest_addr_ton, "dest_npi": pdu.dest_addr_npi,
        "service_type": pdu.service_type, "esm_class": pdu.esm_class,
        "protocol_id": pdu.protocol_id, "priority_flag": pdu.priority_flag,
        "registered_delivery": pdu.registered_delivery, "data_coding": pdu.data_coding,
        "short_message": pdu.short_message.hex(),
        "tlvs": [[tag, value.hex()] for tag, value in pdu.tlvs],
        "udh": udh, "sar": sar,
    }


async def serve(args: argparse.Namespace) -> int:
    server = SimServer(args)
    loaded = server.load_state(Path(args.state)) if args.state else 0
    loop = asyncio.get_running_loop()
    host, port = await server.start()
    print(f"smsc_sim: listening on {host}:{port}", flush=True)
    if loaded:
        print(f"smsc_sim: {loaded} receipts from the previous run are waiting", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("smsc_sim: ready", flush=True)
    await stop.wait()
    saved = await server.stop()
    print(f"smsc_sim: stopped after {server.accepted} messages; {saved} receipts saved",
          flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smsc_sim", description="SMPP 3.4 SMSC simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2776, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=200.0, help="submit to receipt")
    p.add_argument("--mix", default="delivered=1",
                   help="outcome weights: delivered, undeliverable, expired, rejected, "
                        "absent, throttled, refused")
    p.add_argument("--mo-rate", type=float, default=0.0, help="MO messages per second")
    p.add_argument("--mo-to", type=lambda s: [n for n in s.split(",") if n], default=[],
                   help="comma-separated numbers MOs are sent to")
    p.add_argument("--system-id", default="", help="accept only this system_id")
    p.add_argument("--password", default="", help="accept only this password")
    p.add_argument("--log", default="", help="append a JSON line per accepted message")
    p.add_argument("--state", default="", help="receipts kept across a stop and start")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--receipt-pdu", choices=RECEIPT_PDUS, default="deliver_sm",
                   help="the PDU receipts and MOs travel in")
    p.add_argument("--alert-after-ms", type=float, default=1000.0,
                   help="receipt of an 'absent' outcome to its alert_notification (set_dpf=1)")
    p.add_argument("--fail-part", type=int, default=0, metavar="N",
                   help="part N of every concatenated message (UDH or sar) is undeliverable")
    p.add_argument("--never-answer", action="store_true",
                   help="answer binds and enquire_link but never submit_sm (a hung SMSC)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

"""A flood of malformed PDUs over bound connections, as its own process.

    python -m benchmarks.faults_flood --port P --system-id X --password Y \\
        --connections 8 --pdus 1000000

Each connection binds, then sends PDUs the gateway must refuse (unknown command_id,
truncated bodies, C-strings without their NUL, sm_length past the end, a TLV longer than
its PDU, a bad schedule time, a query_sm with an overlong id, an enquire_link with a
body) as fast as it reads the answers, keeping at most `--outstanding` unanswered. Every
`--close-every` PDUs it sends one framing error (command_length 8), which must close
only that connection; it then connects and binds again. It prints one JSON line: PDUs
sent and answered, answers by command and status, reconnects. Apart from the runner's
process, so its CPU does not slow the bystander's own measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.faults_load import bind_frame, frame, read_pdu
from pdu.codec import CommandId
from pdu.status import status_name

SUBMIT = CommandId.SUBMIT_SM


def _submit_fields(source: bytes = b"bench", sm_length: int | None = None,
                   message: bytes = b"hello", schedule: bytes = b"") -> bytes:
    length = len(message) if sm_length is None else sm_length
    return (b"\x00" + b"\x05\x00" + source + b"\x00" + b"\x01\x01" + b"33601020304\x00"
            + b"\x00\x00\x00" + schedule + b"\x00" + b"\x00" + b"\x00\x00\x00\x00"
            + bytes([length]) + message)


# (name, command_id, body): each must be answered, none may close the connection.
MALFORMED: list[tuple[str, int, bytes]] = [
    ("unknown_command", 0x000000AA, b""),
    ("truncated_submit", SUBMIT, b"\x00\x05\x00ben"),
    ("source_addr_without_nul", SUBMIT, b"\x00\x05\x00" + b"A" * 40),
    ("sm_length_past_end", SUBMIT, _submit_fields(sm_length=200)),
    ("tlv_longer_than_pdu", SUBMIT, _submit_fields() + struct.pack(">HH", 0x0424, 1000) + b"x"),
    ("bad_schedule_time", SUBMIT, _submit_fields(schedule=b"99999999999999-+")),
    ("query_sm_overlong_id", CommandId.QUERY_SM, b"9" * 80),
    ("enquire_link_with_body", CommandId.ENQUIRE_LINK, b"\x00\x00\x00\x01"),
]
FRAMING_ERROR = frame(SUBMIT, length=8)


def chunk(size: int) -> tuple[bytes, int]:
    """`size` malformed frames, the kinds in turn, numbered 1..size."""
    frames = [frame(MALFORMED[i % len(MALFORMED)][1], MALFORMED[i % len(MALFORMED)][2],
                    seq=i + 1) for i in range(size)]
    return b"".join(frames), size


class Totals:
    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.answers: Counter[str] = Counter()
        self.reconnects = 0
        self.unexpected_closes = 0
        self.bind_failures: Counter[str] = Counter()


async def _connection(args: argparse.Namespace, budget: list[int], totals: Totals) -> None:
    data, per_chunk = chunk(args.chunk)
    while budget[0] > 0:
        reader, writer = await asyncio.open_connection(args.host, args.port)
        writer.write(bind_frame(args.system_id, args.password))
        _, status, _, _ = await read_pdu(reader)
        if status != 0:
            totals.bind_failures[status_name(status)] += 1
            writer.close()
            await asyncio.sleep(0.5)
            if sum(totals.bind_failures.values()) > 50:
                return
            continue
        answered = [0]
        closed = asyncio.Event()

        async def read_answers(reader: asyncio.StreamReader = reader,
                               answered: list[int] = answered,
                               closed: asyncio.Event = closed) -> None:
            buf = b""
            try:
                while True:
                    data = await reader.read(262144)
                    if not data:
                        break
                    buf += data
                    at = 0
                    while len(buf) - at >= 16:
                        length, cid, st, _ = struct.unpack_from(">IIII", buf, at)
                        if len(buf) - at < length:
                            break
                        at += length
                        answered[0] += 1
                        totals.answers[f"{_command_name(cid)}/{status_name(st)}"] += 1
                    buf = buf[at:]
            except OSError:
                pass
            closed.set()

        task = asyncio.get_running_loop().create_task(read_answers())
        sent_here = 0
        framing_sent = False
        try:
            while budget[0] > 0 and not closed.is_set():
                take = min(per_chunk, budget[0])
                budget[0] -= take
                writer.write(data if take == per_chunk else data[: _prefix(data, take)])
                sent_here += take
                totals.sent += take
                while sent_here - answered[0] > args.outstanding and not closed.is_set():
                    await asyncio.sleep(0.001)
                await writer.drain()
                if args.close_every and sent_here >= args.close_every:
                    writer.write(FRAMING_ERROR)
                    totals.sent += 1
                    framing_sent = True
                    break
            # What is still owed an answer, then (after a framing error) the close.
            deadline = time.monotonic() + 30
            while answered[0] < sent_here and not closed.is_set() \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            if framing_sent:
                await asyncio.wait_for(closed.wait(), 30)
                totals.reconnects += 1
            elif closed.is_set():
                totals.unexpected_closes += 1
        finally:
            totals.answered += answered[0]
            writer.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return hex(command_id)


def _prefix(data: bytes, frames: int) -> int:
    at = 0
    for _ in range(frames):
        at += struct.unpack_from(">I", data, at)[0]
    return at


async def flood(args: argparse.Namespace) -> dict[str, Any]:
    budget = [args.pdus]
    totals = Totals()
    t0 = time.perf_counter()
    done = await asyncio.wait_for(asyncio.gather(
        *(_connection(args, budget, totals) for _ in range(args.connections)),
        return_exceptions=True), args.time_limit)
    errors = [repr(e) for e in done if isinstance(e, BaseException)]
    return {
        "pdus_sent": totals.sent, "answered": totals.answered,
        "answers": dict(totals.answers.most_common()), "reconnects": totals.reconnects,
        "unexpected_closes": totals.unexpected_closes,
        "bind_failures": dict(totals.bind_failures), "errors": errors[:5],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faults_flood", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--pdus", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--outstanding", type=int, default=4096)
    p.add_argument("--close-every", type=int, default=25_000)
    p.add_argument("--time-limit", type=float, default=600.0)
    args = p.parse_args(argv)
    try:
        import uvloop
        result = uvloop.run(flood(args))
    except ImportError:
        result = asyncio.run(flood(args))
    print("flood: " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The clients of the fault scenarios: a customer whose load outlives a gateway restart,
and the hostile ones (wrong binds, a client that never reads, idle connections).

The customer is the load generator's own sessions (`benchmarks.esme`, the project's SMPP
link) sharing one `Load` across connections, so a receipt that arrives twice, before and
after a restart, is counted as a duplicate. The hostile clients write raw bytes: they are
what the gateway must survive, not SMPP peers.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.esme import EsmeSession
from benchmarks.load import Load, LoadConfig, percentiles
from pdu.codec import HEADER, HEADER_SIZE, BindTransceiver, CommandId, EnquireLink, encode
from pdu.status import status_name

# --- the customer ------------------------------------------------------------------------


async def open_sessions(load: Load, host: str, port: int, count: int,
                        credentials: tuple[str, str], timeout: float = 30.0
                        ) -> tuple[list[EsmeSession], Counter[str]]:
    """`count` bound transceivers on `load` (those that failed to bind are closed)."""
    statuses: Counter[str] = Counter()

    async def one() -> EsmeSession | None:
        try:
            _, session = await load.loop.create_connection(
                lambda: EsmeSession(load, *credentials), host, port)
            status = await asyncio.wait_for(session.bound, timeout)
        except (OSError, ConnectionError, TimeoutError) as exc:
            statuses[type(exc).__name__] += 1
            return None
        statuses[status_name(status)] += 1
        if status != 0:
            session.transport.close()
            return None
        return session

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [s for s in opened if s is not None], statuses


def acked_ids(load: Load) -> set[str]:
    """Every message_id answered with ESME_ROK (the load asks for receipts)."""
    return set(load.awaiting_dlr) | load.dlr_done


async def leave(sessions: list[EsmeSession]) -> None:
    await asyncio.gather(*(s.leave(2.0) for s in sessions), return_exceptions=True)


@dataclass
class Timeline:
    """The load's counters every `step` seconds: when refusals began and ended."""

    load: Load
    step: float = 0.5
    t0: float = field(default_factory=time.perf_counter)
    points: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Timeline:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.perf_counter() - self.t0, 2)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.step)

    def sample(self) -> None:
        load = self.load
        self.points.append({
            "t": round(time.perf_counter() - self.t0, 2), "submitted": load.submitted,
            "responses": load.responses, "dlrs": load.dlrs_received,
            "statuses": {status_name(k) if k >= 0 else str(k): v
                         for k, v in load.statuses.items()},
        })

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    def first_after(self, start: float, status: str) -> float | None:
        """Seconds (from t0) at which `status` first grew after `start`."""
        before = None
        for p in self.points:
            n = p["statuses"].get(status, 0)
            if p["t"] < start:
                before = n
                continue
            if before is not None and n > before:
                return p["t"]
            before = n
        return None


async def paced(load: Load, sessions: list[EsmeSession], rate: float, seconds: float,
                stop: asyncio.Event | None = None) -> None:
    """Submit `rate`/s for `seconds` over the sessions (window-bounded, never waits for
    a session that went away); `load.remaining` must cover it."""
    start = time.perf_counter()
    issued = 0
    turn = 0
    while time.perf_counter() - start < seconds and load.remaining > 0:
        if stop is not None and stop.is_set():
            return
        due = int(rate * (time.perf_counter() - start)) - issued
        live = [s for s in sessions if s.transport is not None
                and not s.transport.is_closing()]
        for _ in range(len(live)):
            if due <= 0:
                break
            session = live[turn % len(live)]
            turn += 1
            share = load.take(due)
            sent = session.send_submits(share)
            load.remaining += share - sent
            issued += sent
            due -= sent
        await asyncio.sleep(0.005)


def customer_config(host: str, port: int, account: tuple[str, str], **kw: Any) -> LoadConfig:
    values: dict[str, Any] = {"host": host, "port": port, "system_id": account[0],
                              "password": account[1], "registered_delivery": 1,
                              "time_limit": 3600.0}
    values.update(kw)
    return LoadConfig(**values)


def latency_ms(values: list[float]) -> dict[str, float]:
    return percentiles(values)


# --- hostile clients ---------------------------------------------------------------------


def bind_frame(system_id: str, password: str, seq: int = 1) -> bytes:
    return encode(BindTransceiver(sequence_number=seq, system_id=system_id, password=password,
                                  system_type="", interface_version=0x34))


async def read_pdu(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    head = await reader.readexactly(HEADER_SIZE)
    length, command_id, status, seq = HEADER.unpack(head)
    body = await reader.readexactly(max(0, length - HEADER_SIZE))
    return command_id, status, seq, body


async def try_bind(host: str, port: int, system_id: str, password: str, *,
                   local: str | None = None, timeout: float = 30.0, keep: bool = False
                   ) -> tuple[str, float, Any]:
    """One bind_transceiver; (status name, seconds to the answer, writer if `keep`)."""
    t0 = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, local_addr=(local, 0) if local else None), timeout)
        writer.write(bind_frame(system_id, password))
        while True:
            command_id, status, _, _ = await asyncio.wait_for(read_pdu(reader), timeout)
            if command_id in (CommandId.BIND_TRANSCEIVER_RESP, CommandId.GENERIC_NACK):
                break
        name = status_name(status)
    except TimeoutError:
        name = "timeout"
    except asyncio.IncompleteReadError:
        name = "closed"
    except OSError as exc:
        name = type(exc).__name__
    took = time.perf_counter() - t0
    if writer is not None and not keep:
        writer.close()
    return name, took, writer if keep else None


async def bind_storm(host: str, port: int, attempts: list[tuple[str, str]], *,
                     local: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """All `attempts` (system_id, password) at once; statuses and answer latencies."""
    t0 = time.perf_counter()
    results = await asyncio.gather(*(try_bind(host, port, s, p, local=local, timeout=timeout)
                                     for s, p in attempts))
    return {
        "attempts": len(attempts),
        "statuses": dict(Counter(r[0] for r in results)),
        "bind_resp_ms": percentiles([r[1] for r in results]),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def non_reader(host: str, port: int, seconds: float, *, local: str | None = None,
               burst: int = 4096) -> dict[str, Any]:
    """enquire_link before any bind, as fast as the socket takes them, never reading:
    how long until the gateway drops us, and how much it took in meanwhile. Blocking
    (run it in a thread)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive buffer: what the gateway answers piles up on its side, not ours.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if local:
        sock.bind((local, 0))
    sock.connect((host, port))
    sock.settimeout(0.2)
    frames = b"".join(encode(EnquireLink(sequence_number=i + 1)) for i in range(burst))
    sent = 0
    blocked = 0.0
    t0 = time.perf_counter()
    outcome = "still open"
    try:
        while time.perf_counter() - t0 < seconds:
            try:
                sent += sock.send(frames)
            except TimeoutError:
                blocked += 0.2
                continue
    except (ConnectionResetError, BrokenPipeError) as exc:
        outcome = f"dropped ({type(exc).__name__})"
    except OSError as exc:
        outcome = f"dropped ({exc.__class__.__name__})"
    took = time.perf_counter() - t0
    sock.close()
    return {
        "outcome": outcome, "seconds": round(took, 1), "bytes_sent": sent,
        "enquire_links_sent": sent // 16, "seconds_blocked": round(blocked, 1),
    }


async def idle_connections(host: str, port: int, count: int, hold: float, *,
                           local: str | None = None, concurrency: int = 500
                           ) -> tuple[list[Any], dict[str, Any]]:
    """Open `count` connections that never send a byte; returns the open writers (to be
    watched and closed by the caller) and how the opening went."""
    gate = asyncio.Semaphore(concurrency)
    statuses: Counter[str] = Counter()
    writers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one() -> None:
        async with gate:
            try:
                pair = await asyncio.wait_for(asyncio.open_connection(
                    host, port, local_addr=(local, 0) if local else None), 10)
            except (OSError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return
            statuses["connected"] += 1
            writers.append(pair)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return writers, {"opened": dict(statuses), "open_seconds": round(time.perf_counter() - t0, 1)}


async def still_open(pairs: list[Any], wait: float = 0.2) -> int:
    """How many of the connections the server has not closed (EOF or reset)."""

    async def probe(reader: asyncio.StreamReader) -> bool:
        if reader.at_eof():
            return False
        try:
            data = await asyncio.wait_for(reader.read(65536), wait)
        except TimeoutError:
            return True
        except OSError:
            return False
        return bool(data)  # bytes (a generic_nack?) but not closed

    results = await asyncio.gather(*(probe(r) for r, _ in pairs))
    return sum(results)


def close_all(pairs: list[Any]) -> None:
    for _, writer in pairs:
        writer.close()


def frame(command_id: int, body: bytes = b"", seq: int = 1, length: int | None = None) -> bytes:
    size = HEADER_SIZE + len(body) if length is None else length
    return struct.pack(">IIII", size, command_id, 0, seq) + body

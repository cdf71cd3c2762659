"""An asyncio SMPP load generator (ESME side) built to stay cheaper than what it measures.

Every session is an `asyncio.Protocol` over one bytearray buffer; submit_sm bytes are
encoded once and only the sequence number is patched (`struct.pack_into`) into a batch
that goes out in one `write`. Responses are read from the header with `unpack_from`; the
full codec is never run on the hot path. Sessions bind as transceivers, answer every
deliver_sm, match delivery receipts to submit_sm_resp message_ids, and the run reports
messages/s, latency percentiles and statuses by name. Three modes share one engine:

- windowed: send `messages` as fast as the window lets (scenario 1, 2, 6, 7);
- paced: `rate` messages/s, window-bounded (scenario 3);
- idle: bind `sessions`, then only enquire_link every `enquire_interval` (scenario 4).

Library: ``await run_load(LoadConfig(...))``. Command line:
``python -m benchmarks.loadgen --host 127.0.0.1 --port 2775 --system-id X --password Y``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pdu.codec import BindTransceiver, SubmitSm, encode
from pdu.status import status_name

# command_ids the generator meets; named once so the dispatch below reads as SMPP.
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
GENERIC_NACK = 0x80000000

TAG_RECEIPTED_MESSAGE_ID = 0x001E
ESM_CLASS_RECEIPT_MASK = 0x3C

_HEADER = struct.Struct(">IIII")
_U32 = struct.Struct(">I")
_TLV_HEAD = struct.Struct(">HH")
# deliver_sm_resp with an empty message_id: 16-octet header plus one NUL.
_DELIVER_SM_RESP = _HEADER.pack(17, DELIVER_SM_RESP, 0, 0) + b"\x00"
_ENQUIRE_LINK = _HEADER.pack(16, ENQUIRE_LINK, 0, 0)
_ENQUIRE_LINK_RESP = _HEADER.pack(16, ENQUIRE_LINK_RESP, 0, 0)
_UNBIND = _HEADER.pack(16, UNBIND, 0, 0)
_UNBIND_RESP = _HEADER.pack(16, UNBIND_RESP, 0, 0)


@dataclass
class LoadConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    # Several accounts spread idle sessions (scenario 4) across per-account limits.
    credentials: list[tuple[str, str]] = field(default_factory=list)
    sessions: int = 4
    window: int = 100
    messages: int = 10_000
    # Messages per second over all sessions; None sends as fast as the window allows.
    rate: float | None = None
    registered_delivery: int = 0
    # After the last submit_sm_resp, how long to wait for missing DLRs.
    dlr_timeout: float = 60.0
    # Idle mode: hold the bound sessions this long, sending enquire_link.
    idle_seconds: float = 0.0
    enquire_interval: float = 5.0
    # Connections and binds in flight at once, so a bind storm stays within bind_timeout.
    connect_concurrency: int = 64
    # Hard bound on the whole run (binding, sending, draining): it always stops.
    time_limit: float = 600.0
    source_addr: str = "bench"
    destination_addr: str = "33601020304"
    short_message: bytes = b"Benchmark message: your code is 123456"

    def accounts(self) -> list[tuple[str, str]]:
        return self.credentials or [(self.system_id, self.password)]


@dataclass
class LoadResult:
    mode: str
    sessions_requested: int
    sessions_bound: int
    bind_statuses: dict[str, int]
    bind_seconds: float
    messages_requested: int
    submitted: int
    responses: int
    statuses: dict[str, int]
    elapsed_seconds: float
    messages_per_second: float
    accepted_per_second: float
    submit_latency_ms: dict[str, float]
    dlrs_expected: int = 0
    dlrs_received: int = 0
    dlrs_matched: int = 0
    dlrs_duplicate: int = 0
    dlrs_unmatched: int = 0
    dlr_stats: dict[str, int] = field(default_factory=dict)
    dlr_latency_ms: dict[str, float] = field(default_factory=dict)
    dlr_complete_seconds: float = 0.0
    other_deliver_sm: int = 0
    enquire_links_sent: int = 0
    enquire_link_resps: int = 0
    enquire_link_latency_ms: dict[str, float] = field(default_factory=dict)
    server_enquire_links: int = 0
    target_rate: float | None = None
    max_backlog: int = 0
    timed_out: bool = False
    disconnects: int = 0
    loop: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds (nearest rank), from values in seconds."""
    if not values:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] * 1000, 3)

    return {"count": n, "p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 3)}


def submit_template(config: LoadConfig) -> bytes:
    """One submit_sm encoded by the project codec; only its sequence number will change."""
    pdu = SubmitSm(
        sequence_number=0,
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr=config.source_addr,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=config.destination_addr,
        registered_delivery=config.registered_delivery,
        short_message=config.short_message,
    )
    return encode(pdu)


def _cstring(buf: bytes | bytearray, start: int, end: int) -> tuple[bytes, int]:
    nul = buf.find(b"\x00", start, end)
    if nul < 0:
        return bytes(buf[start:end]), end
    return bytes(buf[start:nul]), nul + 1


def receipt_fields(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, str, str]:
    """(esm_class, receipted message id, stat) of a deliver_sm frame at buf[pos:end].

    A hand walk over the fixed body, cheaper than a full decode: the id comes from the
    receipted_message_id TLV, or from `id:` in the receipt text when the TLV is absent.
    """
    p = pos + 16
    _, p = _cstring(buf, p, end)  # service_type
    p += 2
    _, p = _cstring(buf, p, end)  # source_addr
    p += 2
    _, p = _cstring(buf, p, end)  # destination_addr
    esm_class = buf[p]
    p += 3  # esm_class, protocol_id, priority_flag
    _, p = _cstring(buf, p, end)  # schedule_delivery_time
    _, p = _cstring(buf, p, end)  # validity_period
    p += 4  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
    sm_length = buf[p]
    text = bytes(buf[p + 1 : p + 1 + sm_length])
    p += 1 + sm_length
    message_id = ""
    while p + 4 <= end:
        tag, length = _TLV_HEAD.unpack_from(buf, p)
        if tag == TAG_RECEIPTED_MESSAGE_ID:
            message_id = bytes(buf[p + 4 : p + 4 + length]).rstrip(b"\x00").decode("latin-1")
            break
        p += 4 + length
    if not message_id:
        at = text.find(b"id:")
        if at >= 0:
            message_id = text[at + 3 :].split(b" ", 1)[0].decode("latin-1")
    stat = ""
    at = text.find(b"stat:")
    if at >= 0:
        stat = text[at + 5 :].split(b" ", 1)[0].decode("latin-1")
    return esm_class, message_id, stat


class Load:
    """State shared by all sessions of one run: the message budget and the counters."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.template = submit_template(config)
        self.remaining = config.messages
        self.submitted = 0
        self.responses = 0
        self.statuses: Counter[int] = Counter()
        self.bind_statuses: Counter[str] = Counter()
        self.submit_latencies: list[float] = []
        self.track_dlrs = bool(config.registered_delivery & 0x03)
        self.accepted = 0
        self.awaiting_dlr: dict[str, float] = {}
        self.early_dlr: dict[str, float] = {}
        self.dlr_done: set[str] = set()
        self.dlrs_received = 0
        self.dlrs_duplicate = 0
        self.dlr_stats: Counter[str] = Counter()
        self.dlr_latencies: list[float] = []
        self.last_dlr_at = 0.0
        self.other_deliver_sm = 0
        self.enquire_sent = 0
        self.enquire_latencies: list[float] = []
        self.server_enquire_links = 0
        self.disconnects = 0
        self.last_response_at = 0.0
        # Every submit answered; then `finished` once every DLR is in as well.
        self.answered = self.loop.create_future()
        self.finished = self.loop.create_future()
        self.sessions: list[EsmeSession] = []

    def take(self, wanted: int) -> int:
        got = min(wanted, self.remaining)
        self.remaining -= got
        return got

    def message_accepted(self, message_id: str, sent_at: float, now: float) -> None:
        self.accepted += 1
        if not self.track_dlrs:
            return
        arrived = self.early_dlr.pop(message_id, None)
        if arrived is not None:
            # The DLR overtook its submit_sm_resp (it came on another session).
            self.dlr_latencies.append(arrived - sent_at)
            self.dlr_done.add(message_id)
        else:
            self.awaiting_dlr[message_id] = sent_at

    def dlr(self, message_id: str, stat: str, now: float) -> None:
        self.dlrs_received += 1
        self.last_dlr_at = now
        self.dlr_stats[stat or "?"] += 1
        sent_at = self.awaiting_dlr.pop(message_id, None)
        if sent_at is not None:
            self.dlr_latencies.append(now - sent_at)
            self.dlr_done.add(message_id)
        elif message_id in self.dlr_done or message_id in self.early_dlr:
            self.dlrs_duplicate += 1
        else:
            self.early_dlr[message_id] = now

    def check_finished(self) -> None:
        if self.finished.done() or self.config.idle_seconds > 0:
            return
        if self.remaining or self.responses < self.submitted:
            return
        if not self.answered.done():
            self.answered.set_result(None)
        if self.track_dlrs and len(self.dlr_done) < self.accepted:
            return
        self.finished.set_result(None)


class EsmeSession(asyncio.Protocol):
    """One bound transceiver: sends submit_sm within its window, answers the SMSC."""

    def __init__(self, load: Load, system_id: str, password: str) -> None:
        self.load = load
        self.system_id = system_id
        self.password = password
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._seq = 1
        self.inflight: dict[int, float] = {}
        self._enquires: dict[int, float] = {}
        self.window = load.config.window
        self.windowed = load.config.rate is None and load.config.idle_seconds <= 0
        self.bound: asyncio.Future[int] = load.loop.create_future()
        self.closed: asyncio.Future[None] = load.loop.create_future()
        self.unbound = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        bind = BindTransceiver(
            sequence_number=self._next_seq(), system_id=self.system_id, password=self.password
        )
        self.transport.write(encode(bind))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.unbound:
            self.load.disconnects += 1
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind_resp"))
        if not self.closed.done():
            self.closed.set_result(None)
        # Whatever was in flight will never be answered: count it so the run can end.
        load = self.load
        if self.inflight:
            load.statuses[-1] += len(self.inflight)
            load.responses += len(self.inflight)
            self.inflight.clear()
            load.check_finished()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        now = time.perf_counter()
        load = self.load
        out: list[bytes] = []
        freed = 0
        receipts = 0
        pos, size = 0, len(buf)
        while size - pos >= 16:
            length, cid, status, seq = _HEADER.unpack_from(buf, pos)
            if length < 16:
                self.transport.close()
                return
            if size - pos < length:
                break
            if cid == SUBMIT_SM_RESP or cid == GENERIC_NACK:
                sent_at = self.inflight.pop(seq, None)
                if sent_at is not None:
                    freed += 1
                    load.responses += 1
                    load.statuses[status] += 1
                    load.submit_latencies.append(now - sent_at)
                    load.last_response_at = now
                    if status == 0 and cid == SUBMIT_SM_RESP:
                        message_id, _ = _cstring(buf, pos + 16, pos + length)
                        load.message_accepted(message_id.decode("latin-1"), sent_at, now)
            elif cid == DELIVER_SM:
                resp = bytearray(_DELIVER_SM_RESP)
                _U32.pack_into(resp, 12, seq)
                out.append(bytes(resp))
                esm_class, message_id, stat = receipt_fields(buf, pos, pos + length)
                if esm_class & ESM_CLASS_RECEIPT_MASK:
                    load.dlr(message_id, stat, now)
                    receipts += 1
                else:
                    load.other_deliver_sm += 1
            elif cid == ENQUIRE_LINK:
                load.server_enquire_links += 1
                resp = bytearray(_ENQUIRE_LINK_RESP)
                _U32.pack_into(resp, 12, seq)
                out.append(bytes(resp))
            elif cid == ENQUIRE_LINK_RESP:
                sent_at = self._enquires.pop(seq, None)
                if sent_at is not None:
                    load.enquire_latencies.append(now - sent_at)
            elif cid == BIND_TRANSCEIVER_RESP:
                if not self.bound.done():
                    self.bound.set_result(status)
            elif cid == UNBIND:
                self.unbound = True
                resp = bytearray(_UNBIND_RESP)
                _U32.pack_into(resp, 12, seq)
                out.append(bytes(resp))
            elif cid == UNBIND_RESP:
                self.unbound = True
                self.transport.close()
            pos += length
        if pos:
            del buf[:pos]
        if freed and self.windowed:
            batch = self._submits(load.take(freed), now)
            if batch:
                out.append(batch)
        if out:
            self.transport.write(b"".join(out))
        if freed or receipts:
            load.check_finished()

    # --- sending ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = seq + 1 if seq < 0x7FFFFFFF else 1
        return seq

    def room(self) -> int:
        return self.window - len(self.inflight)

    def _submits(self, count: int, now: float) -> bytes:
        """`count` submit_sm in one buffer: the template repeated, sequence numbers patched."""
        if count <= 0:
            return b""
        template = self.load.template
        size = len(template)
        batch = bytearray(template * count)
        inflight = self.inflight
        pack_into = _U32.pack_into
        for i in range(count):
            seq = self._next_seq()
            pack_into(batch, i * size + 12, seq)
            inflight[seq] = now
        self.load.submitted += count
        return bytes(batch)

    def send_submits(self, count: int) -> int:
        """Send up to `count` (bounded by the window); returns how many went out."""
        count = min(count, self.room())
        if count <= 0 or self.transport is None or self.transport.is_closing():
            return 0
        self.transport.write(self._submits(count, time.perf_counter()))
        return count

    def enquire_link(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        seq = self._next_seq()
        self._enquires[seq] = time.perf_counter()
        self.load.enquire_sent += 1
        pdu = bytearray(_ENQUIRE_LINK)
        _U32.pack_into(pdu, 12, seq)
        self.transport.write(bytes(pdu))

    async def unbind(self, timeout: float = 5.0) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        pdu = bytearray(_UNBIND)
        _U32.pack_into(pdu, 12, self._next_seq())
        self.transport.write(bytes(pdu))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            pass
        self.unbound = True
        self.transport.close()


# --- the run --------------------------------------------------------------------------


async def _open_session(
    load: Load, system_id: str, password: str, gate: asyncio.Semaphore
) -> EsmeSession | None:
    cfg = load.config
    async with gate:
        try:
            _, session = await load.loop.create_connection(
                lambda: EsmeSession(load, system_id, password), cfg.host, cfg.port
            )
            status = await asyncio.wait_for(session.bound, 60)
        except (OSError, ConnectionError, TimeoutError) as exc:
            load.bind_statuses[type(exc).__name__] += 1
            return None
    load.bind_statuses[status_name(status)] += 1
    if status != 0:
        session.transport.close()
        return None
    return session


async def _pace(load: Load, sessions: list[EsmeSession], rate: float) -> int:
    """Release messages on a fixed schedule; returns the largest backlog seen."""
    start = time.perf_counter()
    issued = 0
    backlog_max = 0
    turn = 0
    while load.remaining > 0:
        due = int(rate * (time.perf_counter() - start)) - issued
        if due > 0:
            # Round-robin so no session's window fills while another's is empty.
            for _ in range(len(sessions)):
                if due <= 0 or load.remaining <= 0:
                    break
                session = sessions[turn % len(sessions)]
                turn += 1
                share = load.take(min(due, max(1, due // len(sessions))))
                sent = session.send_submits(share)
                load.remaining += share - sent
                issued += sent
                due -= sent
            backlog_max = max(backlog_max, due)
        await asyncio.sleep(0.001)
    return backlog_max


async def _keepalive(load: Load, sessions: list[EsmeSession], until: float) -> None:
    """enquire_link on every session every `enquire_interval`, spread over the interval."""
    interval = load.config.enquire_interval
    step = interval / max(1, len(sessions))
    while time.perf_counter() < until:
        for session in sessions:
            session.enquire_link()
            await asyncio.sleep(step)
            if time.perf_counter() >= until:
                break


async def run_load(
    config: LoadConfig,
    on_bound: Callable[[], None] | None = None,
    before_unbind: Callable[[], None] | None = None,
) -> LoadResult:
    """Bind, run the configured load, unbind; always within `config.time_limit`.

    `on_bound` runs once the binds are answered and `before_unbind` once the load is
    over, while every session is still bound (scenario 4 reads the server's RSS there).
    """
    raise_nofile_limit(config.sessions + 64)
    load = Load(config)
    started = time.perf_counter()
    deadline = started + config.time_limit
    gate = asyncio.Semaphore(config.connect_concurrency)
    accounts = config.accounts()
    opening = [
        _open_session(load, *accounts[i % len(accounts)], gate) for i in range(config.sessions)
    ]
    sessions: list[EsmeSession] = []
    timed_out = False
    try:
        opened = await asyncio.wait_for(asyncio.gather(*opening), config.time_limit)
        sessions = [s for s in opened if s is not None]
    except TimeoutError:
        timed_out = True
    load.sessions = sessions
    bind_seconds = time.perf_counter() - started
    if on_bound is not None:
        on_bound()
    mode = "idle" if config.idle_seconds > 0 else ("paced" if config.rate else "windowed")
    backlog_max = 0
    t0 = time.perf_counter()
    if sessions and not timed_out:
        remaining_time = max(0.0, deadline - time.perf_counter())
        try:
            if mode == "idle":
                until = t0 + min(config.idle_seconds, remaining_time)
                await _keepalive(load, sessions, until)
            else:
                if mode == "windowed":
                    for session in sessions:
                        session.send_submits(load.take(config.window))
                else:
                    backlog_max = await asyncio.wait_for(
                        _pace(load, sessions, config.rate), remaining_time
                    )
                load.check_finished()
                left = max(0.0, deadline - time.perf_counter())
                await asyncio.wait_for(asyncio.shield(load.answered), left)
                left = min(config.dlr_timeout, max(0.0, deadline - time.perf_counter()))
                await asyncio.wait_for(asyncio.shield(load.finished), left)
        except TimeoutError:
            timed_out = True
    elapsed = time.perf_counter() - t0
    send_elapsed = (load.last_response_at - t0) if load.last_response_at else elapsed
    if before_unbind is not None:
        before_unbind()
    await asyncio.gather(*(s.unbind() for s in sessions), return_exceptions=True)
    return _result(load, mode, len(sessions), bind_seconds, t0, elapsed, send_elapsed,
                   backlog_max, timed_out)


def _result(
    load: Load, mode: str, bound: int, bind_seconds: float, t0: float, elapsed: float,
    send_elapsed: float, backlog_max: int, timed_out: bool,
) -> LoadResult:
    cfg = load.config
    statuses = {
        ("LOST_ON_DISCONNECT" if code == -1 else status_name(code)): n
        for code, n in sorted(load.statuses.items())
    }
    ok = load.statuses.get(0, 0)
    # Rates are taken up to the last submit_sm_resp, so DLR draining does not dilute them.
    span = send_elapsed if send_elapsed > 0 else elapsed
    return LoadResult(
        mode=mode,
        sessions_requested=cfg.sessions,
        sessions_bound=bound,
        bind_statuses=dict(load.bind_statuses),
        bind_seconds=round(bind_seconds, 3),
        messages_requested=cfg.messages if mode != "idle" else 0,
        submitted=load.submitted,
        responses=load.responses,
        statuses=statuses,
        elapsed_seconds=round(elapsed, 3),
        messages_per_second=round(load.responses / span, 1) if span > 0 else 0.0,
        accepted_per_second=round(ok / span, 1) if span > 0 else 0.0,
        submit_latency_ms=percentiles(load.submit_latencies),
        dlrs_expected=load.accepted if load.track_dlrs else 0,
        dlrs_received=load.dlrs_received,
        dlrs_matched=len(load.dlr_done),
        dlrs_duplicate=load.dlrs_duplicate,
        dlrs_unmatched=len(load.early_dlr),
        dlr_stats=dict(load.dlr_stats),
        dlr_latency_ms=percentiles(load.dlr_latencies),
        dlr_complete_seconds=round(load.last_dlr_at - t0, 3) if load.last_dlr_at else 0.0,
        other_deliver_sm=load.other_deliver_sm,
        enquire_links_sent=load.enquire_sent,
        enquire_link_resps=len(load.enquire_latencies),
        enquire_link_latency_ms=percentiles(load.enquire_latencies),
        server_enquire_links=load.server_enquire_links,
        target_rate=cfg.rate,
        max_backlog=backlog_max,
        timed_out=timed_out,
        disconnects=load.disconnects,
        loop=loop_name(),
    )


# --- process-level helpers ------------------------------------------------------------


def raise_nofile_limit(wanted: int) -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard one; returns the soft limit now set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def loop_name() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "uvloop" if has_uvloop() else "asyncio"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(coro: Any) -> Any:
    """Run a coroutine on uvloop when it is importable, else on the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--rate", type=float, help="messages/s over all sessions (default: max)")
    p.add_argument("--duration", type=float, help="with --rate: messages = rate x duration")
    p.add_argument("--registered-delivery", type=int, default=0)
    p.add_argument("--dlr-timeout", type=float, default=60.0)
    p.add_argument("--idle-seconds", type=float, default=0.0)
    p.add_argument("--enquire-interval", type=float, default=5.0)
    p.add_argument("--time-limit", type=float, default=600.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    messages = args.messages
    if args.rate and args.duration:
        messages = int(args.rate * args.duration)
    config = LoadConfig(
        host=args.host, port=args.port, system_id=args.system_id, password=args.password,
        sessions=args.sessions, window=args.window, messages=messages, rate=args.rate,
        registered_delivery=args.registered_delivery, dlr_timeout=args.dlr_timeout,
        idle_seconds=args.idle_seconds, enquire_interval=args.enquire_interval,
        time_limit=args.time_limit,
    )
    result = run(run_load(config))
    json.dump(result.as_dict(), sys.stdout, indent=2)
    print()
    return 0 if not result.timed_out else 1


if __name__ == "__main__":
    sys.exit(main())

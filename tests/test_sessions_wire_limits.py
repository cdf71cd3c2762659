"""Hostile clients on the wire, over real TCP: a peer that floods and never reads is
dropped (before a bind by the enquire_link rate or the bind time-out, once bound past
max_unsent_bytes) without the gateway's memory growing; connections beyond
max_connections_per_ip and max_connections are refused and counted while a bound
session keeps working; a client that reads slowly is not dropped; the open-file limit
is raised at start."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

from delivery_helpers import GatewayProcess
from gw_helpers import new_account
from smpp_client import RawClient

from pdu.codec import BindTransceiver, EnquireLink, QuerySm, SubmitSm, Unbind, encode

GOOD_SUBMIT = {"source_addr_ton": 5, "source_addr": "ovh123", "dest_addr_ton": 1,
               "dest_addr_npi": 1, "destination_addr": "33601020304", "short_message": b"hi"}
# 64 KiB of one request, written again and again by a flooder.
ENQUIRE_LINKS = b"".join(encode(EnquireLink(sequence_number=i + 1)) for i in range(4096))
# query_sm before a bind: answered ESME_RINVBNDSTS, about as long as the request.
QUERIES = b"".join(encode(QuerySm(sequence_number=i + 1, message_id="1"))
                   for i in range(3120))
RSS_GROWTH_MB = 20


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The highest VmRSS of a process while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.before = rss_mb(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    @property
    def growth(self) -> float:
        return self.peak - self.before

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def _connect(addr: tuple[str, int], rcvbuf: int = 4096) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: what the gateway writes backs up on its side quickly.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(addr)
    return sock


def _read_pdu(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    header = exactly(16)
    return header + exactly(int.from_bytes(header[:4], "big") - 16)


def _bind(sock: socket.socket, account: dict) -> None:
    sock.settimeout(5)
    sock.sendall(encode(BindTransceiver(sequence_number=1, system_id=account["system_id"],
                                        password=account["password"])))
    resp = _read_pdu(sock)
    assert int.from_bytes(resp[8:12], "big") == 0, "bind refused"


def flood(sock: socket.socket, chunk: bytes, seconds: float) -> tuple[int, float | None]:
    """Write `chunk` again and again for up to `seconds`, never reading: (bytes the
    kernel took, seconds until the gateway reset the connection, or None)."""
    sock.settimeout(0.1)
    sent = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            try:
                sent += sock.send(chunk)
            except TimeoutError:
                continue  # the gateway is not reading: our buffers are full
    except (ConnectionResetError, BrokenPipeError):
        return sent, time.monotonic() - started
    finally:
        sock.close()
    return sent, None


def dropped(gw, cause: str) -> float:
    return gw.metrics.registry.get_sample_value(
        "smppgw_connections_dropped_total", {"reason": cause}) or 0.0


def refused(gw, reason: str) -> float:
    return gw.metrics.registry.get_sample_value(
        "smppgw_connections_refused_total", {"reason": reason}) or 0.0


# --- a peer that does not read -------------------------------------------------------


async def test_unbound_enquire_link_flood_is_dropped_and_memory_stays_flat(make_gateway):
    gw = await make_gateway(bind_timeout=2.0)
    sock = _connect(gw.endpoints.smpp)
    with PeakRss() as rss:
        sent, reset_after = await asyncio.to_thread(flood, sock, ENQUIRE_LINKS, 8.0)
    print(f"\n{sent / 1e6:.1f} MB in, reset after {reset_after}s, RSS +{rss.growth:.1f} MB")
    assert reset_after is not None and reset_after < 2.0 + 1.0
    assert rss.growth < RSS_GROWTH_MB
    assert dropped(gw, "unbound_enquire_link") == 1


async def test_unbound_flood_of_refused_requests_is_dropped_at_the_bind_timeout(make_gateway):
    gw = await make_gateway(bind_timeout=1.5)
    sock = _connect(gw.endpoints.smpp)
    with PeakRss() as rss:
        sent, reset_after = await asyncio.to_thread(flood, sock, QUERIES, 8.0)
    print(f"\n{sent / 1e6:.1f} MB in, reset after {reset_after}s, RSS +{rss.growth:.1f} MB")
    assert reset_after is not None and 1.0 < reset_after < 1.5 + 1.5
    assert rss.growth < RSS_GROWTH_MB
    assert dropped(gw, "bind_timeout") == 1
    assert len(gw.sessions.connections) == 0


async def test_bound_client_that_never_reads_is_dropped_past_max_unsent_bytes(make_gateway):
    gw = await make_gateway(max_unsent_bytes=65536)
    account = await new_account(gw)
    sock = _connect(gw.endpoints.smpp)
    await asyncio.to_thread(_bind, sock, account)
    with PeakRss() as rss:
        sent, reset_after = await asyncio.to_thread(flood, sock, ENQUIRE_LINKS, 8.0)
    print(f"\n{sent / 1e6:.1f} MB in, reset after {reset_after}s, RSS +{rss.growth:.1f} MB")
    assert reset_after is not None and reset_after < 3.0
    assert rss.growth < RSS_GROWTH_MB
    assert dropped(gw, "max_unsent_bytes") == 1
    # The account can bind again at once: the dropped session is gone.
    client = await RawClient.connect(*gw.endpoints.smpp)
    assert (await client.bind(account["system_id"], account["password"])).command_status == 0
    await client.close()


async def test_served_gateway_on_uvloop_drops_a_non_reading_flooder(tmp_path):
    env = {"SMPPGW_BIND_TIMEOUT": "1.5", "SMPPGW_CREATE_DEMO_ACCOUNT": "false"}
    gw = GatewayProcess(tmp_path / "var", env=env).start()
    try:
        pid = gw.proc.pid
        for chunk in (ENQUIRE_LINKS, QUERIES):
            sock = _connect(gw.endpoint)
            with PeakRss(pid) as rss:
                sent, reset_after = await asyncio.to_thread(flood, sock, chunk, 8.0)
            print(f"\n{sent / 1e6:.1f} MB in, reset after {reset_after}s, "
                  f"gateway RSS +{rss.growth:.1f} MB")
            assert reset_after is not None and reset_after < 1.5 + 1.5
            assert rss.growth < RSS_GROWTH_MB
    finally:
        assert gw.stop() == 0


async def test_slow_reader_is_not_dropped(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sock = _connect(gw.endpoints.smpp, rcvbuf=16384)
    await asyncio.to_thread(_bind, sock, account)
    sock.settimeout(30)
    count = 100_000  # 1.6 MB of answers: more than max_unsent_bytes (1 MiB)
    requests = b"".join(encode(EnquireLink(sequence_number=i + 1)) for i in range(count))
    writer = threading.Thread(target=sock.sendall, args=(requests,), daemon=True)
    writer.start()
    await asyncio.sleep(2.0)  # not reading meanwhile: the gateway must wait for us

    def read_answers() -> int:
        want, got = count * 16, 0
        while got < want:
            data = sock.recv(min(65536, want - got))
            if not data:
                raise ConnectionError("dropped")
            got += len(data)
        return got // 16

    assert await asyncio.to_thread(read_answers) == count
    writer.join(5)
    sock.sendall(encode(EnquireLink(sequence_number=count + 1)))
    assert len(await asyncio.to_thread(_read_pdu, sock)) == 16
    sock.close()
    for cause in ("max_unsent_bytes", "unread_at_close"):
        assert dropped(gw, cause) == 0


# --- connection limits ---------------------------------------------------------------


async def _open(host: str, port: int, source: str) -> tuple[asyncio.StreamReader,
                                                             asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def _admitted(host: str, port: int, source: str) -> RawClient:
    """A connection the gateway took: it answers an enquire_link."""
    client = RawClient(*await _open(host, port, source))
    assert (await client.request(EnquireLink())).command_status == 0
    return client


async def _is_refused(host: str, port: int, source: str) -> bool:
    """Accepted by the kernel and then aborted at once, before any SMPP."""
    reader, writer = await _open(host, port, source)
    writer.write(encode(EnquireLink(sequence_number=1)))
    try:
        data = await asyncio.wait_for(reader.read(16), 3.0)
    except ConnectionError:
        data = b""
    finally:
        writer.close()
    return data == b""


async def test_connections_beyond_the_limits_are_refused_and_the_owner_keeps_working(
    make_gateway, caplog
):
    gw = await make_gateway(max_connections=5, max_connections_per_ip=3)
    host, port = gw.endpoints.smpp
    account = await new_account(gw)
    owner = RawClient(*await _open(host, port, "127.0.0.1"))
    assert (await owner.bind(account["system_id"], account["password"])).command_status == 0
    local = [await _admitted(host, port, "127.0.0.1") for _ in range(2)]
    caplog.set_level(logging.WARNING, logger="gateway.sessions.registry")

    # Per address: a fourth from 127.0.0.1 is refused, another address is not.
    for _ in range(3):
        assert await _is_refused(host, port, "127.0.0.1")
    others = [await _admitted(host, port, "127.0.0.2") for _ in range(2)]
    assert gw.metrics.registry.get_sample_value("smppgw_connections_open") == 5
    # In all: a sixth is refused whatever its address.
    for _ in range(3):
        assert await _is_refused(host, port, "127.0.0.3")
    assert refused(gw, "max_connections_per_ip") == 3
    assert refused(gw, "max_connections") == 3
    # One line for the six refusals: a flood does not flood the log.
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1 and "max_connections_per_ip" in lines[0].getMessage()

    # The owner's bound session works all along.
    assert (await owner.request(SubmitSm(**GOOD_SUBMIT))).command_status == 0
    assert (await owner.request(EnquireLink())).command_status == 0

    # Once the others go, a new connection from the owner's address is taken and binds.
    for client in local + others:
        await client.close()
    await owner.request(Unbind())
    await owner.close()
    deadline = time.monotonic() + 5
    while gw.sessions.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    again = RawClient(*await _open(host, port, "127.0.0.1"))
    assert (await again.bind(account["system_id"], account["password"])).command_status == 0
    assert (await again.request(SubmitSm(**GOOD_SUBMIT))).command_status == 0
    await again.close()


# --- the open-file limit -------------------------------------------------------------

_RAISE = """
import logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard}))
from gateway.cli.serve import raise_open_file_limit
fit = raise_open_file_limit({wanted})
print("fit", fit, "soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _raise_in_child(hard: str, wanted: int) -> str:
    return subprocess.run(
        [sys.executable, "-c", _RAISE.format(hard=hard, wanted=wanted)], capture_output=True,
        text=True, check=True, cwd=Path(__file__).parent.parent, env={**os.environ},
    ).stdout


def test_serve_raises_the_open_file_limit_to_fit_max_connections():
    out = _raise_in_child("hard", 1000)
    assert "fit 1000 soft 1256" in out and "raised from 256 to 1256" in out
    assert "WARNING" not in out


def test_serve_warns_how_many_connections_fit_under_a_low_hard_limit():
    out = _raise_in_child("1280", 20000)
    assert "fit 1024 soft 1280" in out
    assert "WARNING" in out and "about 1024 connections fit" in out

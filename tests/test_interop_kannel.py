"""Kannel 1.4.5 (bearerbox + smsbox) as an SMPP transceiver client of the gateway.

50 messages go in through smsbox's sendsms HTTP interface, among them a 400-character
GSM text (Kannel splits it into UDH parts) and a UCS-2 text; every one must come back
as a delivery report on its dlr-url. Installs nothing: skips without `bearerbox`
(`.ci/run` installs the Debian package).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from gw_helpers import new_account

pytestmark = pytest.mark.skipif(
    shutil.which("bearerbox") is None or shutil.which("smsbox") is None,
    reason="Kannel is not installed (Debian package 'kannel' provides bearerbox and smsbox)",
)

MESSAGES = 50
LONG_GSM = ("Kannel splits this into concatenated parts. " * 10)[:400]
UCS2_TEXT = "Привет, мир! Ünïcödé ✓ 你好"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kannel_config(workdir: Path, smpp_port: int, account: dict, ports: dict) -> Path:
    conf = workdir / "kannel.conf"
    conf.write_text(f"""
group = core
admin-port = {ports['admin']}
admin-password = adminpw
status-password = adminpw
admin-allow-ip = 127.0.0.1
smsbox-port = {ports['smsbox']}
box-allow-ip = 127.0.0.1
log-file = "{workdir}/bearerbox.log"
log-level = 1
access-log = "{workdir}/access.log"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = smppgw
host = 127.0.0.1
port = {smpp_port}
transceiver-mode = true
smsc-username = "{account['system_id']}"
smsc-password = "{account['password']}"
system-type = VMA
dest-addr-ton = 1
dest-addr-npi = 1
enquire-link-interval = 30
max-pending-submits = 10
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {ports['sendsms']}
sendsms-interface = 127.0.0.1
log-file = "{workdir}/smsbox.log"
log-level = 1

group = sendsms-user
username = tester
password = testerpw
concatenation = true
max-messages = 5
""")
    return conf


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class DlrReceiver:
    """The dlr-url endpoint: records each report's query string."""

    def __init__(self) -> None:
        self.reports: list[dict[str, str]] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader, writer) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        target = request.split(b" ", 2)[1].decode()
        query = urllib.parse.urlsplit(target).query
        self.reports.append(dict(urllib.parse.parse_qsl(query)))
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


async def _wait(predicate, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_kannel_transceiver_gets_every_dlr(gateway, tmp_path):
    account = await new_account(gateway, credits="1000")
    ports = {"admin": _free_port(), "smsbox": _free_port(), "sendsms": _free_port()}
    conf = _kannel_config(tmp_path, gateway.endpoints.smpp[1], account, ports)
    dlrs = DlrReceiver()
    await dlrs.start()
    procs = []
    try:
        for box in ("bearerbox", "smsbox"):
            procs.append(await asyncio.create_subprocess_exec(
                box, str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL))
            if box == "bearerbox":
                await _wait(lambda: gateway.bound_sessions(account["system_id"]), 30,
                            "Kannel to bind")
        texts = [f"Kannel message {i}" for i in range(MESSAGES - 2)] + [LONG_GSM, UCS2_TEXT]
        for i, text in enumerate(texts):
            query = {
                "username": "tester", "password": "testerpw", "from": "ovh123",
                "to": "33601020304", "text": text, "dlr-mask": "1",
                "dlr-url": f"http://127.0.0.1:{dlrs.port}/dlr?n={i}&type=%d&id=%F",
            }
            if text is UCS2_TEXT:
                query.update(coding="2", charset="UTF-8")
            path = "/cgi-bin/sendsms?" + urllib.parse.urlencode(query)
            for _ in range(50):  # smsbox answers 503 until it has joined bearerbox
                try:
                    status, body = await _http_get(ports["sendsms"], path)
                except ConnectionError:
                    status, body = 0, b"not listening yet"
                if status in (200, 202):
                    break
                await asyncio.sleep(0.2)
            assert status in (200, 202), body
        await _wait(lambda: len({r["n"] for r in dlrs.reports}) >= MESSAGES, 120,
                    f"{MESSAGES} delivery reports")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await dlrs.stop()
    delivered = {r["n"] for r in dlrs.reports if r.get("type") == "1"}
    assert delivered == {str(i) for i in range(MESSAGES)}
    # 48 short messages, 3 parts of the 400-character text, 1 UCS-2 message.
    history = await gateway.messages.count_by_status(gateway.accounts.get(account["system_id"]).id)
    assert history == {"DELIVERED": MESSAGES - 2 + 3 + 1}

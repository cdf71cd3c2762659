"""Kannel 1.4.5 (bearerbox + smsbox) as an SMPP transceiver client of the gateway.

Messages go in through smsbox's sendsms HTTP interface, among them a 400-character GSM
text (Kannel splits it into UDH parts) and a UCS-2 text; every one must come back as a
delivery report on its dlr-url. One test runs Kannel configured for the provider
(dest-addr-ton/npi 1/1), one with a plain `group = smsc` as shipped, whose addresses the
gateway must take from the account's enabled senders. Installs nothing: skips without
`bearerbox` (`.ci/run` installs the Debian package).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from gw_helpers import history_statuses, new_account
from interop_helpers import SubmitTap, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("bearerbox") is None or shutil.which("smsbox") is None,
    reason="Kannel is not installed (Debian package 'kannel' provides bearerbox and smsbox)",
)

MESSAGES = 50
LONG_GSM = ("Kannel splits this into concatenated parts. " * 10)[:400]
UCS2_TEXT = "Привет, мир! Ünïcödé ✓ 你好"

# What Kannel needs to bind as a transceiver, and nothing about addressing. (A blank
# line would end the group in Kannel's configuration syntax.)
PLAIN_SMSC = ("transceiver-mode = true", "system-type = VMA", "reconnect-delay = 1")
# The same, set up the way the provider's guide asks.
PROVIDER_SMSC = PLAIN_SMSC + (
    "dest-addr-ton = 1", "dest-addr-npi = 1", "enquire-link-interval = 30",
    "max-pending-submits = 10",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kannel_config(
    workdir: Path, smpp_port: int, account: dict, ports: dict, smsc_lines: tuple[str, ...]
) -> Path:
    conf = workdir / "kannel.conf"
    smsc = "\n".join(smsc_lines)
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
smsc-username = "{account['system_id']}"
smsc-password = "{account['password']}"
{smsc}

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

    def delivered(self) -> dict[str, str]:
        """n -> the SMSC message id (%F) of each report of a delivered message."""
        return {r["n"]: r["id"] for r in self.reports if r.get("type") == "1"}

    async def _handle(self, reader, writer) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        target = request.split(b" ", 2)[1].decode()
        query = urllib.parse.urlsplit(target).query
        self.reports.append(dict(urllib.parse.parse_qsl(query)))
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


class Kannel:
    """bearerbox and smsbox bound to `smpp_port` as the account; sendsms in, dlr-url out."""

    def __init__(self, gateway, account: dict, workdir: Path, smpp_port: int,
                 smsc_lines: tuple[str, ...]) -> None:
        self.gateway, self.account = gateway, account
        self.ports = {"admin": _free_port(), "smsbox": _free_port(), "sendsms": _free_port()}
        self.conf = _kannel_config(workdir, smpp_port, account, self.ports, smsc_lines)
        self.dlrs = DlrReceiver()
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        await self.dlrs.start()
        for box in ("bearerbox", "smsbox"):
            self._procs.append(await asyncio.create_subprocess_exec(
                box, str(self.conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL))
            if box == "bearerbox":
                await wait_until(lambda: self.gateway.sessions.bound(self.account["system_id"]),
                                 30, "Kannel to bind")

    async def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.returncode is None:
                proc.terminate()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self.dlrs.stop()

    async def sendsms(self, n: int, sender: str, to: str, text: str) -> None:
        """One sendsms request asking for a final DLR on dlr-url, tagged n."""
        query = {
            "username": "tester", "password": "testerpw", "from": sender, "to": to,
            "text": text, "dlr-mask": "1",
            "dlr-url": f"http://127.0.0.1:{self.dlrs.port}/dlr?n={n}&type=%d&id=%F",
        }
        if any(ord(c) > 0xFF for c in text):
            query.update(coding="2", charset="UTF-8")
        path = "/cgi-bin/sendsms?" + urllib.parse.urlencode(query)
        for _ in range(50):  # smsbox answers 503 until it has joined bearerbox
            try:
                status, body = await _http_get(self.ports["sendsms"], path)
            except ConnectionError:
                status, body = 0, b"not listening yet"
            if status in (200, 202):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"sendsms refused message {n}: {status} {body!r}")


@contextlib.asynccontextmanager
async def running_kannel(gateway, account, workdir, smpp_port, smsc_lines):
    kannel = Kannel(gateway, account, workdir, smpp_port, smsc_lines)
    try:
        await kannel.start()
        yield kannel
    finally:
        await kannel.stop()


async def test_kannel_transceiver_gets_every_dlr(gateway, tmp_path):
    account = await new_account(gateway, credits="1000")
    texts = [f"Kannel message {i}" for i in range(MESSAGES - 2)] + [LONG_GSM, UCS2_TEXT]
    async with running_kannel(gateway, account, tmp_path, gateway.endpoints.smpp[1],
                              PROVIDER_SMSC) as kannel:
        for i, text in enumerate(texts):
            await kannel.sendsms(i, "ovh123", "33601020304", text)
        await wait_until(lambda: len({r["n"] for r in kannel.dlrs.reports}) >= MESSAGES, 120,
                         f"{MESSAGES} delivery reports")
    assert set(kannel.dlrs.delivered()) == {str(i) for i in range(MESSAGES)}
    # 48 short messages, 3 parts of the 400-character text, 1 UCS-2 message.
    history = await history_statuses(gateway, account["system_id"])
    assert history == {"DELIVERED": MESSAGES - 2 + 3 + 1}


# Kannel's plain smsc group against an account whose enabled senders are these two.
PLAIN_SENDERS = [{"address": "12345", "kind": "shortcode"},
                 {"address": "Test", "kind": "alphanumeric"}]
NORMALISED_SOURCE = {"12345": (3, 1), "Test": (5, 0)}
# What Kannel 1.4.5 puts on the wire with no *-addr-ton/npi lines, as measured through the
# tap (source, then destination TON/NPI): with source-addr autodetect left on, the
# non-digit sender Test goes as alphanumeric 5/0 and the digit-only 12345 as national/ISDN
# 2/1; the destination goes as 2/1. Strict addressing would refuse 12345 (TON 2 is no
# sender kind) and every destination (TON 2); lenient stores 3/1, 5/0 and 1/1.
KANNEL_PLAIN_SENDS = {"12345": (2, 1, 2, 1), "Test": (5, 0, 2, 1)}
TEXTS = {"short": "Hello from Kannel", "long": LONG_GSM, "ucs2": UCS2_TEXT}
DESTINATION = "33601020304"


def _parts_of(submits, sender: str, kind: str) -> list:
    """The wire submit_sm Kannel made of one sendsms request, told apart by coding/UDH."""
    mine = [s for s in submits if s.source_addr == sender]
    if kind == "long":
        return [s for s in mine if s.esm_class & 0x40]
    coding = 0x08 if kind == "ucs2" else 0x00
    return [s for s in mine if not s.esm_class & 0x40 and s.data_coding == coding]


async def test_kannel_plain_smsc_group_is_served_by_enabled_senders(gateway, tmp_path):
    account = await new_account(gateway, credits="100", senders=PLAIN_SENDERS)
    tap = SubmitTap(gateway.endpoints.smpp)
    await tap.start()
    requests = [(sender, kind) for sender in NORMALISED_SOURCE for kind in TEXTS]
    try:
        async with running_kannel(gateway, account, tmp_path, tap.port, PLAIN_SMSC) as kannel:
            for n, (sender, kind) in enumerate(requests):
                await kannel.sendsms(n, sender, DESTINATION, TEXTS[kind])
            await wait_until(lambda: len(kannel.dlrs.delivered()) >= len(requests), 60,
                             f"{len(requests)} delivered reports")
    finally:
        await tap.stop()
    # Every submit_sm was accepted: one short, three UDH parts, one UCS-2 per sender.
    assert [s.command_status for s in tap.submits] == [0] * 10, tap.submits
    sent = {(s.source_addr, s.source_ton, s.source_npi, s.dest_ton, s.dest_npi)
            for s in tap.submits}
    assert sent == {(sender, *ton_npi) for sender, ton_npi in KANNEL_PLAIN_SENDS.items()}
    delivered = kannel.dlrs.delivered()
    for n, (sender, kind) in enumerate(requests):
        parts = _parts_of(tap.submits, sender, kind)
        assert len(parts) == (3 if kind == "long" else 1), (sender, kind, tap.submits)
        # Kannel asks for a report on the first part of a split message only.
        assert delivered[str(n)] == parts[0].message_id, (sender, kind)
    for submit in tap.submits:
        row = await gateway.messages.get(int(submit.message_id))
        assert (row["source_addr"], row["source_ton"], row["source_npi"]) == (
            submit.source_addr, *NORMALISED_SOURCE[submit.source_addr])
        assert (row["dest_addr"], row["dest_ton"], row["dest_npi"]) == (DESTINATION, 1, 1)
        assert row["status"] == "DELIVERED"

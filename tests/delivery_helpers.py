"""Helpers for the delivery pipeline tests: ready accounts, a receiving ESME, the
standalone simulator as a subprocess, and waiting on the store."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gw_helpers import admin
from smpp_client import RawClient

from pdu.codec import BindTransceiver, CommandId, DeliverSmResp, Pdu, SubmitSm, Unbind
from pdu.receipt import parse_receipt
from pdu.tlv import Tag, as_cstr

SENDER = "ACME"


async def ready_account(gw, credits: str = "100000", sender: str = SENDER) -> dict:
    """An account that may bind from loopback and send from `sender`."""
    return await admin(gw, "account.create", credits=credits, allowed_ips=["127.0.0.1"],
                       senders=[sender])


def submit_pdu(dest: str, text: str = "hello", rd: int = 1, **fields) -> SubmitSm:
    values = {
        "source_addr": SENDER, "source_addr_ton": 5, "source_addr_npi": 0,
        "destination_addr": dest, "dest_addr_ton": 1, "dest_addr_npi": 1,
        "registered_delivery": rd, "short_message": text.encode(),
    }
    return SubmitSm(**{**values, **fields})


class Esme:
    """A transceiver that submits with a window and answers every deliver_sm."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.receipts: dict[str, list[Pdu]] = {}
        self.mos: list[Pdu] = []
        self.alerts: list[Pdu] = []
        self.responses: dict[int, Pdu] = {}
        # Loop time each response, and each message's first receipt, arrived.
        self.response_at: dict[int, float] = {}
        self.receipt_at: dict[str, float] = {}
        self._reader: asyncio.Task | None = None
        self.deliver_status = 0
        self._leaving = False

    @classmethod
    async def bind(cls, host: str, port: int, account: dict, bind_cls=BindTransceiver) -> Esme:
        client = await RawClient.connect(host, port)
        resp = await client.bind(account["system_id"], account["password"], cls=bind_cls)
        assert resp.command_status == 0, resp
        esme = cls(client)
        esme._reader = asyncio.get_running_loop().create_task(esme._read())
        return esme

    async def _read(self) -> None:
        while True:
            try:
                pdu = await self.client.read(timeout=3600)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                return
            if pdu.command_id == CommandId.DELIVER_SM:
                if self._leaving:
                    continue  # neither answered nor counted: the gateway must send it again
                await self.client.send(
                    DeliverSmResp(sequence_number=pdu.sequence_number,
                                  command_status=self.deliver_status)
                )
                if self.deliver_status:
                    continue
                if pdu.esm_class & 0x04:
                    rid = pdu.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
                    mid = as_cstr(rid) if rid else parse_receipt(pdu.short_message).message_id
                    self.receipts.setdefault(mid, []).append(pdu)
                    self.receipt_at.setdefault(mid, asyncio.get_running_loop().time())
                else:
                    self.mos.append(pdu)
            elif pdu.command_id == CommandId.ALERT_NOTIFICATION:
                self.alerts.append(pdu)  # no response: SMPP 3.4 4.12
            elif pdu.is_response:
                self.response_at[pdu.sequence_number] = asyncio.get_running_loop().time()
                self.responses[pdu.sequence_number] = pdu

    @property
    def gone(self) -> bool:
        """The gateway closed the connection (the reader has stopped)."""
        return self._reader is not None and self._reader.done()

    async def submit_many(self, pdus: list[SubmitSm], window: int = 10,
                          timeout: float = 60) -> list[Pdu]:
        """Submit with at most `window` outstanding; returns the responses in order."""
        seqs = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for pdu in pdus:
            while sum(1 for s in seqs if s not in self.responses) >= window:
                assert loop.time() < deadline, "submit window never drained"
                await asyncio.sleep(0.002)
            seqs.append(await self.client.send(pdu))
        await wait_for(lambda: all(s in self.responses for s in seqs), timeout)
        return [self.responses[s] for s in seqs]

    async def request(self, pdu: Pdu, timeout: float = 10) -> Pdu:
        seq = await self.client.send(pdu)
        await wait_for(lambda: seq in self.responses, timeout)
        return self.responses[seq]

    async def leave(self) -> None:
        """Unbind and close; deliver_sm arriving from now on are neither answered nor kept."""
        self._leaving = True
        try:
            await self.client.send(Unbind())
            await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass
        await self.close()

    async def close(self) -> None:
        await self.client.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


# --- the standalone simulator -----------------------------------------------------------


class SimProcess:
    """`python -m gateway.upstream.smsc_sim` on a loopback port, stopped by the test."""

    def __init__(self, tmp: Path, *args: str, port: int = 0) -> None:
        self.tmp = tmp
        self.args = list(args)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "sim-accepted.jsonl"
        self.state = tmp / "sim-state.json"

    def start(self) -> SimProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.upstream.smsc_sim", "--host", "127.0.0.1",
             "--port", str(self.port), "--log", str(self.log), "--state", str(self.state),
             *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"smsc_sim exited: {self.proc.stderr.read()}")
            if m := re.search(r"listening on \S+:(\d+)", line):
                self.port = int(m.group(1))
            if line.startswith("smsc_sim: ready"):
                return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def accepted(self) -> list[dict]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    @property
    def url(self) -> str:
        return f"smpp://gw:secret@127.0.0.1:{self.port}"


# --- the gateway as an operator runs it -----------------------------------------------


class GatewayProcess:
    """`python -m gateway.cli serve` on free ports; SIGKILL-able."""

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, str] = {}

    def start(self) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--state-dir", str(self.state_dir),
             "--smpp-port", "0", "--metrics-port", "0", "--web-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        info: dict[str, str] = {}
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("serve exited before it was ready")
            if m := re.search(r"SMPP listening on (\S+):(\d+)", line):
                info["host"], info["port"] = m.group(1), m.group(2)
            elif m := re.search(r"web panel on (\S+)", line):
                info["web"] = m.group(1).rstrip("/")
            elif line.startswith("  system_id="):
                info.update(dict(re.findall(r"(\w+)=(\S+)", line)))
            elif line.startswith("smppgw: ready"):
                break
        self.info = info
        return self

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.info["host"], int(self.info["port"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

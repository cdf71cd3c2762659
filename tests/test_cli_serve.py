"""`smppgw serve` and `smppgw admin` as an operator runs them: real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import smpplib.client
import smpplib.consts

SMPPGW = [sys.executable, "-m", "gateway.cli"]


def _start(state_dir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    env["SMPPGW_SIMULATOR_DELAY_MS"] = "20"
    proc = subprocess.Popen(
        [*SMPPGW, "serve", "--state-dir", str(state_dir), "--smpp-port", "0",
         "--metrics-port", "0", "--web-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    info: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited early: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("serve did not print its endpoints in time")
        if m := re.search(r"SMPP listening on (\S+):(\d+)", line):
            info["host"], info["port"] = m.group(1), m.group(2)
        elif m := re.search(r"admin socket (\S+)", line):
            info["admin"] = m.group(1)
        elif m := re.search(r"metrics on (\S+)", line):
            info["metrics"] = m.group(1)
        elif line.startswith("  system_id="):
            info.update(dict(re.findall(r"(\w+)=(\S+)", line)))
        elif line.startswith("smppgw: ready"):
            break
    return proc, info


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _admin(info: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SMPPGW, "admin", "--socket", info["admin"], *args],
        check=False, capture_output=True, text=True, timeout=60,
    )


def test_serve_prints_endpoints_and_a_demo_account_that_works(tmp_path):
    state = tmp_path / "var"
    proc, info = _start(state)
    try:
        assert info["password"] and len(info["password"]) == 8
        assert (state / "smppgw.db").exists()
        assert oct((state / "admin.sock").stat().st_mode & 0o777) == "0o600"
        client = smpplib.client.Client(info["host"], int(info["port"]), timeout=10,
                                       allow_unknown_opt_params=False)
        dlrs, resps = [], []
        client.set_message_received_handler(lambda pdu: dlrs.append(pdu))
        client.set_message_sent_handler(lambda pdu: resps.append(pdu))
        client.connect()
        client.bind_transceiver(system_id=info["system_id"], password=info["password"])
        client.send_message(source_addr="ovh", source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                            destination_addr="33601020304",
                            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                            short_message=b"hello", registered_delivery=1)
        while not (dlrs and resps):
            client.read_once()
        client.unbind()
        client.disconnect()
        assert resps[0].status == 0
        shown = _admin(info, "account", "show", info["system_id"], "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["balance"] == "999.00"
    finally:
        assert _stop(proc) == 0
    # A second start on the same state keeps the account and creates no new demo.
    proc, info2 = _start(state)
    try:
        assert "password" not in info2
        listed = _admin(info2, "account", "list", "--json")
        assert [a["system_id"] for a in json.loads(listed.stdout)] == [info["system_id"]]
    finally:
        assert _stop(proc) == 0


def test_admin_cli_reports_bad_input_with_non_zero_exit(tmp_path):
    proc, info = _start(tmp_path / "var")
    try:
        created = _admin(info, "account", "create", "--credits", "5", "--allow-ip", "10.0.0.0/8",
                         "--json")
        assert created.returncode == 0, created.stderr
        sid = json.loads(created.stdout)["system_id"]
        cases = [
            (("account", "show", "smpp-missing"), "unknown account"),
            (("ip", "add", sid, "10.0.0.1/8"), "host bits"),
            (("credits", "add", sid, "-3"), "negative"),
            (("credits", "add", sid, "1.234"), "decimal"),
            (("account", "create", "--allow-ip", "not-an-ip"), "not-an-ip"),
        ]
        for args, expected in cases:
            result = _admin(info, *args)
            assert result.returncode != 0, args
            assert expected in result.stderr.lower(), (args, result.stderr)
        table = _admin(info, "account", "list")
        assert table.returncode == 0 and sid in table.stdout and "SYSTEM_ID" in table.stdout
    finally:
        _stop(proc)
    gone = _admin(info, "account", "list")
    assert gone.returncode == 3 and "cannot reach the admin socket" in gone.stderr

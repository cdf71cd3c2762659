"""`smppgw admin` (gateway/cli/admin) as an operator runs it: a real process talking to
the admin socket of a gateway running in this test, its output, exit codes and the
effect of its commands on the next bind."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from gw_helpers import new_account
from smpp_client import RawClient

from gateway.app import Gateway
from pdu.status import CommandStatus as S


async def _cli(gw: Gateway, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "admin", "--socket", gw.endpoints.admin_socket,
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def _ok(gw: Gateway, *args: str) -> str:
    code, out, err = await _cli(gw, *args)
    assert code == 0, (args, err)
    return out


async def _json(gw: Gateway, *args: str):
    return json.loads(await _ok(gw, *args, "--json"))


async def test_operator_flow_from_create_to_export(gateway: Gateway, tmp_path) -> None:
    created = await _json(
        gateway, "account", "create", "--credits", "10", "--allow-ip", "127.0.0.1",
        "--sender", "ACME", "--sender", "36180:shortcode", "--contact-email", "ops@acme.test",
        "--window", "4", "--stop-mode", "refuse", "--gsm-packed", "yes",
    )
    sid = created["system_id"]
    assert (created["window"], created["stop_mode"], created["gsm_packed"]) == (4, "refuse", True)
    assert sorted(created["senders_enabled"]) == ["36180", "ACME"]
    shown = await _ok(gateway, "account", "show", sid)
    assert "window" in shown and "refuse" in shown  # a human record, not JSON
    assert (await _json(gateway, "account", "set", sid, "--throughput", "5",
                        "--max-segments", "3"))["max_segments"] == 3
    assert (await _json(gateway, "account", "suspend", sid))["status"] == "suspended"
    assert (await _json(gateway, "account", "resume", sid))["status"] == "active"

    await _ok(gateway, "sender", "add", sid, "NEWS", "--comment", "marketing")
    table = await _ok(gateway, "sender", "list", sid)
    assert "ADDRESS" in table and "NEWS" in table and "pending" in table
    await _ok(gateway, "sender", "set-state", sid, "NEWS", "enabled")
    await _ok(gateway, "sender", "remove", sid, "NEWS")

    await _ok(gateway, "rate", "set", "33", "0.40")
    await _ok(gateway, "rate", "set", "336", "0.30", "--account", sid)
    assert (await _json(gateway, "rate", "quote", sid, "33612345678"))["price"] == "0.30"
    assert "PREFIX" in await _ok(gateway, "rate", "list")
    await _ok(gateway, "rate", "remove", "336", "--account", sid)

    other = (await new_account(gateway, credits="0"))["system_id"]
    moved = await _json(gateway, "credits", "transfer", sid, other, "2.5")
    assert (moved["from_balance"], moved["to_balance"]) == ("7.50", "2.50")
    auto = await _json(gateway, "credits", "auto-topup", sid, "--threshold", "1",
                       "--amount", "5", "--monthly-cap", "20")
    assert auto["auto_topup_monthly_cap"] == "20.00"
    assert (await _json(gateway, "credits", "alert", sid, "--threshold", "3"))[
        "low_balance_threshold"] == "3.00"
    ledger = await _json(gateway, "ledger", "list", sid)
    assert [e["kind"] for e in ledger] == ["transfer_out", "topup"]
    assert (await _json(gateway, "ledger", "check"))["ok"] is True

    await _ok(gateway, "stop", "add", sid, "33612345678", "--note", "STOP")
    assert "33612345678" in await _ok(gateway, "stop", "list", sid)
    await _ok(gateway, "stop", "remove", sid, "33612345678")

    assert await _json(gateway, "history", "query", sid) == []
    out = tmp_path / "h.csv"
    code, _, err = await _cli(gateway, "history", "export", sid, "--output", str(out))
    assert code == 0 and "exported 0 rows" in err
    assert out.read_text().startswith("id,system_id,direction,created_at")

    audit = await _json(gateway, "audit", "--target", sid, "--limit", "100")
    actions = {e["action"] for e in audit}
    assert {"account.create", "account.set", "account.suspend", "account.resume",
            "sender.add", "sender.set_state", "sender.remove", "credits.transfer",
            "credits.auto_topup", "credits.alert", "stop.add", "stop.remove"} <= actions
    assert "password" not in json.dumps(audit).replace('"password": "old"', "").replace(
        '"password": "new"', "")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("account", "set", "SID", "--window", "0"), "window"),
        (("account", "set", "smpp-nobody", "--window", "3"), "unknown account"),
        (("account", "set", "SID"), "nothing to change"),
        (("sender", "add", "SID", "1234567890123456"), "international"),
        (("sender", "add", "SID", "TOO-LONG-SENDER"), "11"),
        (("sender", "set-state", "SID", "NOPE", "enabled"), "no sender"),
        (("rate", "set", "3x", "1"), "prefix"),
        (("rate", "set", "33", "-1"), "negative"),
        (("rate", "remove", "99"), "no rate"),
        (("credits", "transfer", "SID", "SID", "1"), "itself"),
        (("credits", "transfer", "SID", "smpp-nobody", "1"), "unknown account"),
        (("credits", "transfer", "SID", "OTHER", "-1"), "negative"),
        (("credits", "transfer", "SID", "OTHER", "1000"), "insufficient"),
        (("credits", "add", "SID", "-3"), "negative"),
        (("credits", "auto-topup", "SID", "--threshold", "1"), "amount"),
        (("ip", "add", "SID", "10.0.0.1/8"), "host bits"),
        (("stop", "add", "SID", "not-a-number"), "digits"),
        (("history", "query", "--since", "last week"), "iso 8601"),
        (("history", "delete", "smpp-nobody", "1"), "unknown account"),
    ],
)
async def test_bad_input_gets_a_message_and_exit_1(gateway: Gateway, args, expected) -> None:
    sid = (await new_account(gateway, credits="5"))["system_id"]
    other = (await new_account(gateway, credits="0"))["system_id"]
    argv = [{"SID": sid, "OTHER": other}.get(a, a) for a in args]
    code, out, err = await _cli(gateway, *argv)
    assert code == 1, (argv, out, err)
    assert err.startswith("smppgw admin: ") and expected in err.lower(), err
    assert out == ""


async def test_export_error_and_usage_errors(gateway: Gateway, tmp_path) -> None:
    code, _, err = await _cli(gateway, "history", "export", "smpp-nobody", "-o",
                              str(tmp_path / "x.csv"))
    assert code == 1 and "unknown account" in err
    assert not (tmp_path / "x.csv").exists()
    code, _, err = await _cli(gateway, "sender", "set-state", "x", "ACME", "approved")
    assert code == 2 and "invalid choice" in err


async def test_password_rotation_through_the_cli(gateway):
    account = await new_account(gateway)
    code, out, err = await _cli(gateway, "password", "rotate", account["system_id"], "--json")
    assert code == 0, err
    new_password = json.loads(out)["password"]
    assert new_password != account["password"] and len(new_password) == 8
    old = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await old.bind(account["system_id"], account["password"])).command_status == (
        S.ESME_RINVPASWD
    )
    await old.close()
    new = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await new.bind(account["system_id"], new_password)).command_status == 0
    await new.close()


async def test_credits_past_the_bound_are_refused_and_the_books_stay_readable(gateway):
    """The attack of issue 12: `credits add SID 5e16` twice used to store a float in the
    balance, after which balance, account list and ledger check failed for everyone."""
    sid = (await new_account(gateway, credits="5"))["system_id"]
    other = (await new_account(gateway, credits="5"))["system_id"]
    for _ in range(2):
        code, out, err = await _cli(gateway, "credits", "add", sid, "5e16")
        assert (code, out) == (1, "") and "exponent" in err, err
        code, out, err = await _cli(gateway, "credits", "add", sid, "50000000000000000")
        assert (code, out) == (1, "") and "too large" in err, err
    # Up to the bound, then not one cent past it.
    await _ok(gateway, "credits", "add", sid, "9999999999995")
    code, out, err = await _cli(gateway, "credits", "add", sid, "0.01")
    assert (code, out) == (1, "") and "limit" in err, err
    # A transfer into the full account writes nothing, and says so.
    code, out, err = await _cli(gateway, "credits", "transfer", other, sid, "1")
    assert (code, out) == (1, "") and "limit" in err, err
    assert (await _json(gateway, "balance", sid))["balance"] == "10000000000000.00"
    assert (await _json(gateway, "balance", other))["balance"] == "5.00"
    assert [e["kind"] for e in await _json(gateway, "ledger", "list", other)] == ["topup"]
    assert {a["system_id"] for a in await _json(gateway, "account", "list")} >= {sid, other}
    assert (await _json(gateway, "ledger", "check"))["ok"] is True

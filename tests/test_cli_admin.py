"""`smppgw admin` (gateway/cli/admin) as an operator runs it: a real process talking to
the admin socket of a gateway running in this test, its output, exit codes and the
effect of its commands on the next bind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gw_helpers import new_account
from smpp_client import RawClient

import gateway.cli
from gateway.app import Gateway
from pdu.codec import CancelSm, CommandId, EnquireLink, SubmitSm
from pdu.status import CommandStatus as S

IN_AN_HOUR = "000000010000000R"  # relative schedule_delivery_time


async def _cli(gw: Gateway, *args: str) -> tuple[int, str, str]:
    return await _admin_command("--socket", gw.endpoints.admin_socket, *args)


async def _admin_command(*argv: str, env: dict | None = None) -> tuple[int, str, str]:
    """`smppgw admin ARGV` as a process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "admin", *argv, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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


# Arguments the gateway cannot read: exit 2, as argparse's own usage errors.
UNREADABLE = [
        (("account", "set", "SID", "--window", "0"), "window"),
        (("account", "set", "SID"), "nothing to change"),
        (("sender", "add", "SID", "1234567890123456"), "international"),
        (("sender", "add", "SID", "TOO-LONG-SENDER"), "11"),
        (("rate", "set", "3x", "1"), "prefix"),
        (("rate", "set", "33", "-1"), "negative"),
        (("credits", "transfer", "SID", "SID", "1"), "itself"),
        (("credits", "transfer", "SID", "OTHER", "-1"), "negative"),
        (("credits", "add", "SID", "-3"), "negative"),
        (("credits", "add", "SID", "0"), "positive"),
        (("credits", "auto-topup", "SID", "--threshold", "1"), "amount"),
        (("ip", "add", "SID", "10.0.0.1/8"), "host bits"),
        (("stop", "add", "SID", "not-a-number"), "digits"),
        (("history", "query", "--since", "last week"), "iso 8601"),
        (("sessions", "kick", "x" * 65), "at most"),
]
# Well-formed requests the gateway refuses: exit 1.
REFUSED = [
        (("account", "set", "smpp-nobody", "--window", "3"), "unknown account"),
        (("sender", "set-state", "SID", "NOPE", "enabled"), "no sender"),
        (("rate", "remove", "99"), "no rate"),
        (("credits", "transfer", "SID", "smpp-nobody", "1"), "unknown account"),
        (("credits", "transfer", "SID", "OTHER", "1000"), "insufficient"),
        (("history", "delete", "smpp-nobody", "1"), "unknown account"),
        (("sessions", "kick", "gw-nowhere/1"), "no bound session"),
        (("account", "delete", "smpp-nobody", "--yes"), "unknown account"),
]


@pytest.mark.parametrize("cases, exit_code", [(UNREADABLE, 2), (REFUSED, 1)],
                         ids=["unreadable-exit-2", "refused-exit-1"])
async def test_bad_input_gets_a_message_and_its_exit_code(gateway: Gateway, cases,
                                                          exit_code) -> None:
    """Usage errors the gateway finds (its answer says "usage") exit 2 like argparse's;
    refusals of a well-formed request exit 1. The message goes to stderr, nothing out."""
    sid = (await new_account(gateway, credits="5"))["system_id"]
    other = (await new_account(gateway, credits="0"))["system_id"]
    for args, expected in cases:
        argv = [{"SID": sid, "OTHER": other}.get(a, a) for a in args]
        code, out, err = await _cli(gateway, *argv)
        assert code == exit_code, (argv, out, err)
        assert err.startswith("smppgw admin: ") and expected in err.lower(), (argv, err)
        assert out == "", argv


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
        # Amounts that cannot be read are usage errors (2); a balance past its bound is
        # a refusal (1).
        code, out, err = await _cli(gateway, "credits", "add", sid, "5e16")
        assert (code, out) == (2, "") and "exponent" in err, err
        code, out, err = await _cli(gateway, "credits", "add", sid, "50000000000000000")
        assert (code, out) == (2, "") and "too large" in err, err
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


async def test_json_and_socket_flags_are_taken_before_or_after_the_command(
    gateway: Gateway,
) -> None:
    sid = (await new_account(gateway))["system_id"]
    sock = gateway.endpoints.admin_socket
    for argv in (
        ("--json", "account", "list", "--socket", sock),
        ("account", "list", "--json", "--socket", sock),
        ("--socket", sock, "--json", "account", "list"),
        ("account", "--json", "list", "--socket", sock),
        ("--socket", sock, "account", "list", "--json"),
    ):
        code, out, err = await _admin_command(*argv)
        assert code == 0, (argv, err)
        assert sid in {a["system_id"] for a in json.loads(out)}, argv
    code, out, err = await _admin_command("account", "list", "--socket", sock)
    assert code == 0 and out.startswith("SYSTEM_ID"), err  # a table without --json
    # The flag given last on the line is the one used.
    code, _, err = await _admin_command("--socket", "/nowhere.sock", "account", "list",
                                        "--socket", sock)
    assert code == 0, err
    code, _, err = await _admin_command("--socket", sock, "account", "list",
                                        "--socket", "/nowhere.sock")
    assert code == 3 and "/nowhere.sock" in err


async def test_audit_and_nested_answers_print_as_text_never_as_python_reprs(
    gateway: Gateway,
) -> None:
    sid = (await new_account(gateway, credits="5"))["system_id"]
    await _ok(gateway, "account", "set", sid, "--window", "7")
    await _ok(gateway, "account", "suspend", sid)
    await _ok(gateway, "credits", "add", sid, "2")
    table = await _ok(gateway, "audit", "--target", sid)
    assert "{'" not in table and "['" not in table, table
    assert "status=suspended" in table and "window=7" in table, table
    assert "ACTION" in table.splitlines()[0]
    entries = await _json(gateway, "audit", "--target", sid)
    assert {e["action"] for e in entries} >= {"account.set", "account.suspend", "credits.add"}
    for argv in (("account", "show", sid), ("ledger", "check"), ("ledger", "list", sid),
                 ("sessions",), ("nodes",), ("balance", sid)):
        out = await _ok(gateway, *argv)
        assert "{'" not in out and "['" not in out and "True, " not in out, (argv, out)


async def _bound(gw: Gateway, system_id: str, password: str) -> RawClient:
    client = await RawClient.connect(*gw.endpoints.smpp)
    assert (await client.bind(system_id, password)).command_status == S.ESME_ROK
    return client


async def test_account_delete_waits_for_messages_in_flight_and_keeps_the_books(
    gateway: Gateway,
) -> None:
    account = await new_account(gateway, credits="10")
    sid = account["system_id"]
    client = await _bound(gateway, sid, account["password"])
    scheduled = await client.request(SubmitSm(
        source_addr="ovh123", source_addr_ton=5, source_addr_npi=0,
        destination_addr="33601020304", dest_addr_ton=1, dest_addr_npi=1,
        short_message=b"later", schedule_delivery_time=IN_AN_HOUR))
    assert scheduled.command_status == S.ESME_ROK
    # A message waits in the outbox: refused, and the customer stays bound.
    code, out, err = await _cli(gateway, "account", "delete", sid, "--yes")
    assert (code, out) == (1, "") and "1 message(s) not final" in err, err
    assert (await client.request(EnquireLink())).command_status == S.ESME_ROK
    cancel = CancelSm(message_id=scheduled.message_id, source_addr="ovh123",
                      source_addr_ton=5, source_addr_npi=0)
    assert (await client.request(cancel)).command_status == S.ESME_ROK
    # Nothing in flight, but credits left: refused until they are transferred or forfeited.
    code, _, err = await _cli(gateway, "account", "delete", sid, "--yes")
    assert code == 1 and "balance is 10.00" in err, err
    # No terminal to ask on, no --yes: a usage error, nothing deleted.
    code, _, err = await _cli(gateway, "account", "delete", sid, "--forfeit-balance")
    assert code == 2 and "--yes" in err, err
    deleted = await _json(gateway, "account", "delete", sid, "--yes", "--forfeit-balance")
    assert deleted == {"system_id": sid, "deleted": True, "sessions_unbound": 1,
                       "balance_forfeited": "10.00"}
    await client.wait_received(CommandId.UNBIND)
    await client.close()
    again = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await again.bind(sid, account["password"])).command_status != S.ESME_ROK
    await again.close()
    code, _, err = await _cli(gateway, "account", "show", sid)
    assert code == 1 and "unknown account" in err
    assert sid not in {a["system_id"] for a in await _json(gateway, "account", "list")}
    # The books stay whole: the forfeited balance left through the ledger.
    assert (await _json(gateway, "ledger", "check"))["ok"] is True
    audit = await _json(gateway, "audit", "--target", sid)
    assert audit[0]["action"] == "account.delete"
    assert audit[0]["after"]["balance_forfeited"] == "10.00"
    # The system_id is never given again.
    code, _, err = await _cli(gateway, "account", "create", "--system-id", sid)
    assert code == 1 and "already exists" in err, err


async def test_sessions_kick_unbinds_exactly_the_session_named(gateway: Gateway) -> None:
    account = await new_account(gateway, settings={"bind_limit": 2})
    sid, password = account["system_id"], account["password"]
    first = await _bound(gateway, sid, password)
    second = await _bound(gateway, sid, password)
    listed = await _json(gateway, "sessions", "list", sid)
    by_port = {s["peer"].rsplit(":", 1)[1]: s["id"] for s in listed}
    first_id = by_port[str(first.writer.get_extra_info("sockname")[1])]
    second_id = by_port[str(second.writer.get_extra_info("sockname")[1])]
    assert first_id != second_id
    assert "ID" in (await _ok(gateway, "sessions")).splitlines()[0]

    kicked = await _json(gateway, "sessions", "kick", first_id)
    assert (kicked["id"], kicked["system_id"], kicked["sessions_unbound"]) == (
        first_id, sid, 1)
    await first.wait_received(CommandId.UNBIND)
    assert (await second.request(EnquireLink())).command_status == S.ESME_ROK
    for _ in range(200):  # the kicked session leaves once its unbind is answered
        listed = await _json(gateway, "sessions", "list", sid)
        if len(listed) == 1:
            break
        await asyncio.sleep(0.05)
    assert [s["id"] for s in listed] == [second_id]
    code, _, err = await _cli(gateway, "sessions", "kick", first_id)
    assert code == 1 and "no bound session" in err, err

    assert (await _json(gateway, "sessions", "kick", "--account", sid))[
        "sessions_unbound"] == 1
    await second.wait_received(CommandId.UNBIND)
    for client in (first, second):
        await client.close()
    audit = await _json(gateway, "audit", "--target", sid, "--action", "sessions.kick")
    assert [e["after"].get("session") for e in audit] == [None, first_id]


def test_shell_completion_hook_completes_commands_and_flags(tmp_path: Path) -> None:
    """argcomplete's marker is where it looks (the first 1024 bytes of the module the
    console script enters), and the parser answers a completion request."""
    assert b"PYTHON_ARGCOMPLETE_OK" in Path(gateway.cli.__file__).read_bytes()[:1024]
    for line, expected in (("smppgw admin acc", "account"),
                           ("smppgw admin account list --js", "--json"),
                           ("smppgw admin upstream add up1 --long-m", "--long-messages")):
        out = tmp_path / "completions"
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line,
               "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
        done = subprocess.run([sys.executable, "-m", "gateway.cli"], env=env,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
        offered = [word.strip() for word in out.read_text().split("\v")]
        assert expected in offered, (line, offered)


async def test_upstream_route_and_number_commands_through_the_cli(gateway: Gateway) -> None:
    sid = (await new_account(gateway))["system_id"]
    table = await _ok(gateway, "upstream", "list")
    assert table.split()[:11] == ["NAME", "TYPE", "STATE", "SINCE", "LAST_ERROR",
                                   "IN_FLIGHT", "WINDOW", "RATE", "HOST", "PORT", "ENABLED"]
    added = await _json(gateway, "upstream", "add", "sim2", "--type", "simulator",
                        "--latency-ms", "5")
    assert (added["name"], added["type"]) == ("sim2", "simulator")
    sock = gateway.endpoints.admin_socket
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "admin", "upstream", "add", "far", "--type",
        "smpp", "--host", "127.0.0.1", "--port", "9", "--system-id", "gw",
        "--password-stdin", "--json", "--socket", sock,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(b"s3cret\n")
    assert proc.returncode == 0, err
    assert (await _json(gateway, "upstream", "stop", "far"))["enabled"] is False
    await _ok(gateway, "upstream", "set", "sim2", "--latency-ms", "7")
    listed = {u["name"]: u for u in await _json(gateway, "upstream", "list")}
    assert listed["far"]["enabled"] is False and "sim2" in listed

    await _ok(gateway, "route", "set", "4470", "sim2", "simulator", "--account", sid)
    routes = await _json(gateway, "route", "list")
    assert any(r["prefix"] == "4470" and r["account"] == sid for r in routes), routes
    await _ok(gateway, "route", "remove", "4470", "--account", sid)
    await _ok(gateway, "number", "add", sid, "33612340000-33612349999")
    assert "33612340000-33612349999" in await _ok(gateway, "number", "list", sid)
    await _ok(gateway, "number", "remove", sid, "33612340000-33612349999")
    for name in ("far", "sim2"):
        await _ok(gateway, "upstream", "remove", name)

    # Every answer and the audit log as text: no Python repr, no upstream password.
    audit_table = await _ok(gateway, "audit", "--limit", "20")
    audit = json.dumps(await _json(gateway, "audit", "--limit", "20"))
    for shown in (out.decode(), audit_table, audit):
        assert "s3cret" not in shown and "{'" not in shown
    assert "upstream.add" in audit_table and "route.set" in audit_table

"""The admin operations (gateway/admin/ops) through the real admin socket of an
in-process gateway: accounts, credentials and IPs, senders, rates, credits, the STOP
list, history and audit; their effect checked with real binds and submits over TCP and
a real SMTP server (aiosmtpd) on 127.0.0.1, and the books checked after every test."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from email import message_from_bytes

import pytest
from aiosmtpd.smtp import SMTP, Envelope
from delivery_helpers import Esme, ready_account, submit_pdu, wait_for
from gw_helpers import AdminFailed, MakeGateway, admin, new_account
from smpp_client import RawClient
from sqlalchemy import select

from gateway.app import Gateway
from pdu.codec import BindReceiver, BindTransceiver, BindTransmitter, CommandId, SubmitSm
from pdu.status import CommandStatus as S
from store import tables
from store.invariants import ledger_violations


class Mailbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.arrived = asyncio.Event()
        self.port = 0

    def gateway_settings(self) -> dict:
        """The settings of a gateway that mails here (in clear: tests/test_mail.py has
        STARTTLS)."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_from": "noc@gw.test",
                "smtp_starttls": False}

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        self.arrived.set()
        return "250 OK"

    def texts(self) -> list[tuple[list[str], str, str]]:
        out = []
        for env in self.messages:
            msg = message_from_bytes(env.content)
            out.append((env.rcpt_tos, msg["Subject"], msg.get_payload(decode=True).decode()))
        return out


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """An SMTP server on loopback. Tests name it before `make_gateway`, so that their
    gateway stops before the server does."""
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def make_gateway(make_gateway: MakeGateway) -> AsyncIterator[MakeGateway]:
    """conftest's `make_gateway` (and so `gateway`), with the money invariants checked
    on every gateway of this module's scenarios once it has stopped and committed
    everything."""
    made: list[Gateway] = []

    async def make(**settings) -> Gateway:
        gw = await make_gateway(**settings)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        await gw.stop()
        assert await ledger_violations(gw.engine) == []
        await gw.engine.dispose()


async def _books_balance(gw: Gateway) -> None:
    await gw.accounts.drain()
    assert await ledger_violations(gw.engine) == []


async def _bind(gw: Gateway, system_id: str, password: str) -> tuple[RawClient, int]:
    client = await RawClient.connect(*gw.endpoints.smpp)
    resp = await client.bind(system_id, password, cls=BindTransceiver)
    return client, resp.command_status


async def _bind_status(gw: Gateway, system_id: str, password: str) -> int:
    client, status = await _bind(gw, system_id, password)
    await client.close()
    return status


def _submit(source: str = "ovh123", ton: int = 5, dest: str = "33601020304",
            text: bytes = b"hello") -> SubmitSm:
    # NPI as the provider wants it: 0 for alphanumeric senders, 1 (ISDN) otherwise.
    return SubmitSm(source_addr=source, source_addr_ton=ton, source_addr_npi=0 if ton == 5 else 1,
                    destination_addr=dest, dest_addr_ton=1, dest_addr_npi=1,
                    short_message=text)


async def expect_refusal(coro, *words: str) -> str:
    with pytest.raises(AdminFailed) as info:
        await coro
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --- accounts -----------------------------------------------------------------------


async def test_create_with_settings_senders_and_contact(gateway: Gateway) -> None:
    account = await new_account(
        gateway, contact_email="ops@acme.test",
        settings={"window": 5, "throughput": 2.5, "gsm_packed": "yes", "stop_mode": "refuse"},
    )
    sid = account["system_id"]
    assert sid.startswith("smpp-") and len(sid) <= 15 and len(account["password"]) == 8
    shown = await admin(gateway, "account.show", system_id=sid)
    assert (shown["window"], shown["throughput"], shown["gsm_packed"]) == (5, 2.5, True)
    assert (shown["bind_limit"], shown["max_segments"], shown["keep_bodies"]) == (1, 8, True)
    assert (shown["stop_mode"], shown["dlr_retention_days"]) == ("refuse", 7)
    assert shown["contact_email"] == "ops@acme.test"
    assert sorted(shown["senders_enabled"]) == ["33700000000", "ovh", "ovh123"]
    live = gateway.accounts.get(sid)
    assert (live.window, live.throughput, live.gsm_packed, live.stop_mode) == (
        5, 2.5, True, "refuse"
    )
    assert "password" not in shown


@pytest.mark.parametrize(
    "args, words",
    [
        ({"senders": ["0123456789012"]}, ["international"]),
        ({"senders": [{"address": "12345", "kind": "alphanumeric"}]}, ["all digits"]),
        ({"senders": [{"address": "TOOLONGSENDER", "kind": "alphanumeric"}]}, ["11"]),
        ({"contact_email": "nobody"}, ["e-mail"]),
        ({"settings": {"colour": "red"}}, ["unknown setting"]),
        ({"settings": {"window": "many"}}, ["integer"]),
        ({"settings": {"stop_mode": "drop"}}, ["stop_mode"]),
        ({"allowed_ips": ["10.0.0.1/8"]}, ["host bits"]),
        ({"allowed_ips": [f"10.0.0.{i}" for i in range(11)]}, ["at most 10"]),
        ({"credits": "-5"}, ["negative"]),
        ({"system_id": "x" * 16}, ["15"]),
    ],
)
async def test_create_refuses_bad_input_and_creates_nothing(
    gateway: Gateway, args: dict, words: list[str]
) -> None:
    await expect_refusal(admin(gateway, "account.create", **args), *words)
    assert await admin(gateway, "account.list") == []


async def test_account_set_changes_live_settings_and_is_audited(gateway: Gateway) -> None:
    sid = (await new_account(gateway))["system_id"]
    result = await admin(gateway, "account.set", system_id=sid, window=3, max_segments=4,
                         keep_bodies=False, bind_limit=2)
    assert (result["window"], result["max_segments"], result["keep_bodies"]) == (3, 4, False)
    live = gateway.accounts.get(sid)
    assert (live.window, live.max_segments, live.keep_bodies, live.bind_limit) == (3, 4, False, 2)
    entry = (await admin(gateway, "audit.list", target=sid, action="account.set"))[0]
    assert entry["before"] == {"window": 10, "max_segments": 8, "keep_bodies": True,
                               "bind_limit": 1}
    assert entry["after"] == {"window": 3, "max_segments": 4, "keep_bodies": False,
                              "bind_limit": 2}
    await expect_refusal(admin(gateway, "account.set", system_id=sid, window=0), "window")
    await expect_refusal(admin(gateway, "account.set", system_id=sid), "nothing to change")
    await expect_refusal(admin(gateway, "account.set", system_id="smpp-nobody", window=3),
                 "unknown account")
    assert gateway.accounts.get(sid).window == 3


async def test_suspend_refuses_the_next_bind_and_resume_allows_it(gateway: Gateway) -> None:
    account = await new_account(gateway)
    sid, password = account["system_id"], account["password"]
    bound, status = await _bind(gateway, sid, password)
    assert status == S.ESME_ROK
    suspended = await admin(gateway, "account.suspend", system_id=sid, unbind=True)
    assert suspended["status"] == "suspended" and suspended["sessions_unbound"] == 1
    await bound.wait_received(CommandId.UNBIND)  # the gateway unbinds the live session
    await bound.close()
    assert await _bind_status(gateway, sid, password) == S.ESME_RBINDFAIL
    shown = await admin(gateway, "account.show", system_id=sid)
    assert not shown["can_bind"] and any("suspended" in n for n in shown["notes"])
    await admin(gateway, "account.resume", system_id=sid)
    assert await _bind_status(gateway, sid, password) == S.ESME_ROK
    actions = [e["action"] for e in await admin(gateway, "audit.list", target=sid)]
    assert actions[:2] == ["account.resume", "account.suspend"]
    await expect_refusal(admin(gateway, "account.suspend", system_id="smpp-nobody"), "unknown account")


# --- credentials and IPs, seen by the next bind --------------------------------------


async def test_ip_changes_apply_to_the_next_bind(gateway: Gateway) -> None:
    account = await new_account(gateway, ips=("192.0.2.1",))
    sid, password = account["system_id"], account["password"]
    assert await _bind_status(gateway, sid, password) == S.ESME_RBINDFAIL
    await admin(gateway, "ip.add", system_id=sid, ip="127.0.0.0/8")
    assert await _bind_status(gateway, sid, password) == S.ESME_ROK
    await admin(gateway, "ip.remove", system_id=sid, ip="127.0.0.0/8")
    assert await _bind_status(gateway, sid, password) == S.ESME_RBINDFAIL
    emptied = await admin(gateway, "ip.remove", system_id=sid, ip="192.0.2.1")
    assert emptied["allowed_ips"] == [] and not emptied["can_bind"]
    assert any("cannot bind" in note for note in emptied["notes"])
    await expect_refusal(admin(gateway, "ip.add", system_id=sid, ip="300.1.1.1"), "300.1.1.1")
    await expect_refusal(admin(gateway, "ip.add", system_id=sid, ip="10.0.0.1/8"), "host bits")
    await expect_refusal(admin(gateway, "ip.remove", system_id=sid, ip="10.9.9.9"), "no allowed")
    await expect_refusal(admin(gateway, "ip.add", system_id="smpp-nobody", ip="10.0.0.1"), "unknown")


async def test_ip_list_has_a_maximum(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(max_allowed_ips=3)
    sid = (await new_account(gw, ips=("10.0.0.1", "10.0.0.2")))["system_id"]
    await admin(gw, "ip.add", system_id=sid, ip="10.0.0.3")
    await expect_refusal(admin(gw, "ip.add", system_id=sid, ip="10.0.0.4"), "maximum of 3")
    assert len((await admin(gw, "ip.list", system_id=sid))["allowed_ips"]) == 3


async def test_password_rotation_mails_the_contact_and_audits_no_secret(
    mailbox: Mailbox, make_gateway: MakeGateway,
) -> None:
    box = mailbox
    gw = await make_gateway(**box.gateway_settings())
    account = await new_account(gw, contact_email="ops@acme.test")
    sid = account["system_id"]
    rotated = await admin(gw, "password.rotate", system_id=sid)
    assert rotated["emailed_to"] == "ops@acme.test"
    [(to, subject, body)] = box.texts()
    assert to == ["ops@acme.test"] and sid in subject
    assert rotated["password"] in body
    assert await _bind_status(gw, sid, account["password"]) == S.ESME_RINVPASWD
    assert await _bind_status(gw, sid, rotated["password"]) == S.ESME_ROK
    stored = (await gw.account_store.get(sid))["password_hash"]
    audit_text = json.dumps(await admin(gw, "audit.list", limit=1000))
    for secret in (account["password"], rotated["password"], stored, "$argon2"):
        assert secret not in audit_text
    # No contact: the rotation works and says the mail was not sent.
    other = await new_account(gw)
    again = await admin(gw, "password.rotate", system_id=other["system_id"])
    assert "no contact" in again["emailed_to"] and len(box.messages) == 1


async def test_password_rotation_survives_a_dead_mail_server(make_gateway: MakeGateway) -> None:
    # A port nobody listens on: the rotation still succeeds and reports the failure.
    gw = await make_gateway(smtp_host="127.0.0.1", smtp_port=9, smtp_timeout=2.0)
    account = await new_account(gw, contact_email="ops@acme.test")
    rotated = await admin(gw, "password.rotate", system_id=account["system_id"])
    assert rotated["emailed_to"].startswith("not sent")
    assert await _bind_status(gw, account["system_id"], rotated["password"]) == S.ESME_ROK


# --- senders ----------------------------------------------------------------------


async def test_only_enabled_senders_of_the_right_kind_may_submit(gateway: Gateway) -> None:
    account = await new_account(gateway, senders=[])
    sid = account["system_id"]
    added = await admin(gateway, "sender.add", system_id=sid, sender="ACME")
    assert (added["kind"], added["state"]) == ("alphanumeric", "pending")
    await admin(gateway, "sender.add", system_id=sid, sender="36180", kind="shortcode",
                state="enabled")
    client, status = await _bind(gateway, sid, account["password"])
    assert status == S.ESME_ROK
    try:
        assert (await client.request(_submit("ACME"))).command_status == S.ESME_RINVSRCADR
        await admin(gateway, "sender.set_state", system_id=sid, sender="ACME", state="enabled",
                    comment="Kbis checked")
        assert (await client.request(_submit("ACME"))).command_status == S.ESME_ROK
        # Lenient addressing (the default): the enabled shortcode is taken whatever TON
        # the client set, and recorded and sent with the shortcode's TON 3 / NPI 1.
        resp = await client.request(_submit("36180", ton=5))
        assert resp.command_status == S.ESME_ROK
        row = await gateway.messages.get(int(resp.message_id))
        assert (row["source_ton"], row["source_npi"]) == (3, 1)
        # Strict addressing: a shortcode must come with TON 3, not as an alphanumeric.
        await admin(gateway, "account.set", system_id=sid, addressing="strict")
        assert (await client.request(_submit("36180", ton=5))).command_status == (
            S.ESME_RINVSRCADR
        )
        assert (await client.request(_submit("36180", ton=0))).command_status == (
            S.ESME_RINVSRCTON
        )
        assert (await client.request(_submit("36180", ton=3))).command_status == S.ESME_ROK
        await admin(gateway, "account.set", system_id=sid, addressing="lenient")
        await admin(gateway, "sender.set_state", system_id=sid, sender="ACME", state="refused")
        assert (await client.request(_submit("ACME"))).command_status == S.ESME_RINVSRCADR
        assert (await client.request(_submit("OTHER"))).command_status == S.ESME_RINVSRCADR
    finally:
        await client.close()
    listed = {s["address"]: s for s in await admin(gateway, "sender.list", system_id=sid)}
    assert listed["ACME"]["state"] == "refused" and listed["ACME"]["comment"] == "Kbis checked"
    await admin(gateway, "sender.remove", system_id=sid, sender="ACME")
    assert "ACME" not in gateway.accounts.get(sid).senders
    await _books_balance(gateway)


@pytest.mark.parametrize(
    "args, words",
    [
        ({"sender": "ABCDEFGHIJKL"}, ["11"]),
        ({"sender": "12", "kind": "shortcode"}, ["3 to 8"]),
        ({"sender": "0612345678", "kind": "numeric"}, ["international"]),
        ({"sender": "12345", "kind": "alphanumeric"}, ["all digits"]),
        ({"sender": "ACME", "kind": "vanity"}, ["kind"]),
        ({"sender": "ACME", "state": "approved"}, ["state"]),
        ({"sender": "ovh"}, ["already"]),
    ],
)
async def test_sender_add_refuses_bad_input(gateway: Gateway, args: dict, words) -> None:
    sid = (await new_account(gateway))["system_id"]
    await expect_refusal(admin(gateway, "sender.add", system_id=sid, **args), *words)


async def test_sender_ops_on_unknown_things(gateway: Gateway) -> None:
    sid = (await new_account(gateway))["system_id"]
    await expect_refusal(admin(gateway, "sender.set_state", system_id=sid, sender="NOPE",
                       state="enabled"), "no sender")
    await expect_refusal(admin(gateway, "sender.remove", system_id=sid, sender="NOPE"), "no sender")
    await expect_refusal(admin(gateway, "sender.list", system_id="smpp-nobody"), "unknown account")


# --- rates and prices -----------------------------------------------------------------


async def test_rates_price_submits_by_longest_prefix(gateway: Gateway) -> None:
    account = await new_account(gateway, credits="100")
    other = await new_account(gateway, credits="100")
    sid = account["system_id"]
    await admin(gateway, "rate.set", prefix="33", price="0.50")
    await admin(gateway, "rate.set", prefix="336", price="0.75")
    await admin(gateway, "rate.set", prefix="3361", price="0.10", system_id=sid)

    async def quote(who: str, dest: str) -> str:
        return (await admin(gateway, "rate.quote", system_id=who, destination=dest))["price"]

    assert await quote(sid, "33612345678") == "0.10"  # the account's override
    assert await quote(sid, "33712345678") == "0.50"
    assert await quote(other["system_id"], "33612345678") == "0.75"
    assert await quote(other["system_id"], "4412345678") == "1.00"  # the default rate
    client, _ = await _bind(gateway, sid, account["password"])
    try:
        assert (await client.request(_submit(dest="33612345678"))).command_status == 0
        assert (await client.request(_submit(dest="33712345678"))).command_status == 0
        assert (await client.request(_submit(dest="4412345678"))).command_status == 0
    finally:
        await client.close()
    assert (await admin(gateway, "balance.show", system_id=sid))["balance"] == "98.40"
    listed = await admin(gateway, "rate.list")
    assert [(r["prefix"], r["price"]) for r in listed] == [("33", "0.50"), ("336", "0.75")]
    assert [r["prefix"] for r in await admin(gateway, "rate.list", system_id=sid)] == ["3361"]
    await admin(gateway, "rate.remove", prefix="3361", system_id=sid)
    assert await quote(sid, "33612345678") == "0.75"
    await _books_balance(gateway)


@pytest.mark.parametrize(
    "args, words",
    [
        ({"prefix": "33", "price": "-1"}, ["negative"]),
        ({"prefix": "33", "price": "0.001"}, ["decimals"]),
        ({"prefix": "+3x", "price": "1"}, ["prefix"]),
        ({"prefix": "33", "price": "1", "system_id": "smpp-nobody"}, ["unknown account"]),
        ({"prefix": "33"}, ["price"]),
    ],
)
async def test_rate_set_refuses_bad_input(gateway: Gateway, args: dict, words) -> None:
    await expect_refusal(admin(gateway, "rate.set", **args), *words)
    assert await admin(gateway, "rate.list") == []


async def test_rate_remove_unknown_prefix(gateway: Gateway) -> None:
    await expect_refusal(admin(gateway, "rate.remove", prefix="99"), "no rate")


# --- credits ------------------------------------------------------------------------


async def test_transfer_moves_credit_both_ways_in_the_ledger(gateway: Gateway) -> None:
    a = (await new_account(gateway, credits="10"))["system_id"]
    b = (await new_account(gateway, credits="0"))["system_id"]
    moved = await admin(gateway, "credits.transfer", **{"from": a, "to": b, "amount": "2.50"})
    assert (moved["from_balance"], moved["to_balance"]) == ("7.50", "2.50")
    assert (gateway.accounts.get(a).balance, gateway.accounts.get(b).balance) == (750, 250)
    kinds = [(e["kind"], e["amount"]) for e in await admin(gateway, "ledger.list", system_id=b)]
    assert kinds == [("transfer_in", "2.50")]
    out = await admin(gateway, "ledger.list", system_id=a)
    assert (out[0]["kind"], out[0]["amount"]) == ("transfer_out", "-2.50")
    cases = [
        ({"from": a, "to": a, "amount": "1"}, "itself"),
        ({"from": a, "to": b, "amount": "-1"}, "negative"),
        ({"from": a, "to": b, "amount": "0"}, "positive"),
        ({"from": a, "to": b, "amount": "7.51"}, "insufficient"),
        ({"from": a, "to": "smpp-nobody", "amount": "1"}, "unknown account"),
        ({"from": a, "to": b}, "amount"),
    ]
    for args, word in cases:
        await expect_refusal(admin(gateway, "credits.transfer", **args), word)
    assert (await admin(gateway, "balance.show", system_id=a))["balance"] == "7.50"
    assert gateway.accounts.get(a).reserved == 0
    entry = (await admin(gateway, "audit.list", action="credits.transfer"))[0]
    assert entry["after"]["amount"] == "2.50" and entry["after"]["target"] == b
    assert (await admin(gateway, "ledger.check"))["ok"]


async def test_concurrent_transfers_and_submits_through_the_gateway(gateway: Gateway) -> None:
    a = await new_account(gateway, credits="20")
    b = await new_account(gateway, credits="20")
    clients = []
    for acc in (a, b):
        client, status = await _bind(gateway, acc["system_id"], acc["password"])
        assert status == 0
        clients.append(client)

    async def submits(client: RawClient, n: int) -> list[int]:
        return [(await client.request(_submit())).command_status for _ in range(n)]

    async def transfers(src: str, dst: str, n: int) -> int:
        done = 0
        for _ in range(n):
            try:
                await admin(gateway, "credits.transfer", **{"from": src, "to": dst,
                                                              "amount": "3"})
                done += 1
            except AdminFailed as exc:
                assert "insufficient" in str(exc).lower()
        return done

    try:
        results = await asyncio.gather(
            submits(clients[0], 30), submits(clients[1], 30),
            transfers(a["system_id"], b["system_id"], 10),
            transfers(b["system_id"], a["system_id"], 10),
        )
    finally:
        for client in clients:
            await client.close()
    accepted = sum(s == 0 for s in results[0] + results[1])
    assert accepted and all(s in (0, S.ESME_RSUBMITFAIL) for s in results[0] + results[1])
    balances = [
        int((await admin(gateway, "balance.show", system_id=x["system_id"]))["balance"]
            .replace(".", ""))
        for x in (a, b)
    ]
    assert min(balances) >= 0 and sum(balances) == 4000 - 100 * accepted
    for acc, balance in zip((a, b), balances, strict=True):
        live = gateway.accounts.get(acc["system_id"])
        assert (live.balance, live.reserved) == (balance, 0)
    await _books_balance(gateway)


async def test_auto_topup_refills_after_a_debit_within_the_monthly_cap(gateway: Gateway) -> None:
    account = await new_account(gateway, credits="3")
    sid = account["system_id"]
    shown = await admin(gateway, "credits.auto_topup", system_id=sid, threshold="1",
                        amount="2", monthly_cap="4")
    assert (shown["auto_topup_threshold"], shown["auto_topup_amount"]) == ("1.00", "2.00")
    client, _ = await _bind(gateway, sid, account["password"])
    try:
        statuses = []
        for _ in range(7):
            statuses.append((await client.request(_submit())).command_status)
            await gateway.accounts.drain()
    finally:
        await client.close()
    # 3 credits + two top-ups of 2 (the cap of 4 allows no third) pay for 7 messages.
    assert statuses == [0] * 7
    entries = await admin(gateway, "ledger.list", system_id=sid, limit=100)
    assert [e["amount"] for e in entries if e["kind"] == "auto_topup"] == ["2.00", "2.00"]
    assert (await admin(gateway, "balance.show", system_id=sid))["balance"] == "0.00"
    await _books_balance(gateway)
    off = await admin(gateway, "credits.auto_topup", system_id=sid, off=True)
    assert off["auto_topup_amount"] is None
    await expect_refusal(admin(gateway, "credits.auto_topup", system_id=sid, threshold="1",
                       amount="0"), "positive")
    await expect_refusal(admin(gateway, "credits.auto_topup", system_id=sid, threshold="1",
                       amount="5", monthly_cap="2"), "cap")
    await expect_refusal(admin(gateway, "credits.auto_topup", system_id=sid, threshold="-1",
                       amount="5"), "negative")


async def test_low_balance_alert_mails_logs_and_counts_once_per_crossing(
    mailbox: Mailbox, make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    box = mailbox
    gw = await make_gateway(**box.gateway_settings())
    account = await new_account(gw, credits="3", contact_email="billing@acme.test")
    sid = account["system_id"]
    await admin(gw, "credits.alert", system_id=sid, threshold="2")
    client, _ = await _bind(gw, sid, account["password"])
    caplog.set_level(logging.WARNING, logger="gateway.accounts")
    try:
        for _ in range(2):  # 3 -> 2 (not below), 2 -> 1 (below: one alert)
            assert (await client.request(_submit())).command_status == 0
        await gw.accounts.drain()
        await admin(gw, "credits.add", system_id=sid, amount="5")  # 6: re-armed
        for _ in range(5):  # 6 -> 1: one more crossing, one more alert
            assert (await client.request(_submit())).command_status == 0
        await gw.accounts.drain()
    finally:
        await client.close()
    assert len(box.messages) == 2
    to, subject, body = box.texts()[0]
    assert to == ["billing@acme.test"] and "1.00" in subject and "2.00" in body
    assert sum("low balance" in r.getMessage() for r in caplog.records) == 2
    assert gw.metrics.registry.get_sample_value("smppgw_low_balance_alerts_total") == 2
    off = await admin(gw, "credits.alert", system_id=sid, off=True)
    assert off["low_balance_threshold"] is None
    await expect_refusal(admin(gw, "credits.alert", system_id=sid), "threshold")


# --- STOP list ----------------------------------------------------------------------


async def test_stop_list_ops_reach_the_directory(gateway: Gateway) -> None:
    sid = (await new_account(gateway))["system_id"]
    added = await admin(gateway, "stop.add", system_id=sid, destination="+33612345678",
                        note="STOP by SMS")
    assert added == {"system_id": sid, "destination": "33612345678", "added": True}
    assert (await admin(gateway, "stop.add", system_id=sid, destination="33612345678"))[
        "added"] is False
    assert gateway.accounts.get(sid).is_stop_listed("33612345678")
    listed = await admin(gateway, "stop.list", system_id=sid)
    assert [(e["destination"], e["note"]) for e in listed] == [("33612345678", "STOP by SMS")]
    await admin(gateway, "stop.remove", system_id=sid, destination="33612345678")
    assert not gateway.accounts.get(sid).is_stop_listed("33612345678")
    await expect_refusal(admin(gateway, "stop.remove", system_id=sid, destination="33612345678"),
                 "no stop")
    await expect_refusal(admin(gateway, "stop.add", system_id=sid, destination="hello"), "digits")
    await expect_refusal(admin(gateway, "stop.add", system_id="smpp-nobody", destination="336"),
                 "unknown")


# --- history ----------------------------------------------------------------------


async def test_history_query_filters_and_delete(gateway: Gateway) -> None:
    account = await new_account(gateway)
    sid = account["system_id"]
    client, _ = await _bind(gateway, sid, account["password"])
    try:
        for i in range(6):
            source = "ovh" if i % 2 else "ovh123"
            resp = await client.request(_submit(source=source, dest=f"3360000000{i}"))
            assert resp.command_status == 0
    finally:
        await client.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:  # the simulator delivers after a few ms; in-flight rows cannot be deleted
        rows = await admin(gateway, "history.query", system_id=sid)
        if all(r["status"] == "DELIVERED" for r in rows) or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert len(rows) == 6 and rows[0]["system_id"] == sid and rows[0]["cost"] == "1.00"
    assert rows[0]["body"] == "hello"
    assert len(await admin(gateway, "history.query", system_id=sid, sender="ovh")) == 3
    one = await admin(gateway, "history.query", receiver="33600000004")
    assert len(one) == 1
    by_id = await admin(gateway, "history.query", message_id=one[0]["id"])
    assert by_id[0]["dest_addr"] == "33600000004"
    assert await admin(gateway, "history.query", system_id=sid, since="2001-01-01",
                       until="2002-01-01") == []
    page = await admin(gateway, "history.query", system_id=sid, limit=2,
                       after_id=rows[1]["id"])
    assert [r["id"] for r in page] == [rows[2]["id"], rows[3]["id"]]
    deleted = await admin(gateway, "history.delete", system_id=sid,
                          message_ids=[rows[0]["id"], rows[1]["id"]])
    assert deleted == {"system_id": sid, "deleted": 2, "asked": 2}
    assert len(await admin(gateway, "history.query", system_id=sid)) == 4
    await expect_refusal(admin(gateway, "history.query", since="yesterday"), "iso 8601")
    await expect_refusal(admin(gateway, "history.query", status="LOST"), "status")
    await expect_refusal(admin(gateway, "history.query", system_id="smpp-nobody"), "unknown account")
    await expect_refusal(admin(gateway, "history.delete", system_id=sid), "message_ids")
    # The ledger keeps every debit: the books still balance over the history that is left.
    await _books_balance(gateway)
    async with gateway.engine.connect() as conn:
        debits = (await conn.execute(
            select(tables.ledger.c.id).where(tables.ledger.c.kind == "debit"))).all()
    assert len(debits) == 6


async def test_history_export_streams_over_the_socket(gateway: Gateway) -> None:
    account = await new_account(gateway)
    client, _ = await _bind(gateway, account["system_id"], account["password"])
    try:
        for _ in range(3):
            assert (await client.request(_submit())).command_status == 0
    finally:
        await client.close()
    reader, writer = await asyncio.open_unix_connection(gateway.endpoints.admin_socket)
    writer.write(json.dumps({"op": "history.export",
                             "args": {"system_id": account["system_id"]}}).encode() + b"\n")
    lines = []
    while True:
        line = json.loads(await reader.readline())
        lines.append(line)
        if line.get("end"):
            break
    writer.close()
    header, *pages, end = lines
    assert header["ok"] and header["result"]["total"] == 3
    assert header["result"]["columns"][:3] == ["id", "system_id", "direction"]
    assert sum(len(p["rows"]) for p in pages) == 3 and end == {"end": True, "count": 3}


async def _answer(gw: Gateway, op: str, **args) -> dict:
    """The admin socket's whole answer (ok, error, usage), not only its result."""
    reader, writer = await asyncio.open_unix_connection(gw.endpoints.admin_socket)
    try:
        writer.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        await writer.drain()
        return json.loads(await reader.readline())
    finally:
        writer.close()


async def test_answers_tell_unreadable_arguments_from_refusals(gateway: Gateway) -> None:
    sid = (await new_account(gateway, credits="1"))["system_id"]
    for op, args in (("credits.add", {"system_id": sid, "amount": "1,5"}),
                     ("credits.add", {"system_id": sid}),
                     ("ip.add", {"system_id": sid, "ip": "300.1.1.1"}),
                     ("account.set", {"system_id": sid, "window": "many"}),
                     ("account.set", {"system_id": sid, "colour": "blue"}),
                     ("audit.list", {"limit": 0}),
                     ("sessions.kick", {}),
                     ("sessions.kick", {"session_id": "gw/1", "system_id": sid})):
        answer = await _answer(gateway, op, **args)
        assert answer["ok"] is False and answer.get("usage") is True, (op, args, answer)
    for op, args in (("credits.add", {"system_id": "smpp-nobody", "amount": "1"}),
                     ("credits.transfer", {"from": sid, "to": (await new_account(
                         gateway))["system_id"], "amount": "5"}),
                     ("ip.add", {"system_id": sid, "ip": "127.0.0.1"}),
                     ("sessions.kick", {"session_id": "gw-nowhere/7"}),
                     ("account.delete", {"system_id": "smpp-nobody"})):
        answer = await _answer(gateway, op, **args)
        assert answer["ok"] is False and "usage" not in answer, (op, args, answer)


async def test_account_delete_waits_for_receipts_owed_to_the_customer(
    gateway: Gateway,
) -> None:
    """A receipt waiting for the customer's receiver holds the delete back (it would
    be lost); once delivered, the account goes, with its balance written off."""
    account = await ready_account(gateway, credits="10")
    sid = account["system_id"]
    sender = await Esme.bind(*gateway.endpoints.smpp, account, bind_cls=BindTransmitter)
    assert (await sender.request(submit_pdu("33601020304"))).command_status == 0
    await sender.close()
    refusals: list[str] = []

    async def refused_for_the_receipt() -> bool:
        answer = await _answer(gateway, "account.delete", system_id=sid,
                               forfeit_balance=True)
        assert answer["ok"] is False, answer
        refusals.append(answer["error"])
        return "1 receipt(s)/MO(s) waiting" in answer["error"]

    for _ in range(600):  # the simulator's receipt comes back; no receiver is bound
        if await refused_for_the_receipt():
            break
        await asyncio.sleep(0.05)
    assert "waiting for delivery to the customer" in refusals[-1], refusals
    receiver = await Esme.bind(*gateway.endpoints.smpp, account, bind_cls=BindReceiver)
    await wait_for(lambda: len(receiver.receipts) == 1, 30, "the receipt delivered")
    for _ in range(600):  # until the store has the receipt's delivery
        answer = await _answer(gateway, "account.delete", system_id=sid,
                               forfeit_balance=True)
        if answer["ok"]:
            break
        assert "waiting for delivery" in answer["error"], answer
        await asyncio.sleep(0.05)
    assert answer["result"]["sessions_unbound"] == 1
    assert answer["result"]["balance_forfeited"] != "0.00"
    await wait_for(lambda: receiver.gone, 30, "the receiver unbound")
    await receiver.close()
    assert gateway.accounts.get(sid) is None
    assert await _bind_status(gateway, sid, account["password"]) != S.ESME_ROK
    # History and ledger rows stay: the message is still in the store, the books balance.
    async with gateway.engine.connect() as conn:
        kinds = (await conn.execute(
            select(tables.ledger.c.kind).join(
                tables.accounts, tables.accounts.c.id == tables.ledger.c.account_id)
            .where(tables.accounts.c.system_id == sid))).scalars().all()
        kept = (await conn.execute(
            select(tables.messages.c.id).join(
                tables.accounts, tables.accounts.c.id == tables.messages.c.account_id)
            .where(tables.accounts.c.system_id == sid))).scalars().all()
    assert "adjust" in kinds and len(kept) == 1
    await _books_balance(gateway)


# --- audit --------------------------------------------------------------------------


async def test_every_change_is_audited_with_its_target(gateway: Gateway) -> None:
    sid = (await new_account(gateway))["system_id"]
    await admin(gateway, "sender.add", system_id=sid, sender="ACME")
    await admin(gateway, "stop.add", system_id=sid, destination="336")
    await admin(gateway, "rate.set", prefix="33", price="1", system_id=sid)
    await admin(gateway, "credits.add", system_id=sid, amount="1")
    actions = [e["action"] for e in await admin(gateway, "audit.list", target=sid)]
    assert actions == ["credits.add", "rate.set", "stop.add", "sender.add", "account.create"]
    assert [e["action"] for e in await admin(gateway, "audit.list", limit=2)] == [
        "credits.add", "rate.set"
    ]

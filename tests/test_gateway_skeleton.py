"""End to end over real TCP: bind, submit, debit, DLR, with third-party clients.

The gateway runs in this process on a free loopback port over a real SQLite file;
smpplib (synchronous) runs in a worker thread, aiosmpplib on the same loop.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiosmpplib
import pytest
import smpplib.client
import smpplib.consts
from aiosmpplib_hooks import Collector
from gw_helpers import admin, gateway_settings, new_account
from smpp_client import RawClient
from sqlalchemy import func, select

from pdu.codec import BindTransceiver, SubmitSm
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S
from store import tables

N = 100


async def _counts(gw) -> dict[str, int]:
    out = {}
    async with gw.engine.connect() as conn:
        for table in (tables.messages, tables.ledger, tables.audit_log, tables.deliveries):
            out[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar()
    return out


async def _history(gw, account_system_id: str) -> dict[str, int]:
    account = gw.accounts.get(account_system_id)
    return await gw.messages.count_by_status(account.id)


def _smpplib_session(host, port, system_id, password, n):
    """Bind as transceiver, submit n messages asking for receipts, collect every DLR."""
    client = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=False)
    resps, dlrs = [], []
    client.set_message_sent_handler(lambda pdu: resps.append(pdu))
    client.set_message_received_handler(lambda pdu: dlrs.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id=system_id, password=password, system_type="VMA")
        for i in range(n):
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr_npi=0,
                source_addr="ovh123",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=f"3360102{i:04d}",
                short_message=f"hello {i}".encode(),
                registered_delivery=1,
            )
            while len(resps) <= i:  # window of one, as a synchronous client would
                client.read_once()
        while len(dlrs) < n:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return resps, dlrs


async def test_smpplib_100_messages_100_dlrs_exact_debit(gateway):
    account = await new_account(gateway, credits="150")
    host, port = gateway.endpoints.smpp
    resps, dlrs = await asyncio.to_thread(
        _smpplib_session, host, port, account["system_id"], account["password"], N
    )
    assert [r.status for r in resps] == [0] * N
    ids = {r.message_id.decode() for r in resps}
    assert len(ids) == N
    receipted = set()
    for dlr in dlrs:
        assert dlr.esm_class == 0x04
        receipt = parse_receipt(dlr.short_message)
        assert receipt.stat == "DELIVRD"
        assert dlr.receipted_message_id.decode() == receipt.message_id
        assert dlr.message_state == 2
        receipted.add(receipt.message_id)
    assert receipted == ids
    shown = await admin(gateway, "account.show", system_id=account["system_id"])
    assert shown["balance"] == "50.00"
    history = await _history(gateway, account["system_id"])
    assert history == {"DELIVERED": N}


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting ({predicate.__doc__ or predicate})")
        await asyncio.sleep(0.05)


@pytest.fixture
async def unwindowed_gateway(tmp_path):
    """aiosmpplib keeps no window: it sends its whole queue at once. An operator
    serving such a client raises the account's window; so does this gateway."""
    from gateway.app import Gateway

    gw = Gateway(gateway_settings(tmp_path / "state", default_window=N))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def test_aiosmpplib_100_messages_100_dlrs_exact_debit(unwindowed_gateway):
    gateway = unwindowed_gateway
    account = await new_account(gateway, credits="100.5")
    host, port = gateway.endpoints.smpp
    hook = Collector()
    broker = aiosmpplib.broker.SimpleBroker()
    esme = aiosmpplib.ESME(
        smsc_host=host, smsc_port=port, system_id=account["system_id"],
        password=account["password"], hook=hook, broker=broker, log_level=logging.WARNING,
        log_handler=logging.StreamHandler(sys.stderr),
    )
    for i in range(N):
        await broker.enqueue(
            aiosmpplib.SubmitSm(
                short_message=f"hi {i}",
                source=aiosmpplib.PhoneNumber("ovh123", aiosmpplib.TON.ALPHANUMERIC),
                destination=aiosmpplib.PhoneNumber(
                    f"3361{i:07d}", aiosmpplib.TON.INTERNATIONAL, aiosmpplib.NPI.ISDN
                ),
                registered_delivery=1,
                log_id=f"m{i}",
            )
        )
    task = asyncio.create_task(esme.start())
    try:
        await _wait_for(lambda: len(hook.dlrs) >= N and len(hook.resps) >= N)
    finally:
        await esme.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(r.command_status == aiosmpplib.SmppCommandStatus.ESME_ROK for r in hook.resps)
    ids = {r.message_id for r in hook.resps}
    assert len(ids) == N
    assert {parse_receipt(d.short_message.encode()).message_id for d in hook.dlrs} == ids
    shown = await admin(gateway, "account.show", system_id=account["system_id"])
    assert shown["balance"] == "0.50"
    assert await _history(gateway, account["system_id"]) == {"DELIVERED": N}


BIND_REFUSALS = [
    ("wrong password", "good_sid", "nope1234", S.ESME_RINVPASWD),
    ("unknown system_id", "smpp-nobody", "whatever", S.ESME_RINVSYSID),
]


@pytest.mark.parametrize("case,sid,password,status", BIND_REFUSALS, ids=[c[0] for c in BIND_REFUSALS])
async def test_bind_refusals_write_nothing(gateway, case, sid, password, status):
    account = await new_account(gateway)
    before = await _counts(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await client.bind(account["system_id"] if sid == "good_sid" else sid, password)
    await client.close()
    assert resp.command_status == status
    assert await _counts(gateway) == before


async def test_bind_from_unlisted_ip_is_refused(gateway):
    account = await new_account(gateway, ips=("10.9.8.7",))
    before = await _counts(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await client.bind(account["system_id"], account["password"])
    await client.close()
    assert resp.command_status == S.ESME_RBINDFAIL
    assert await _counts(gateway) == before


async def test_uniform_bind_failure_hides_the_reason(tmp_path):
    from gateway.app import Gateway

    gw = Gateway(gateway_settings(tmp_path / "u", uniform_bind_failure=True))
    await gw.start()
    try:
        good = await new_account(gw)
        elsewhere = await new_account(gw, ips=("192.0.2.1",))
        attempts = [
            (good["system_id"], "wrongpw1"),
            ("smpp-nobody", "x"),
            (elsewhere["system_id"], elsewhere["password"]),
        ]
        for sid, password in attempts:
            client = await RawClient.connect(*gw.endpoints.smpp)
            resp = await client.bind(sid, password)
            await client.close()
            assert resp.command_status == S.ESME_RBINDFAIL
    finally:
        await gw.stop()


async def test_too_little_credit_refuses_with_no_row_and_no_debit(gateway):
    account = await new_account(gateway, credits="1.99")
    client = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await client.bind(account["system_id"], account["password"])).command_status == 0
    submit = {"source_addr": "ovh", "source_addr_ton": 5, "destination_addr": "33601020304",
                  "dest_addr_ton": 1, "dest_addr_npi": 1, "short_message": b"x"}
    first = await client.request(SubmitSm(**submit))
    assert first.command_status == 0
    before = await _counts(gateway)
    second = await client.request(SubmitSm(**submit))
    await client.close()
    assert second.command_status == S.ESME_RSUBMITFAIL
    after = await _counts(gateway)
    assert (after["messages"], after["ledger"]) == (before["messages"], before["ledger"])
    shown = await admin(gateway, "account.show", system_id=account["system_id"])
    assert shown["balance"] == "0.99"
    async with gateway.engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(tables.messages))).scalar()
    assert n == 1


async def test_password_rotation_through_the_cli(gateway):
    account = await new_account(gateway)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "admin", "--socket", gateway.endpoints.admin_socket,
        "password", "rotate", account["system_id"], "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    import json

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


async def _scrape(gw) -> dict[str, float]:
    reader, writer = await asyncio.open_connection(*gw.endpoints.metrics)
    writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_counters_move(gateway):
    account = await new_account(gateway)
    before = await _scrape(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    await client.bind(account["system_id"], account["password"], cls=BindTransceiver)
    during = await _scrape(gateway)
    for _ in range(3):
        resp = await client.request(SubmitSm(source_addr="ovh", source_addr_ton=5,
                                             destination_addr="33601020304", dest_addr_ton=1,
                                             dest_addr_npi=1, short_message=b"m"))
        assert resp.command_status == 0
    after = await _scrape(gateway)
    await client.close()
    bound = 'smppgw_sessions_bound{bind_type="transceiver"}'
    assert before[bound] == 0 and during[bound] == 1
    submits = 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"}'
    assert after[submits] - before.get(submits, 0) == 3
    resps = 'smppgw_pdus_total{command="submit_sm_resp",direction="out",status="ESME_ROK"}'
    assert after[resps] == 3
    assert after["smppgw_credits_debited_total"] - before["smppgw_credits_debited_total"] == 3

"""Third-party Python clients end to end over real TCP: 100 submits from smpplib
(synchronous, in a worker thread) and from aiosmpplib (on the test's loop) each get a
response and a DLR, and the account is debited exactly once per message."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiosmpplib
import smpplib.client
import smpplib.consts
from aiosmpplib_hooks import Collector
from gw_helpers import admin, history_statuses, new_account

from pdu.receipt import parse_receipt

N = 100


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
    history = await history_statuses(gateway, account["system_id"])
    assert history == {"DELIVERED": N}


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting ({predicate.__doc__ or predicate})")
        await asyncio.sleep(0.05)


async def test_aiosmpplib_100_messages_100_dlrs_exact_debit(make_gateway):
    # aiosmpplib keeps no window: it sends its whole queue at once. An operator serving
    # such a client raises the account's window; so does this gateway.
    gateway = await make_gateway(default_window=N)
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
    assert await history_statuses(gateway, account["system_id"]) == {"DELIVERED": N}

"""Long messages through the submit pipeline (gateway/submit) as real clients send them:
UDH parts (smpplib), sar TLVs (aiosmpplib) and one long message_payload; each counted,
priced and receipted correctly."""

from __future__ import annotations

import asyncio
import logging

import aiosmpplib
import smpplib.client
import smpplib.consts
import smpplib.gsm
from aiosmpplib.state import SAR_MSG_REF_NUM, SAR_SEGMENT_SEQNUM, SAR_TOTAL_SEGMENTS
from aiosmpplib_hooks import Collector
from gw_helpers import new_account
from smpp_client import RawClient
from sqlalchemy import func, select

from pdu.codec import DeliverSm, DeliverSmResp, SubmitSm
from pdu.receipt import parse_receipt
from pdu.tlv import Tag
from store import tables

LONG_TEXT = ("A long message, split by the client itself into parts. " * 8)[:400]


def _smpplib_parts(host, port, account, text):
    client = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=False)
    resps, dlrs = [], []
    client.set_message_sent_handler(lambda pdu: resps.append(pdu))
    client.set_message_received_handler(lambda pdu: dlrs.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id=account["system_id"], password=account["password"])
        parts, encoding_flag, msg_type_flag = smpplib.gsm.make_parts(text)
        for index, part in enumerate(parts):
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="ovh123",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN, destination_addr="33601020304",
                short_message=part, data_coding=encoding_flag,
                esm_class=smpplib.consts.SMPP_MSGMODE_DEFAULT | msg_type_flag,
                registered_delivery=True,
            )
            while len(resps) <= index:
                client.read_once()
        while len(dlrs) < len(parts) or len(resps) < len(parts):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return parts, resps, dlrs


async def test_smpplib_udh_parts_each_get_a_dlr_and_a_price(gateway):
    account = await new_account(gateway, credits="10")
    parts, resps, dlrs = await asyncio.to_thread(
        _smpplib_parts, *gateway.endpoints.smpp, account, LONG_TEXT
    )
    assert len(parts) == 3
    assert [r.status for r in resps] == [0, 0, 0]
    ids = {r.message_id.decode() for r in resps}
    assert {parse_receipt(d.short_message).message_id for d in dlrs} == ids
    assert gateway.accounts.get(account["system_id"]).balance == 10_00 - 3 * 100


async def test_smpplib_splitter_cutting_an_escape_pair_is_accepted(gateway):
    # 152 plain characters then '€': smpplib's splitter puts ESC at the end of part 1
    # and the euro code at the start of part 2.
    account = await new_account(gateway, credits="10")
    text = "a" * 152 + "€" * 10
    parts, resps, dlrs = await asyncio.to_thread(
        _smpplib_parts, *gateway.endpoints.smpp, account, text
    )
    assert [r.status for r in resps] == [0] * len(parts)
    assert len(dlrs) == len(parts)
    assert gateway.accounts.get(account["system_id"]).balance == 10_00 - len(parts) * 100


async def _acked_receipts(gateway) -> int:
    async with gateway.engine.connect() as conn:
        return (await conn.execute(
            select(func.count()).select_from(tables.deliveries)
            .where(tables.deliveries.c.state == "delivered"))).scalar()


async def test_aiosmpplib_sar_parts_each_get_a_dlr_and_a_price(gateway):
    account = await new_account(gateway, credits="10")
    hook = Collector()
    broker = aiosmpplib.broker.SimpleBroker()
    esme = aiosmpplib.ESME(
        smsc_host=gateway.endpoints.smpp[0], smsc_port=gateway.endpoints.smpp[1],
        system_id=account["system_id"], password=account["password"], hook=hook,
        broker=broker, log_level=logging.WARNING,
    )
    # aiosmpplib 0.7.4's own SAR splitter fails (an unbound local in _dequeue_messages),
    # so the parts are cut here and sent through aiosmpplib with its sar TLVs.
    parts = [LONG_TEXT[i : i + 153] for i in range(0, len(LONG_TEXT), 153)]
    for seq, part in enumerate(parts, 1):
        await broker.enqueue(aiosmpplib.SubmitSm(
            short_message=part,
            source=aiosmpplib.PhoneNumber("ovh123", aiosmpplib.TON.ALPHANUMERIC),
            destination=aiosmpplib.PhoneNumber("33601020304", aiosmpplib.TON.INTERNATIONAL,
                                               aiosmpplib.NPI.ISDN),
            registered_delivery=1, log_id=f"long-{seq}",
            optional_params=[
                aiosmpplib.OptionalParam(SAR_MSG_REF_NUM, 42),
                aiosmpplib.OptionalParam(SAR_TOTAL_SEGMENTS, len(parts)),
                aiosmpplib.OptionalParam(SAR_SEGMENT_SEQNUM, seq),
            ],
        ))
    task = asyncio.create_task(esme.start())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        # aiosmpplib gathers the parts of a sar message: its application hook hears of
        # one response and one receipt for the whole, so the wire is checked at the
        # gateway: three receipts sent, each answered with deliver_sm_resp by aiosmpplib.
        while len(hook.dlrs) < 1 or await _acked_receipts(gateway) < 3:
            assert loop.time() < deadline, (len(hook.resps), len(hook.dlrs))
            await asyncio.sleep(0.05)
    finally:
        await esme.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(hook.sent) == 3
    assert all(b"\x02\x0c\x00\x02\x00\x2a" in pdu for pdu in hook.sent)  # sar_msg_ref_num 42
    async with gateway.engine.connect() as conn:
        rows = (await conn.execute(select(tables.deliveries.c.message_id, tables.deliveries.c.state)
                                   )).all()
        sent = (await conn.execute(select(tables.messages.c.id))).scalars().all()
    assert sorted(r.message_id for r in rows) == sorted(sent) and len(sent) == 3
    assert {r.state for r in rows} == {"delivered"}
    assert parse_receipt(hook.dlrs[0].short_message.encode()).message_id in {str(i) for i in sent}
    assert gateway.accounts.get(account["system_id"]).balance == 10_00 - 3 * 100


async def test_one_long_message_payload_is_priced_as_its_segments(gateway):
    account = await new_account(gateway, credits="10")
    client = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await client.bind(account["system_id"], account["password"])).command_status == 0
    resp = await client.request(SubmitSm(
        source_addr_ton=5, source_addr="ovh123", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="33601020304", registered_delivery=1,
        tlvs=[(Tag.MESSAGE_PAYLOAD, LONG_TEXT.encode())]))
    assert resp.command_status == 0
    dlr = await client.read(timeout=10)
    assert isinstance(dlr, DeliverSm)
    await client.send(DeliverSmResp(sequence_number=dlr.sequence_number))
    assert parse_receipt(dlr.short_message).message_id == resp.message_id
    row = await gateway.messages.get(int(resp.message_id))
    assert (row["segments"], row["cost"]) == (3, 300)
    await client.close()

"""The submit pipeline (gateway/submit) over real TCP: what a bound customer's
submit_sm, submit_multi and data_sm are answered and charged, and what a refusal
leaves behind (no row, no debit)."""

from __future__ import annotations

from gw_helpers import admin, new_account
from smpp_client import RawClient
from sqlalchemy import func, select

from gateway.app import Gateway
from pdu.codec import (
    BindTransceiver,
    CommandId,
    DataSm,
    DistributionList,
    SmeDest,
    SubmitMulti,
    SubmitSm,
)
from pdu.status import CommandStatus as S
from pdu.tlv import Tag
from store import tables

GOOD_SUBMIT = {"source_addr_ton": 5, "source_addr": "ovh123", "dest_addr_ton": 1,
               "dest_addr_npi": 1, "destination_addr": "33601020304", "short_message": b"hi"}


async def _bound(gw: Gateway, account: dict, cls=BindTransceiver) -> RawClient:
    client = await RawClient.connect(*gw.endpoints.smpp)
    resp = await client.bind(account["system_id"], account["password"], cls=cls)
    assert resp.command_status == 0
    return client


async def _counts(gw: Gateway) -> dict[str, int]:
    out = {}
    async with gw.engine.connect() as conn:
        for table in (tables.messages, tables.ledger, tables.audit_log, tables.deliveries):
            out[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar()
    return out


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


async def test_submit_multi_answers_per_destination(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    resp = await client.request(SubmitMulti(
        source_addr_ton=5, source_addr="ovh123", short_message=b"all",
        dest_addresses=[SmeDest(1, 1, "33601020304"), SmeDest(1, 1, "0601"),
                        DistributionList("friends"), SmeDest(1, 1, "33601020305")]))
    assert resp.command_status == 0 and resp.message_id
    assert {(u.addr, u.error_status_code) for u in resp.unsuccess_smes} == {
        ("0601", S.ESME_RINVDSTADR), ("friends", S.ESME_RCNTSUBDL)}
    shown = gateway.accounts.get(account["system_id"])
    assert shown.balance == 1000_00 - 2 * 100
    await client.close()


async def test_data_sm_is_accepted_with_its_payload(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    resp = await client.request(DataSm(
        source_addr_ton=5, source_addr="ovh123", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="33601020304", tlvs=[(Tag.MESSAGE_PAYLOAD, b"a" * 300)]))
    assert resp.command_id == CommandId.DATA_SM_RESP and resp.command_status == 0
    # 300 GSM characters are two segments, each charged.
    assert gateway.accounts.get(account["system_id"]).balance == 1000_00 - 200
    await client.close()


async def test_vendor_status_for_unsupported_coding_and_bad_gsm(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    bad_dc = await client.request(SubmitSm(**{**GOOD_SUBMIT, "data_coding": 0x05}))
    bad_gsm = await client.request(SubmitSm(**{**GOOD_SUBMIT, "short_message": b"\xff\xfe"}))
    assert bad_dc.command_status == S.ESME_RUNSDATACODING
    assert bad_gsm.command_status == S.ESME_RINVGSM7CODING
    await client.close()

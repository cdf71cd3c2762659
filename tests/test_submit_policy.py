"""Account policy applied by the submit pipeline, on the wire: STOP-listed recipients
(failed receipt or refusal, and a STOP reply from a mobile), destinations without a
route, senders not enabled, and the per-account choice of vendor TLVs on receipts."""

from __future__ import annotations

import asyncio

from gw_helpers import admin, new_account
from smpp_client import RawClient

from gateway.app import Gateway
from gateway.upstream.simulator import SimulatedNetwork
from pdu.codec import DeliverSm, DeliverSmResp, SubmitSm
from pdu.fields import ESM_CLASS_DELIVERY_RECEIPT
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S
from pdu.tlv import Tag

STOPPED = "33612345678"


def _submit(dest: str, source: str = "ovh123") -> SubmitSm:
    return SubmitSm(source_addr_ton=5, source_addr=source, dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr=dest, short_message=b"promo", registered_delivery=1)


async def _bound(gw: Gateway, account: dict) -> RawClient:
    client = await RawClient.connect(*gw.endpoints.smpp)
    assert (await client.bind(account["system_id"], account["password"])).command_status == 0
    return client


async def test_stop_listed_recipient_gets_a_failed_receipt_and_no_charge(gateway):
    account = await new_account(gateway, credits="10")
    await admin(gateway, "stop.add", system_id=account["system_id"], destination=STOPPED)
    client = await _bound(gateway, account)
    resp = await client.request(_submit(STOPPED))
    assert resp.command_status == 0
    dlr = await client.read(timeout=10)
    assert isinstance(dlr, DeliverSm)
    await client.send(DeliverSmResp(sequence_number=dlr.sequence_number))
    receipt = parse_receipt(dlr.short_message)
    assert (receipt.message_id, receipt.stat, receipt.err) == (resp.message_id, "REJECTD", 53)
    row = await gateway.messages.get(int(resp.message_id))
    assert (row["status"], row["error_code"], row["cost"]) == ("REJECTED", 53, 0)
    assert gateway.accounts.get(account["system_id"]).balance == 10_00
    await client.close()


async def test_stop_list_in_refuse_mode_refuses_the_submit(gateway):
    account = await new_account(gateway, credits="10", settings={"stop_mode": "refuse"})
    await admin(gateway, "stop.add", system_id=account["system_id"], destination=STOPPED)
    client = await _bound(gateway, account)
    assert (await client.request(_submit(STOPPED))).command_status == S.ESME_RINVDSTADR
    assert (await client.request(_submit("33612345679"))).command_status == 0
    await client.close()


async def test_destination_without_a_route_is_refused_at_submit(make_gateway):
    gw = await make_gateway(  # France only
        upstreams=[{"name": "sim", "type": "simulator"}],
        routes=[{"prefix": "33", "connectors": ["sim"]}],
    )
    account = await new_account(gw, credits="10")
    client = await _bound(gw, account)
    assert (await client.request(_submit("447700900123"))).command_status == S.ESME_RINVDSTADR
    assert (await client.request(_submit("33612345679"))).command_status == 0
    await client.close()
    assert gw.accounts.get(account["system_id"]).balance == 10_00 - 100


async def test_sender_not_enabled_is_refused(gateway):
    account = await new_account(gateway, credits="10")
    client = await _bound(gateway, account)
    assert (await client.request(_submit("33612345679", source="unknown1"))).command_status == (
        S.ESME_RINVSRCADR
    )
    await client.close()


async def test_stop_reply_from_a_mobile_stop_lists_it(gateway):
    """An MO saying STOP to the account's number puts its sender on the STOP list;
    the next submit to that mobile ends with error 53 instead of going out. The MO
    enters where an upstream connector hands it over."""
    account = await new_account(gateway, credits="10")
    live = gateway.accounts.get(account["system_id"])
    await gateway.inbound_numbers.add(live.id, "33700000001")
    mo = SimulatedNetwork().mo("33700000001", text=" stop ")
    acked: list[int] = []
    gateway.inbound.on_deliver("simulator", mo, acked.append)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not live.is_stop_listed(mo.source_addr):
        assert loop.time() < deadline, "the STOP was not listed"
        await asyncio.sleep(0.05)
    assert acked == [0]
    client = await _bound(gateway, account)
    resp = await client.request(_submit(mo.source_addr))
    assert resp.command_status == 0
    # The STOP itself is also an MO for this account: it may arrive before or after
    # the receipt, so read both and tell them apart by esm_class.
    by_kind = {}
    for _ in range(2):
        pdu = await client.read(timeout=10)
        await client.send(DeliverSmResp(sequence_number=pdu.sequence_number))
        by_kind["receipt" if pdu.esm_class & ESM_CLASS_DELIVERY_RECEIPT else "mo"] = pdu
    assert by_kind["mo"].short_message == b" stop "
    assert parse_receipt(by_kind["receipt"].short_message).err == 53
    row = await gateway.messages.get(int(resp.message_id))
    assert (row["status"], row["error_code"]) == ("REJECTED", 53)
    await client.close()


async def test_vendor_tlvs_are_a_per_account_choice(gateway):
    """0x1401 outgoing_id rides on the DLRs of an account that asked for it only:
    smpplib, for one, refuses TLV tags it does not know."""
    plain = await new_account(gateway, credits="10")
    vendor = await new_account(gateway, credits="10", settings={"vendor_tlvs": "yes"})
    assert gateway.accounts.get(vendor["system_id"]).vendor_tlvs is True
    seen = {}
    for account in (plain, vendor):
        client = await _bound(gateway, account)
        resp = await client.request(_submit("33612345679"))
        dlr = await client.read(timeout=10)
        await client.send(DeliverSmResp(sequence_number=dlr.sequence_number))
        assert parse_receipt(dlr.short_message).message_id == resp.message_id
        seen[account["system_id"]] = dlr.get_tlv(Tag.OUTGOING_ID)
        await client.close()
    assert seen[plain["system_id"]] is None
    assert seen[vendor["system_id"]] is not None
    await admin(gateway, "account.set", system_id=vendor["system_id"], vendor_tlvs="no")
    assert gateway.accounts.get(vendor["system_id"]).vendor_tlvs is False

"""What the SMPP connector (gateway/upstream/smpp) of a whole gateway hands a real upstream
(the standalone simulator over TCP), and what comes back to the customer.

The client's own parts arrive linked as it linked them, with its other parameters; a
long message_payload is split for the upstream by its `long_messages` setting and
answered with one receipt counting the segments; receipts come back through a TX + RX
pair or as data_sm; an absent subscriber the client asked set_dpf for comes back as
alert_notification.
"""

from __future__ import annotations

import asyncio

import pytest
from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import MakeGateway

from gateway.app import Gateway
from pdu.codec import BindReceiver, BindTransmitter
from pdu.receipt import parse_receipt
from pdu.tlv import Tag, int_tlv
from pdu.udh import build_concat_udh

LONG_GSM = ("Long messages reach the handset whole. " * 12)[:400]


async def _gateway_bound_to(make_gateway: MakeGateway, sim: SimProcess,
                            query: str = "") -> Gateway:
    """A gateway whose one upstream is `sim`, once its connector is bound there. The
    tests count what the upstream got, exactly: a submit_sm_resp taken for lost on a
    loaded machine would be sent again (at least once), so the time-out is generous."""
    gw = await make_gateway(upstream_url=sim.url + "?response_timeout=15" + query)
    await wait_for(lambda: gw.connectors["default"].is_up, 10, "the upstream bind")
    return gw


def _by_text(sim: SimProcess) -> dict[str, dict]:
    return {m["text"]: m for m in sim.accepted()}


async def test_client_parts_and_parameters_reach_the_upstream_linked(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    gw = await _gateway_bound_to(make_gateway, sim)
    try:
        esme = await Esme.bind(*gw.endpoints.smpp, await ready_account(gw))
        udh_parts = [
            submit_pdu("33612345678", "", esm_class=0x40, priority_flag=2, protocol_id=0x7F,
                       service_type="CMT",
                       short_message=build_concat_udh(42, 2, seq) + f"udh part {seq}".encode())
            for seq in (1, 2)
        ]
        sar_parts = [
            submit_pdu("33612345679", f"sar part {seq}", tlvs=[
                int_tlv(Tag.SAR_MSG_REF_NUM, 513), int_tlv(Tag.SAR_TOTAL_SEGMENTS, 2),
                int_tlv(Tag.SAR_SEGMENT_SEQNUM, seq), int_tlv(Tag.USER_MESSAGE_REFERENCE, 7),
            ])
            for seq in (1, 2)
        ]
        resps = await esme.submit_many(udh_parts + sar_parts)
        assert [r.command_status for r in resps] == [0, 0, 0, 0]
        ids = [r.message_id for r in resps]
        await wait_for(lambda: all(i in esme.receipts for i in ids), 15, "a receipt per part")
        await esme.close()
    finally:
        await gw.stop()
        sim.stop()
    got = _by_text(sim)
    for seq in (1, 2):
        udh = got[f"udh part {seq}"]
        assert udh["udh"] == {"ref": 42, "total": 2, "seq": seq}
        assert udh["esm_class"] & 0x40
        assert (udh["priority_flag"], udh["protocol_id"], udh["service_type"]) == (2, 0x7F, "CMT")
        sar = got[f"sar part {seq}"]
        assert sar["sar"] == {"ref": 513, "total": 2, "seq": seq}
        assert [Tag.USER_MESSAGE_REFERENCE, "0007"] in sar["tlvs"]
    # Each client-made part is its own message with its own receipt.
    assert all(len(esme.receipts[i]) == 1 for i in ids)


@pytest.mark.parametrize("mode", ["udh", "sar"])
async def test_long_payload_is_split_for_the_upstream_and_gets_one_receipt(
    make_gateway, tmp_path, mode
):
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    gw = await _gateway_bound_to(make_gateway, sim, f"&long_messages={mode}")
    try:
        account = await ready_account(gw, credits="10")
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        (resp,) = await esme.submit_many([submit_pdu(
            "33612345678", "", tlvs=[(Tag.MESSAGE_PAYLOAD, LONG_GSM.encode())])])
        assert resp.command_status == 0
        await wait_for(lambda: resp.message_id in esme.receipts, 15, "the receipt")
        await wait_for(lambda: len(sim.accepted()) == 3, 5)
        await asyncio.sleep(0.5)  # a second receipt would come by now
        await esme.close()
        row = await gw.messages.get(int(resp.message_id))
    finally:
        await gw.stop()
        sim.stop()
    parts = sorted(sim.accepted(), key=lambda m: (m[mode] or {}).get("seq", 0))
    assert [p[mode]["seq"] for p in parts] == [1, 2, 3]
    assert len({p[mode]["ref"] for p in parts}) == 1 and parts[0][mode]["total"] == 3
    assert "".join(p["text"] for p in parts) == LONG_GSM
    assert len({p["id"] for p in parts}) == 3  # one upstream id per segment
    (receipt,) = esme.receipts[resp.message_id]
    text = parse_receipt(receipt.short_message)
    assert (text.sub, text.dlvrd, text.stat) == (3, 3, "DELIVRD")
    assert (row["status"], row["segments"], row["cost"]) == ("DELIVERED", 3, 300)


async def test_one_failed_segment_fails_the_message_in_its_one_receipt(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "20", "--fail-part", "2").start()
    gw = await _gateway_bound_to(make_gateway, sim)
    try:
        esme = await Esme.bind(*gw.endpoints.smpp, await ready_account(gw))
        (resp,) = await esme.submit_many([submit_pdu(
            "33612345678", "", tlvs=[(Tag.MESSAGE_PAYLOAD, LONG_GSM.encode())])])
        await wait_for(lambda: resp.message_id in esme.receipts, 15, "the receipt")
        await asyncio.sleep(0.5)
        await esme.close()
        row = await gw.messages.get(int(resp.message_id))
    finally:
        await gw.stop()
        sim.stop()
    (receipt,) = esme.receipts[resp.message_id]
    text = parse_receipt(receipt.short_message)
    assert (text.sub, text.dlvrd, text.stat) == (3, 2, "UNDELIV")
    assert row["status"] == "UNDELIVERABLE"


async def test_payload_mode_sends_the_long_message_whole(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    gw = await _gateway_bound_to(make_gateway, sim, "&long_messages=payload")
    try:
        esme = await Esme.bind(*gw.endpoints.smpp, await ready_account(gw))
        (resp,) = await esme.submit_many([submit_pdu(
            "33612345678", "", tlvs=[(Tag.MESSAGE_PAYLOAD, LONG_GSM.encode())])])
        await wait_for(lambda: resp.message_id in esme.receipts, 15, "the receipt")
        await esme.close()
    finally:
        await gw.stop()
        sim.stop()
    (whole,) = sim.accepted()
    assert whole["text"] == LONG_GSM and whole["udh"] is None and whole["sar"] is None
    text = parse_receipt(esme.receipts[resp.message_id][0].short_message)
    assert (text.sub, text.dlvrd, text.stat) == (3, 3, "DELIVRD")


async def test_receipts_reach_the_client_through_a_tx_rx_pair_and_as_data_sm(
    make_gateway, tmp_path
):
    sim = SimProcess(tmp_path, "--latency-ms", "20", "--receipt-pdu", "data_sm").start()
    gw = await _gateway_bound_to(make_gateway, sim, "&bind=transmitter%2Breceiver")
    try:
        account = await ready_account(gw)
        # The customer binds a pair too: submits on its TX, receipts on its RX.
        rx = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=BindReceiver)
        tx = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=BindTransmitter)
        resps = await tx.submit_many([submit_pdu(f"3361234{i:04d}", f"pair {i}")
                                      for i in range(20)])
        ids = {r.message_id for r in resps}
        await wait_for(lambda: ids <= set(rx.receipts), 15, "every receipt on the RX")
        await tx.close()
        await rx.close()
    finally:
        await gw.stop()
        sim.stop()
    assert all(len(rx.receipts[i]) == 1 for i in ids)
    assert len(sim.accepted()) == 20


async def test_absent_subscriber_with_set_dpf_comes_back_as_alert_notification(
    make_gateway, tmp_path
):
    sim = SimProcess(tmp_path, "--latency-ms", "20", "--mix", "absent=1",
                     "--alert-after-ms", "300").start()
    gw = await _gateway_bound_to(make_gateway, sim)
    try:
        esme = await Esme.bind(*gw.endpoints.smpp, await ready_account(gw))
        asked, not_asked = await esme.submit_many([
            submit_pdu("33612345678", "are you there", tlvs=[int_tlv(Tag.SET_DPF, 1)]),
            submit_pdu("33612345679", "no alert wanted"),
        ])
        await wait_for(lambda: {asked.message_id, not_asked.message_id} <= set(esme.receipts),
                       15, "both receipts")
        assert parse_receipt(esme.receipts[asked.message_id][0].short_message).stat == "UNDELIV"
        await wait_for(lambda: esme.alerts, 10, "the alert_notification")
        await asyncio.sleep(1.0)  # none for the message without set_dpf
        await esme.close()
        left = await gw.alert_store.pending()
    finally:
        await gw.stop()
        sim.stop()
    (alert,) = esme.alerts
    assert (alert.source_addr, alert.esme_addr) == ("33612345678", "ACME")
    assert (alert.esme_addr_ton, alert.esme_addr_npi) == (5, 0)
    assert left == []  # delivered, so forgotten

"""The simulated mobile network and the in-process simulator connector
(gateway/upstream/simulator).

Receipts for each outcome, network_error_code as SMPP 3.4 encodes it, alert_notification
for a subscriber who comes back, and the connector's timers that deliver them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from delivery_helpers import wait_for
from store_fixtures import new_message

from config.upstreams import UpstreamConfig
from gateway.upstream.base import HandOvers
from gateway.upstream.simulator import SimulatedNetwork, SimulatorConnector, as_data_sm
from pdu.codec import AlertNotification, DataSm, DeliverSm, Pdu, decode, encode
from pdu.receipt import parse_receipt
from pdu.tlv import Tag, as_int, encode_tlvs, int_tlv

MOBILE = "33612345678"


def _receipt(outcome: str) -> DeliverSm:
    return SimulatedNetwork().receipt(
        "0000000001000001", outcome, source_addr="ACME", dest_addr=MOBILE,
        submitted=datetime.now(UTC), text="hello",
    )


def test_absent_outcome_is_an_undeliv_receipt_with_the_gsm_absent_subscriber_error():
    receipt = _receipt("absent")
    assert parse_receipt(receipt.short_message).stat == "UNDELIV"
    assert parse_receipt(receipt.short_message).err == 27
    assert as_int(receipt.get_tlv(Tag.MESSAGE_STATE)) == 5
    assert receipt.get_tlv(Tag.NETWORK_ERROR_CODE) == b"\x03\x00\x1b"


@pytest.mark.parametrize("outcome", ["undeliverable", "expired", "rejected", "absent"])
def test_network_error_code_names_gsm_as_network_type_3(outcome):
    value = _receipt(outcome).get_tlv(Tag.NETWORK_ERROR_CODE)
    assert value[0] == 3  # SMPP 3.4 5.3.2.31: 1 ANSI-136, 2 IS-95, 3 GSM
    assert int.from_bytes(value[1:], "big") == 27


def test_delivered_receipt_carries_no_network_error_code():
    assert _receipt("delivered").get_tlv(Tag.NETWORK_ERROR_CODE) is None


def test_alert_names_the_mobile_as_source_and_the_esme_address_it_came_from():
    alert = SimulatedNetwork().alert(MOBILE, 1, 1, "ACME", 5, 0)
    again = decode(encode(alert))
    assert isinstance(again, AlertNotification)
    assert (again.source_addr, again.source_addr_ton, again.source_addr_npi) == (MOBILE, 1, 1)
    assert (again.esme_addr, again.esme_addr_ton, again.esme_addr_npi) == ("ACME", 5, 0)
    assert as_int(again.get_tlv(Tag.MS_AVAILABILITY_STATUS)) == 0


def test_data_sm_receipt_carries_the_receipt_text_in_message_payload():
    receipt = _receipt("delivered")
    data_sm = decode(encode(as_data_sm(receipt)))
    assert isinstance(data_sm, DataSm)
    assert data_sm.esm_class == receipt.esm_class
    assert (data_sm.source_addr, data_sm.destination_addr) == (MOBILE, "ACME")
    assert data_sm.get_tlv(Tag.MESSAGE_PAYLOAD) == receipt.short_message
    assert data_sm.get_tlv(Tag.RECEIPTED_MESSAGE_ID) == receipt.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
    assert as_int(data_sm.get_tlv(Tag.MESSAGE_STATE)) == 2


# --- the in-process connector ----------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """An outcome the in-process connector reported, structured (no receipt text)."""

    upstream_id: str
    state: int
    err: int
    network_error: bytes | None


def _connector(delivered: list[tuple[float, object]], **cfg) -> SimulatorConnector:
    loop = asyncio.get_running_loop()
    config = UpstreamConfig(name="sim", type="simulator", latency_ms=10, **cfg)
    return SimulatorConnector(
        config, lambda name, pdu, ack: delivered.append((loop.time(), pdu)), HandOvers(),
        lambda name, upstream_id, *outcome: delivered.append(
            (loop.time(), Reported(upstream_id, *outcome))),
    )


def _set_dpf(value: int) -> bytes:
    return encode_tlvs([int_tlv(Tag.USER_MESSAGE_REFERENCE, 7), int_tlv(Tag.SET_DPF, value)])


async def test_connector_alerts_after_an_absent_receipt_when_the_message_set_dpf():
    delivered: list[tuple[float, Pdu]] = []
    connector = _connector(delivered, mix="absent=1", alert_after_ms=150)
    await connector.start()
    try:
        result = await connector.send(new_message(1, 1, dest_addr=MOBILE, tlvs=_set_dpf(1)))
        assert result.ok
        await wait_for(lambda: len(delivered) == 2, 3, "receipt and alert")
    finally:
        await connector.stop()
    (receipt_at, receipt), (alert_at, alert) = delivered
    assert receipt == Reported(result.upstream_id, 5, 27, b"\x03\x00\x1b")
    assert isinstance(alert, AlertNotification)
    assert alert_at - receipt_at >= 0.14
    assert (alert.source_addr, alert.source_addr_ton, alert.source_addr_npi) == (MOBILE, 1, 1)
    assert (alert.esme_addr, alert.esme_addr_ton, alert.esme_addr_npi) == ("ACME", 5, 0)


@pytest.mark.parametrize("tlvs", [None, _set_dpf(0)], ids=["no_set_dpf", "set_dpf_0"])
async def test_connector_sends_no_alert_unless_set_dpf_is_1(tlvs):
    delivered: list[tuple[float, Pdu]] = []
    connector = _connector(delivered, mix="absent=1", alert_after_ms=20)
    await connector.start()
    try:
        await connector.send(new_message(1, 1, tlvs=tlvs))
        await wait_for(lambda: len(delivered) == 1, 3, "the receipt")
        await asyncio.sleep(0.2)
    finally:
        await connector.stop()
    assert [type(pdu) for _, pdu in delivered] == [Reported]


async def test_connector_sends_no_alert_for_other_failures():
    delivered: list[tuple[float, Pdu]] = []
    connector = _connector(delivered, mix="undeliverable=1", alert_after_ms=20)
    await connector.start()
    try:
        await connector.send(new_message(1, 1, tlvs=_set_dpf(1)))
        await wait_for(lambda: len(delivered) == 1, 3, "the receipt")
        await asyncio.sleep(0.2)
    finally:
        await connector.stop()
    assert [type(pdu) for _, pdu in delivered] == [Reported]


async def test_connector_stop_cancels_a_pending_alert():
    delivered: list[tuple[float, Pdu]] = []
    connector = _connector(delivered, mix="absent=1", alert_after_ms=200)
    await connector.start()
    await connector.send(new_message(1, 1, tlvs=_set_dpf(1)))
    await wait_for(lambda: len(delivered) == 1, 3, "the receipt")
    await connector.stop()
    await asyncio.sleep(0.3)
    assert [type(pdu) for _, pdu in delivered] == [Reported]

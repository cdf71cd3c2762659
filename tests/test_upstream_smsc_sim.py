"""The standalone SMSC simulator (gateway/upstream/smsc_sim) over real TCP, with a raw
ESME on the other end.

Most tests run its server in this event loop (`SimServer.start`/`stop`, what `serve()`
runs); the hung-upstream one runs `python -m gateway.upstream.smsc_sim` as operators do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from delivery_helpers import SimProcess
from smpp_client import RawClient

from gateway.upstream.smsc_sim import SimServer, build_parser
from pdu.codec import (
    HEADER_SIZE,
    AlertNotification,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    DataSm,
    DeliverSm,
    EnquireLink,
    Pdu,
    SubmitSm,
    encode,
    response_for,
)
from pdu.fields import ESM_CLASS_UDHI
from pdu.receipt import Receipt, parse_receipt
from pdu.tlv import Tag, as_cstr, as_int, int_tlv
from pdu.udh import build_concat_udh

MOBILE = "33612345678"
SET_DPF = int_tlv(Tag.SET_DPF, 1)


@asynccontextmanager
async def running_sim(*argv: str) -> AsyncIterator[int]:
    """The simulator on a free loopback port, started and stopped as `serve()` does."""
    args = build_parser().parse_args(["--port", "0", "--latency-ms", "10", *argv])
    server = SimServer(args)
    if args.state:
        server.load_state(Path(args.state))
    _, port = await server.start()
    try:
        yield port
    finally:
        await server.stop()


class Esme:
    """A RawClient that answers what the SMSC sends and keeps it in order of arrival."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.inbox: list[Pdu] = []

    @classmethod
    async def bind(cls, port: int, bind_class: type[Pdu] = BindTransceiver) -> Esme:
        client = await RawClient.connect("127.0.0.1", port)
        resp = await client.bind("gw", "secret", bind_class)
        assert resp.command_status == 0
        return cls(client)

    async def _read(self, timeout: float) -> Pdu:
        pdu = await self.client.read(timeout)
        if pdu.command_id in (CommandId.DELIVER_SM, CommandId.DATA_SM):
            await self.client.send(response_for(pdu))
        return pdu

    async def submit(self, *pdus: SubmitSm) -> list[Pdu]:
        """The submit_sm_resp of each, in order; anything else read meanwhile is kept."""
        for pdu in pdus:
            await self.client.send(pdu)
        answers: dict[int, Pdu] = {}
        while len(answers) < len(pdus):
            pdu = await self._read(3.0)
            if pdu.command_id == CommandId.SUBMIT_SM_RESP:
                answers[pdu.sequence_number] = pdu
            else:
                self.inbox.append(pdu)
        return [answers[p.sequence_number] for p in pdus]

    async def receive(self, timeout: float = 3.0) -> Pdu:
        """The next PDU the SMSC sent (deliver_sm and data_sm answered with success)."""
        if self.inbox:
            return self.inbox.pop(0)
        return await self._read(timeout)

    async def close(self) -> None:
        await self.client.close()


def _submit(text: bytes = b"hello", **fields) -> SubmitSm:
    values = {
        "source_addr_ton": 5, "source_addr": "ACME", "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": MOBILE, "registered_delivery": 1, "short_message": text,
    }
    return SubmitSm(**{**values, **fields})


def _receipt_of(pdu: Pdu) -> Receipt:
    if isinstance(pdu, DataSm):
        return parse_receipt(pdu.get_tlv(Tag.MESSAGE_PAYLOAD))
    assert isinstance(pdu, DeliverSm)
    return parse_receipt(pdu.short_message)


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# --- absent subscriber and alert_notification -------------------------------------------


async def test_absent_subscriber_with_set_dpf_gets_undeliv_receipt_then_alert():
    async with running_sim("--mix", "absent=1", "--alert-after-ms", "200") as port:
        esme = await Esme.bind(port)
        (resp,) = await esme.submit(_submit(tlvs=[SET_DPF]))
        receipt = await esme.receive()
        loop = asyncio.get_running_loop()
        receipt_at = loop.time()
        alert = await esme.receive()
        alert_after = loop.time() - receipt_at
        await esme.close()
    assert isinstance(receipt, DeliverSm)
    assert as_cstr(receipt.get_tlv(Tag.RECEIPTED_MESSAGE_ID)) == resp.message_id
    assert (_receipt_of(receipt).stat, _receipt_of(receipt).err) == ("UNDELIV", 27)
    assert as_int(receipt.get_tlv(Tag.MESSAGE_STATE)) == 5
    assert receipt.get_tlv(Tag.NETWORK_ERROR_CODE) == b"\x03\x00\x1b"
    assert isinstance(alert, AlertNotification)
    assert alert_after >= 0.15
    assert (alert.source_addr, alert.source_addr_ton, alert.source_addr_npi) == (MOBILE, 1, 1)
    assert (alert.esme_addr, alert.esme_addr_ton, alert.esme_addr_npi) == ("ACME", 5, 0)


async def test_absent_subscriber_without_set_dpf_gets_no_alert():
    async with running_sim("--mix", "absent=1", "--alert-after-ms", "20") as port:
        esme = await Esme.bind(port)
        await esme.submit(_submit())
        receipt = await esme.receive()
        with pytest.raises(TimeoutError):
            await esme.receive(timeout=0.4)
        await esme.close()
    assert _receipt_of(receipt).stat == "UNDELIV"


async def test_alert_waits_for_a_receiver_like_receipts():
    async with running_sim("--mix", "absent=1", "--alert-after-ms", "20") as port:
        transmitter = await Esme.bind(port, BindTransmitter)
        await transmitter.submit(_submit(tlvs=[SET_DPF]))
        await asyncio.sleep(0.2)  # both are due by now, and nobody can take them
        receiver = await Esme.bind(port, BindReceiver)
        first, second = await receiver.receive(), await receiver.receive()
        await transmitter.close()
        await receiver.close()
    assert isinstance(first, DeliverSm) and isinstance(second, AlertNotification)


async def test_alerts_need_no_response_and_take_no_place_in_the_delivery_window():
    count = 12  # more than the simulator's delivery window of 10
    async with running_sim("--mix", "absent=1", "--alert-after-ms", "0") as port:
        esme = await Esme.bind(port)
        await esme.submit(*(_submit(registered_delivery=0, tlvs=[SET_DPF]) for _ in range(count)))
        alerts = [await esme.receive() for _ in range(count)]
        await esme.close()
    assert all(isinstance(a, AlertNotification) for a in alerts)


async def test_state_file_carries_receipts_and_alerts_to_the_next_start(tmp_path):
    state = str(tmp_path / "state.json")
    argv = ("--mix", "absent=1", "--alert-after-ms", "20", "--state", state)
    async with running_sim(*argv) as port:
        transmitter = await Esme.bind(port, BindTransmitter)
        await transmitter.submit(_submit(tlvs=[SET_DPF]))
        await transmitter.close()
    async with running_sim(*argv) as port:
        receiver = await Esme.bind(port, BindReceiver)
        first, second = await receiver.receive(), await receiver.receive()
        await receiver.close()
    assert isinstance(first, DeliverSm) and isinstance(second, AlertNotification)


async def test_state_file_of_deliver_sm_bodies_from_an_older_simulator_still_loads(tmp_path):
    state = tmp_path / "state.json"
    mo = DeliverSm(source_addr="33600000000", destination_addr="33700000001",
                   short_message=b"kept")
    state.write_text(json.dumps([encode(mo)[HEADER_SIZE:].hex()]))
    async with running_sim("--state", str(state)) as port:
        receiver = await Esme.bind(port, BindReceiver)
        kept = await receiver.receive()
        await receiver.close()
    assert isinstance(kept, DeliverSm) and kept.short_message == b"kept"


# --- data_sm receipts ---------------------------------------------------------------------


async def test_data_sm_receipts_are_released_by_data_sm_resp():
    count = 15  # more than the simulator's delivery window of 10
    async with running_sim("--receipt-pdu", "data_sm") as port:
        esme = await Esme.bind(port)
        resps = await esme.submit(*(_submit(f"m{i}".encode()) for i in range(count)))
        receipts = [await esme.receive() for _ in range(count)]
        await esme.close()
    assert all(isinstance(r, DataSm) and r.esm_class == 0x04 for r in receipts)
    assert {as_cstr(r.get_tlv(Tag.RECEIPTED_MESSAGE_ID)) for r in receipts} == {
        r.message_id for r in resps}
    assert {_receipt_of(r).message_id for r in receipts} == {r.message_id for r in resps}
    assert {as_int(r.get_tlv(Tag.MESSAGE_STATE)) for r in receipts} == {2}


async def test_mo_travels_as_data_sm_with_its_text_in_message_payload():
    async with running_sim("--receipt-pdu", "data_sm", "--mo-rate", "50",
                           "--mo-to", "33700000001") as port:
        esme = await Esme.bind(port, BindReceiver)
        mo = await esme.receive()
        await esme.close()
    assert isinstance(mo, DataSm)
    assert mo.esm_class == 0 and mo.destination_addr == "33700000001"
    assert mo.get_tlv(Tag.MESSAGE_PAYLOAD).startswith(b"MO ")


# --- one failing segment ------------------------------------------------------------------


def _udh_parts() -> list[SubmitSm]:
    return [
        _submit(build_concat_udh(7, 3, seq) + f"part {seq}".encode(), esm_class=ESM_CLASS_UDHI)
        for seq in (1, 2, 3)
    ]


def _sar_parts() -> list[SubmitSm]:
    return [
        _submit(f"part {seq}".encode(), tlvs=[
            int_tlv(Tag.SAR_MSG_REF_NUM, 300), int_tlv(Tag.SAR_TOTAL_SEGMENTS, 3),
            int_tlv(Tag.SAR_SEGMENT_SEQNUM, seq),
        ])
        for seq in (1, 2, 3)
    ]


@pytest.mark.parametrize("parts", [_udh_parts, _sar_parts], ids=["udh", "sar"])
async def test_fail_part_makes_only_that_segment_undeliverable(parts):
    async with running_sim("--mix", "delivered=1", "--fail-part", "2") as port:
        esme = await Esme.bind(port)
        resps = await esme.submit(*parts(), _submit(b"single"))
        receipts = [_receipt_of(await esme.receive()) for _ in resps]
        await esme.close()
    stat = {r.message_id: (r.stat, r.err) for r in receipts}
    assert [stat[r.message_id] for r in resps] == [
        ("DELIVRD", 0), ("UNDELIV", 27), ("DELIVRD", 0), ("DELIVRD", 0)]


# --- what the log says arrived ------------------------------------------------------------


async def test_log_line_carries_every_field_the_message_came_with(tmp_path):
    log = tmp_path / "accepted.jsonl"
    udh = build_concat_udh(9, 2, 1)
    ucs2 = "héllo".encode("utf-16-be")
    with_udh = _submit(
        udh + ucs2, service_type="CMT", source_addr_npi=0, esm_class=ESM_CLASS_UDHI,
        protocol_id=0x41, priority_flag=1, registered_delivery=0, data_coding=8,
        tlvs=[int_tlv(Tag.USER_MESSAGE_REFERENCE, 0x1234), SET_DPF],
    )
    with_sar = _submit(b"sar text", tlvs=_sar_parts()[1].tlvs)
    async with running_sim("--log", str(log)) as port:
        esme = await Esme.bind(port)
        resps = await esme.submit(with_udh, with_sar)
        await esme.close()
    first, second = _log_lines(log)
    assert first == {
        "id": resps[0].message_id, "source": "ACME", "dest": MOBILE, "text": "héllo",
        "outcome": "delivered", "source_ton": 5, "source_npi": 0, "dest_ton": 1, "dest_npi": 1,
        "service_type": "CMT", "esm_class": 0x40, "protocol_id": 0x41, "priority_flag": 1,
        "registered_delivery": 0, "data_coding": 8, "short_message": (udh + ucs2).hex(),
        "tlvs": [[0x0204, "1234"], [0x0421, "01"]],
        "udh": {"ref": 9, "total": 2, "seq": 1}, "sar": None,
    }
    assert second["text"] == "sar text" and second["udh"] is None
    assert second["sar"] == {"ref": 300, "total": 3, "seq": 2}
    assert second["tlvs"] == [[0x020C, "012c"], [0x020E, "03"], [0x020F, "02"]]


# --- bind shapes and a hung upstream ------------------------------------------------------


async def test_transmitter_and_receiver_pair_gets_receipts_on_the_receiver():
    async with running_sim() as port:
        receiver = await Esme.bind(port, BindReceiver)
        transmitter = await Esme.bind(port, BindTransmitter)
        (resp,) = await transmitter.submit(_submit())
        receipt = await receiver.receive()
        with pytest.raises(TimeoutError):
            await transmitter.receive(timeout=0.3)
        await transmitter.close()
        await receiver.close()
    assert isinstance(receipt, DeliverSm)
    assert as_cstr(receipt.get_tlv(Tag.RECEIPTED_MESSAGE_ID)) == resp.message_id


async def test_never_answer_binds_and_answers_enquire_link_but_not_submit_sm(tmp_path):
    sim = SimProcess(tmp_path, "--never-answer").start()
    try:
        client = await RawClient.connect("127.0.0.1", sim.port)
        assert (await client.bind("gw", "secret")).command_status == 0
        assert (await client.request(EnquireLink(), timeout=3)).command_status == 0
        await client.send(_submit())
        with pytest.raises(TimeoutError):
            await client.read(timeout=1.0)
        assert (await client.request(EnquireLink(), timeout=3)).command_status == 0
        await client.close()
    finally:
        assert sim.stop() == 0
    assert sim.accepted() == []

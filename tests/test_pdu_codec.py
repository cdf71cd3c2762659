"""The codec: round trips, byte equality with smpplib, and errors by the spec's status."""

from __future__ import annotations

import pytest
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from pdu import codec
from pdu.codec import (
    PDU_CLASSES,
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    CommandId,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    GenericNack,
    PduError,
    SmeDest,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
    decode,
    encode,
)
from pdu.status import CommandStatus as S
from pdu.tlv import Tag, cstr_tlv, int_tlv

SAMPLES = [
    BindTransmitter(sequence_number=1, system_id="smpp-abc", password="secret12", system_type="VMA"),
    BindReceiver(sequence_number=2, system_id="a", password="b", addr_ton=1, addr_npi=1,
                 address_range="^336"),
    BindTransceiver(sequence_number=3, system_id="x", password="y"),
    BindTransceiverResp(sequence_number=3, system_id="smppgw",
                        tlvs=[int_tlv(Tag.SC_INTERFACE_VERSION, 0x34)]),
    codec.BindTransmitterResp(sequence_number=1, command_status=S.ESME_RINVPASWD, system_id="gw"),
    codec.BindReceiverResp(sequence_number=2),
    codec.Outbind(sequence_number=9, system_id="gw", password="pw"),
    codec.Unbind(sequence_number=4),
    codec.UnbindResp(sequence_number=4),
    EnquireLink(sequence_number=0x7FFFFFFF),
    codec.EnquireLinkResp(sequence_number=5),
    GenericNack(sequence_number=6, command_status=S.ESME_RINVCMDID),
    SubmitSm(sequence_number=7, source_addr_ton=5, source_addr="ovh123", dest_addr_ton=1,
             dest_addr_npi=1, destination_addr="33601020304", esm_class=0x40,
             registered_delivery=1, data_coding=8, short_message=bytes(range(254)),
             schedule_delivery_time="000001000000000R", validity_period="261125120000000+",
             tlvs=[(0x1234, b"\x00\xffvendor"), int_tlv(Tag.SAR_MSG_REF_NUM, 513)]),
    SubmitSmResp(sequence_number=7, message_id="123456789"),
    DeliverSm(sequence_number=8, esm_class=4, short_message=b"id:1 stat:DELIVRD",
              tlvs=[cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "1"), int_tlv(Tag.MESSAGE_STATE, 2),
                    (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x01")]),
    DeliverSmResp(sequence_number=8),
    codec.DataSm(sequence_number=10, source_addr="a" * 64, destination_addr="1",
                 tlvs=[(Tag.MESSAGE_PAYLOAD, b"x" * 1000)]),
    codec.DataSmResp(sequence_number=10, message_id="m"),
    codec.QuerySm(sequence_number=11, message_id="42", source_addr="ovh"),
    codec.QuerySmResp(sequence_number=11, message_id="42", final_date="261125120000000+",
                      message_state=2, error_code=0),
    codec.CancelSm(sequence_number=12, message_id="42", source_addr="ovh",
                   destination_addr="336"),
    codec.CancelSmResp(sequence_number=12),
    codec.ReplaceSm(sequence_number=13, message_id="42", source_addr="ovh", short_message=b"new"),
    codec.ReplaceSmResp(sequence_number=13),
    SubmitMulti(sequence_number=14, source_addr="ovh",
                dest_addresses=[SmeDest(1, 1, "33601"), DistributionList("friends"),
                                SmeDest(1, 1, "33602")],
                short_message=b"hello"),
    SubmitMultiResp(sequence_number=14, message_id="9",
                    unsuccess_smes=[UnsuccessSme(1, 1, "33602", S.ESME_RINVDSTADR)]),
    codec.AlertNotification(sequence_number=15, source_addr="336", esme_addr="ovh",
                            tlvs=[int_tlv(Tag.MS_AVAILABILITY_STATUS, 0)]),
]


def test_every_operation_has_a_sample():
    assert {type(p) for p in SAMPLES} == set(PDU_CLASSES.values())


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: p.name)
def test_round_trip(pdu):
    wire = encode(pdu)
    assert int.from_bytes(wire[:4], "big") == len(wire)
    assert decode(wire) == pdu
    assert encode(decode(wire)) == wire


class _FixedSequence:
    sequence = 7

    def next_sequence(self) -> int:
        return 7


def _smpplib(command: str, **fields) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=_FixedSequence(), **fields)
    pdu.sequence = 7
    return pdu.generate()


SMPPLIB_CASES = [
    ("bind_transmitter", BindTransmitter, {"system_id": "smpp-a1", "password": "pw12",
                                               "system_type": "VMA", "interface_version": 0x34}),
    ("bind_receiver", BindReceiver, {"system_id": "smpp-a1", "password": "pw12",
                                         "interface_version": 0x34, "addr_ton": 1, "addr_npi": 1}),
    ("bind_transceiver", BindTransceiver, {"system_id": "x", "password": "y",
                                               "interface_version": 0x34}),
    ("unbind", codec.Unbind, {}),
    ("unbind_resp", codec.UnbindResp, {}),
    ("enquire_link", EnquireLink, {}),
    ("enquire_link_resp", codec.EnquireLinkResp, {}),
    ("submit_sm", SubmitSm, {"source_addr_ton": 5, "source_addr": "ovh123", "dest_addr_ton": 1,
                                 "dest_addr_npi": 1, "destination_addr": "33601020304",
                                 "registered_delivery": 1, "data_coding": 8,
                                 "short_message": b"\x00h\x00i"}),
    ("submit_sm_resp", SubmitSmResp, {"message_id": "4242"}),
    ("deliver_sm", DeliverSm, {"source_addr": "33601020304", "destination_addr": "ovh",
                                   "esm_class": 4, "short_message": b"id:1 stat:DELIVRD"}),
    ("deliver_sm_resp", DeliverSmResp, {}),
]


@pytest.mark.parametrize("command,cls,fields", SMPPLIB_CASES, ids=[c[0] for c in SMPPLIB_CASES])
def test_bytes_equal_smpplib(command, cls, fields):
    ours = encode(cls(sequence_number=7, **fields))
    assert ours == _smpplib(command, **fields)


def test_deliver_sm_with_tlvs_equals_smpplib():
    theirs = _smpplib("deliver_sm", source_addr="336", destination_addr="ovh", esm_class=4,
                      short_message=b"id:9", receipted_message_id="9", message_state=2)
    ours = encode(DeliverSm(sequence_number=7, source_addr="336", destination_addr="ovh",
                            esm_class=4, short_message=b"id:9",
                            tlvs=[int_tlv(Tag.MESSAGE_STATE, 2),
                                  cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "9")]))
    assert ours == theirs


def test_smpplib_parses_what_we_encode():
    wire = encode(SubmitSmResp(sequence_number=3, message_id="77"))
    parsed = smpplib.smpp.parse_pdu(wire, client=_FixedSequence())
    assert parsed.message_id == b"77" and parsed.sequence == 3


def test_unknown_tlv_survives_byte_for_byte():
    wire = encode(SubmitSm(destination_addr="1", tlvs=[(0x3FFF, b"\x01\x02\x03")]))
    assert decode(wire).get_tlv(0x3FFF) == b"\x01\x02\x03"


def test_error_response_without_body_decodes():
    wire = bytes.fromhex("00000010 80000009 0000000e 00000001".replace(" ", ""))
    pdu = decode(wire)
    assert isinstance(pdu, BindTransceiverResp) and pdu.command_status == S.ESME_RINVPASWD


def _frame(command_id: int, body: bytes, seq: int = 1) -> bytes:
    return (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big") + bytes(4) + \
        seq.to_bytes(4, "big") + body


SUBMIT_PREFIX = b"\x00" + b"\x05\x00ovh\x00" + b"\x01\x01336\x00"

DECODE_ERRORS = [
    ("unknown command_id", _frame(0x00000099, b""), S.ESME_RINVCMDID),
    ("system_id without NUL", _frame(CommandId.BIND_TRANSMITTER, b"a" * 20), S.ESME_RINVSYSID),
    ("password too long", _frame(CommandId.BIND_TRANSMITTER, b"sid\x00" + b"p" * 12 + b"\x00"),
     S.ESME_RINVPASWD),
    ("source_addr too long", _frame(CommandId.SUBMIT_SM, b"\x00\x05\x00" + b"9" * 30 + b"\x00"),
     S.ESME_RINVSRCADR),
    ("destination too long", _frame(CommandId.SUBMIT_SM, b"\x00\x05\x00ovh\x00\x01\x01" +
                                    b"3" * 25 + b"\x00"), S.ESME_RINVDSTADR),
    ("body ends early", _frame(CommandId.SUBMIT_SM, SUBMIT_PREFIX + b"\x00\x00"), S.ESME_RINVCMDLEN),
    ("sm_length overruns", _frame(CommandId.SUBMIT_SM, SUBMIT_PREFIX + bytes(9) + b"\x05ab"), S.ESME_RINVMSGLEN),
    ("truncated TLV", _frame(CommandId.SUBMIT_SM, SUBMIT_PREFIX + bytes(10) + b"\x02\x04"),
     S.ESME_RINVOPTPARSTREAM),
    ("TLV bad length", _frame(CommandId.SUBMIT_SM, SUBMIT_PREFIX + bytes(10) +
                              b"\x04\x27\x00\x02\x00\x01"), S.ESME_RINVPARLEN),
    ("bad dest_flag", _frame(CommandId.SUBMIT_MULTI, b"\x00\x00\x00ovh\x00\x01\x03"),
     S.ESME_RINVDESTFLAG),
    ("zero destinations", _frame(CommandId.SUBMIT_MULTI, b"\x00\x00\x00ovh\x00\x00"),
     S.ESME_RINVNUMDESTS),
]


@pytest.mark.parametrize("frame,status", [c[1:] for c in DECODE_ERRORS],
                         ids=[c[0] for c in DECODE_ERRORS])
def test_decode_error_carries_spec_status(frame, status):
    with pytest.raises(PduError) as err:
        decode(frame)
    assert err.value.status == status
    assert err.value.sequence_number == 1


def test_encode_refuses_oversized_field():
    with pytest.raises(ValueError):
        encode(SubmitSm(source_addr="x" * 21))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_only_returns_pdu_or_raises_pdu_error(data):
    frame = (16 + len(data)).to_bytes(4, "big") + data[:12].ljust(12, b"\x00") + data[12:]
    frame = (len(frame)).to_bytes(4, "big") + frame[4:]
    try:
        pdu = decode(frame)
    except PduError:
        return
    assert isinstance(pdu, codec.Pdu)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_frames_never_escape_the_codec_error(sample, data):
    wire = bytearray(encode(sample))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(4, len(wire) - 1)) if len(wire) > 4 else 0
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(16, len(wire)))
    frame = bytes(wire[:cut])
    frame = len(frame).to_bytes(4, "big") + frame[4:]
    try:
        pdu = decode(frame)
    except PduError as exc:
        assert exc.status in S.__members__.values()
    else:
        assert isinstance(pdu, codec.Pdu)


def test_submit_multi_takes_255_destinations():
    pdu = SubmitMulti(sequence_number=3, source_addr="ovh", short_message=b"x",
                      dest_addresses=[SmeDest(1, 1, f"3360000{i:04d}") for i in range(255)])
    assert len(decode(encode(pdu)).dest_addresses) == 255

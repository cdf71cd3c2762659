"""The submit_sm checks of gateway/submit/validation, table-driven: each refusal pinned
to its command_status, segments counted, validity and schedule resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.accounts import Sender, SubmitPolicy
from gateway.submit.validation import SubmitRejected, check_submit
from pdu.codec import SubmitSm
from pdu.status import CommandStatus as S
from pdu.tlv import Tag, int_tlv

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD = {"source_addr_ton": 5, "source_addr_npi": 0, "source_addr": "ovh123", "dest_addr_ton": 1,
            "dest_addr_npi": 1, "destination_addr": "33601020304", "short_message": b"hello"}


SENDERS = {
    "ovh123": Sender("alphanumeric", "enabled"),
    "Shop!": Sender("alphanumeric", "enabled"),
    "38069": Sender("shortcode", "enabled"),
    "33601020304": Sender("numeric", "enabled"),
    "12345": Sender("shortcode", "enabled"),
    "NEWS": Sender("alphanumeric", "pending"),
}


def _check(gsm_packed=False, max_segments=8, strict=True, **fields):
    policy = SubmitPolicy(SENDERS, strict=strict, gsm_packed=gsm_packed,
                          max_segments=max_segments)
    return check_submit(SubmitSm(**{**GOOD, **fields}), policy, now=NOW,
                        default_validity=timedelta(hours=48), max_validity=timedelta(days=7))


# Strict addressing: the provider's specification to the letter.
REFUSALS = [
    ("source TON 0", {"source_addr_ton": 0}, S.ESME_RINVSRCTON),
    ("source TON 2", {"source_addr_ton": 2, "source_addr_npi": 1, "source_addr": "0601"},
     S.ESME_RINVSRCTON),
    ("sender not enabled", {"source_addr": "NEWS"}, S.ESME_RINVSRCADR),
    ("shortcode sent as alphanumeric", {"source_addr": "12345"}, S.ESME_RINVSRCADR),
    ("alphanumeric with NPI 1", {"source_addr_npi": 1}, S.ESME_RINVSRCNPI),
    ("alphanumeric too long", {"source_addr": "abcdefghijkl"}, S.ESME_RINVSRCADR),
    ("alphanumeric all digits", {"source_addr": "12345"}, S.ESME_RINVSRCADR),
    ("alphanumeric special chars", {"source_addr": "ovh!*"}, S.ESME_RINVSRCADR),
    ("shortcode NPI 0", {"source_addr_ton": 3, "source_addr_npi": 0, "source_addr": "38069"},
     S.ESME_RINVSRCNPI),
    ("shortcode too long", {"source_addr_ton": 3, "source_addr_npi": 1, "source_addr": "123456789"},
     S.ESME_RINVSRCADR),
    ("international with letters", {"source_addr_ton": 1, "source_addr_npi": 1,
                                        "source_addr": "33abc"}, S.ESME_RINVSRCADR),
    ("international with +", {"source_addr_ton": 1, "source_addr_npi": 1,
                                  "source_addr": "+33601020304"}, S.ESME_RINVSRCADR),
    ("destination TON 0", {"dest_addr_ton": 0}, S.ESME_RINVDSTTON),
    ("destination NPI 0", {"dest_addr_npi": 0}, S.ESME_RINVDSTNPI),
    ("destination leading 0", {"destination_addr": "0601020304"}, S.ESME_RINVDSTADR),
    ("destination too short", {"destination_addr": "336"}, S.ESME_RINVDSTADR),
    ("destination 16 digits", {"destination_addr": "3" * 16}, S.ESME_RINVDSTADR),
    ("esm_class delivery receipt type", {"esm_class": 0x04}, S.ESME_RINVESMCLASS),
    ("registered_delivery reserved 3", {"registered_delivery": 3}, S.ESME_RINVREGDLVFLG),
    ("registered_delivery high bits", {"registered_delivery": 0x21}, S.ESME_RINVREGDLVFLG),
    ("priority 4", {"priority_flag": 4}, S.ESME_RINVPRTFLG),
    ("replace_if_present 2", {"replace_if_present_flag": 2}, S.ESME_RINVREPFLAG),
    ("schedule garbage", {"schedule_delivery_time": "tomorrow"}, S.ESME_RINVSCHED),
    ("validity garbage", {"validity_period": "26112513000000X"}, S.ESME_RINVEXPIRY),
    ("validity in the past", {"validity_period": "261125110000000+"}, S.ESME_RINVEXPIRY),
    ("scheduled after expiry", {"schedule_delivery_time": "000002000000000R",
                                    "validity_period": "000001000000000R"}, S.ESME_RINVSCHED),
    ("unsupported data_coding 0x05", {"data_coding": 5}, S.ESME_RUNSDATACODING),
    ("unsupported data_coding 0x18", {"data_coding": 0x18}, S.ESME_RUNSDATACODING),
    ("GSM byte above 0x7F", {"short_message": b"caf\xe9"}, S.ESME_RINVGSM7CODING),
    ("GSM bad escape", {"short_message": b"a\x1b\x41"}, S.ESME_RINVGSM7CODING),
    ("GSM dangling escape, no UDH", {"short_message": b"abc\x1b"}, S.ESME_RINVGSM7CODING),
    ("UCS-2 odd length", {"data_coding": 8, "short_message": b"\x00h\x00"}, S.ESME_RINVMSGLEN),
    ("payload and short_message", {"tlvs": [(Tag.MESSAGE_PAYLOAD, b"x")]},
     S.ESME_ROPTPARNOTALLWD),
    ("too many segments", {"short_message": b"", "tlvs": [(Tag.MESSAGE_PAYLOAD, b"a" * 1500)]},
     S.ESME_RINVMSGLEN),
    ("UDH overruns", {"esm_class": 0x40, "short_message": b"\x09\x00\x03\x01"}, S.ESME_RINVMSGLEN),
]


@pytest.mark.parametrize("fields,status", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_strict_refusal_status(fields, status):
    with pytest.raises(SubmitRejected) as err:
        _check(**fields)
    assert err.value.status == status


# Lenient addressing (the default): what clients send with their default settings.
LENIENT = [
    ("TON 0 NPI 0 alphanumeric", {"source_addr_ton": 0, "source_addr_npi": 0}, ("ovh123", 5, 0)),
    ("TON 1 NPI 1 alphanumeric", {"source_addr_ton": 1, "source_addr_npi": 1}, ("ovh123", 5, 0)),
    ("Kannel numeric shortcode", {"source_addr_ton": 2, "source_addr_npi": 1,
                                  "source_addr": "12345"}, ("12345", 3, 1)),
    ("TON 0 international with +", {"source_addr_ton": 0, "source_addr": "+33601020304"},
     ("33601020304", 1, 1)),
    ("special characters the operator enabled", {"source_addr_ton": 5, "source_addr": "Shop!"},
     ("Shop!", 5, 0)),
]


@pytest.mark.parametrize("fields,source", [c[1:] for c in LENIENT], ids=[c[0] for c in LENIENT])
def test_lenient_takes_an_enabled_sender_and_normalises_its_ton_npi(fields, source):
    checked = _check(strict=False, **fields)
    assert (checked.source.addr, checked.source.ton, checked.source.npi) == source


LENIENT_DESTINATIONS = [
    ({"dest_addr_ton": 0, "dest_addr_npi": 0}, "33601020304"),
    ({"dest_addr_ton": 2, "dest_addr_npi": 1}, "33601020304"),
    ({"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "+33601020304"},
     "33601020304"),
    ({"dest_addr_ton": 0, "dest_addr_npi": 1, "destination_addr": "4477009001"}, "4477009001"),
]


@pytest.mark.parametrize("fields,dest", LENIENT_DESTINATIONS)
def test_lenient_destination_is_taken_as_international(fields, dest):
    checked = _check(strict=False, **fields)
    assert (checked.dest.addr, checked.dest.ton, checked.dest.npi) == (dest, 1, 1)


LENIENT_REFUSALS = [
    ("source TON 4", {"source_addr_ton": 4}, S.ESME_RINVSRCTON),
    ("source NPI 9", {"source_addr_npi": 9}, S.ESME_RINVSRCNPI),
    ("sender not enabled", {"source_addr": "NEWS", "source_addr_ton": 0}, S.ESME_RINVSRCADR),
    ("sender of another case", {"source_addr": "OVH123"}, S.ESME_RINVSRCADR),
    ("destination TON 5", {"dest_addr_ton": 5}, S.ESME_RINVDSTTON),
    ("destination NPI 3", {"dest_addr_npi": 3}, S.ESME_RINVDSTNPI),
    ("destination national with 0", {"dest_addr_ton": 2, "destination_addr": "0601020304"},
     S.ESME_RINVDSTADR),
    ("destination 6 digits", {"dest_addr_ton": 0, "destination_addr": "336010"},
     S.ESME_RINVDSTADR),
]


@pytest.mark.parametrize("fields,status", [c[1:] for c in LENIENT_REFUSALS],
                         ids=[c[0] for c in LENIENT_REFUSALS])
def test_lenient_refusal_status(fields, status):
    with pytest.raises(SubmitRejected) as err:
        _check(strict=False, **fields)
    assert err.value.status == status


ACCEPTED = [
    ("plain GSM", {}, 1),
    ("shortcode", {"source_addr_ton": 3, "source_addr_npi": 1, "source_addr": "38069"}, 1),
    ("international", {"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "33601020304"}, 1),
    ("160 GSM chars", {"short_message": b"a" * 160}, 1),
    ("400 GSM chars in payload", {"short_message": b"",
                                      "tlvs": [(Tag.MESSAGE_PAYLOAD, b"a" * 400)]}, 3),
    ("extension chars count twice", {"short_message": b"", "tlvs": [
        (Tag.MESSAGE_PAYLOAD, b"\x1b\x65" * 80 + b"a")]}, 2),
    ("UCS-2 70 chars", {"data_coding": 8, "short_message": "é".encode("utf-16-be") * 70}, 1),
    ("UCS-2 71 chars", {"data_coding": 8, "short_message": b"",
                            "tlvs": [(Tag.MESSAGE_PAYLOAD, "é".encode("utf-16-be") * 71)]}, 2),
    ("Latin-1", {"data_coding": 3, "short_message": "café".encode("latin-1")}, 1),
    ("binary", {"data_coding": 4, "short_message": bytes(range(140))}, 1),
    ("UDH part", {"esm_class": 0x40, "short_message": b"\x05\x00\x03\x07\x03\x01" + b"a" * 134}, 1),
    ("UDH part with dangling escape (smpplib's splitter)",
     {"esm_class": 0x40, "short_message": b"\x05\x00\x03\x07\x02\x01" + b"a" * 152 + b"\x1b"}, 1),
    ("sar part", {"tlvs": [int_tlv(Tag.SAR_MSG_REF_NUM, 9), int_tlv(Tag.SAR_TOTAL_SEGMENTS, 2),
                            int_tlv(Tag.SAR_SEGMENT_SEQNUM, 1)]}, 1),
    ("relative validity", {"validity_period": "000001000000000R"}, 1),
    ("esm_class ESME delivery ack", {"esm_class": 0x08}, 1),
]


@pytest.mark.parametrize("fields,segments", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_and_segment_count(fields, segments):
    assert _check(**fields).segments == segments


def test_packed_account_checks_packed_bytes():
    from pdu.gsm7 import encode_packed

    assert _check(gsm_packed=True, short_message=encode_packed("hello {world}")).segments == 1


def test_validity_is_capped_and_past_schedule_means_now():
    checked = _check(validity_period="000030000000000R", schedule_delivery_time="261125110000000+")
    assert checked.expires_at == NOW + timedelta(days=7)
    assert checked.schedule_at is None


def test_no_validity_period_means_the_default_validity_from_the_schedule():
    assert _check().expires_at == NOW + timedelta(hours=48)
    checked = _check(schedule_delivery_time="000001000000000R")
    assert checked.expires_at == NOW + timedelta(days=1, hours=48)

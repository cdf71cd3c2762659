"""Optional parameters (TLVs, SMPP 3.4 section 5.3): the tag table, and typed access.

A decoded PDU keeps its TLVs as an ordered list of (tag, raw value) so that unknown
and vendor tags survive a decode/encode round trip byte for byte. Known tags carry
a kind and length rule that `check_tlv` enforces on decode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum, IntEnum

from pdu.status import CommandStatus


class Tag(IntEnum):
    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    # SMPP 5.0 (section 4.8.4.19): the MC's load, 0 idle .. 100 congested.
    CONGESTION_STATE = 0x0428
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383
    # Vendor tags of the modelled provider (0x1400-0x3FFF is the vendor range).
    OUTGOING_ID = 0x1401
    INCOMING_ID = 0x1402


class Kind(Enum):
    INT = "int"  # big-endian unsigned integer of a fixed size
    CSTR = "cstr"  # C-Octet String, NUL included in the length
    OCTETS = "octets"  # opaque octets


@dataclass(frozen=True, slots=True)
class TlvSpec:
    kind: Kind
    min_len: int
    max_len: int


def _int(size: int) -> TlvSpec:
    return TlvSpec(Kind.INT, size, size)


# Length rules from SMPP 3.4 section 5.3.2; max_len -1 means "up to the PDU size".
TLV_SPECS: dict[int, TlvSpec] = {
    Tag.DEST_ADDR_SUBUNIT: _int(1),
    Tag.DEST_NETWORK_TYPE: _int(1),
    Tag.DEST_BEARER_TYPE: _int(1),
    Tag.DEST_TELEMATICS_ID: _int(2),
    Tag.SOURCE_ADDR_SUBUNIT: _int(1),
    Tag.SOURCE_NETWORK_TYPE: _int(1),
    Tag.SOURCE_BEARER_TYPE: _int(1),
    Tag.SOURCE_TELEMATICS_ID: _int(1),
    Tag.QOS_TIME_TO_LIVE: _int(4),
    Tag.PAYLOAD_TYPE: _int(1),
    Tag.ADDITIONAL_STATUS_INFO_TEXT: TlvSpec(Kind.CSTR, 1, 256),
    Tag.RECEIPTED_MESSAGE_ID: TlvSpec(Kind.CSTR, 1, 65),
    Tag.MS_MSG_WAIT_FACILITIES: _int(1),
    Tag.PRIVACY_INDICATOR: _int(1),
    Tag.SOURCE_SUBADDRESS: TlvSpec(Kind.OCTETS, 2, 23),
    Tag.DEST_SUBADDRESS: TlvSpec(Kind.OCTETS, 2, 23),
    Tag.USER_MESSAGE_REFERENCE: _int(2),
    Tag.USER_RESPONSE_CODE: _int(1),
    Tag.SOURCE_PORT: _int(2),
    Tag.DESTINATION_PORT: _int(2),
    Tag.SAR_MSG_REF_NUM: _int(2),
    Tag.LANGUAGE_INDICATOR: _int(1),
    Tag.SAR_TOTAL_SEGMENTS: _int(1),
    Tag.SAR_SEGMENT_SEQNUM: _int(1),
    Tag.SC_INTERFACE_VERSION: _int(1),
    Tag.CALLBACK_NUM_PRES_IND: _int(1),
    Tag.CALLBACK_NUM_ATAG: TlvSpec(Kind.OCTETS, 0, 65),
    Tag.NUMBER_OF_MESSAGES: _int(1),
    Tag.CALLBACK_NUM: TlvSpec(Kind.OCTETS, 4, 19),
    Tag.DPF_RESULT: _int(1),
    Tag.SET_DPF: _int(1),
    Tag.MS_AVAILABILITY_STATUS: _int(1),
    Tag.NETWORK_ERROR_CODE: TlvSpec(Kind.OCTETS, 3, 3),
    Tag.MESSAGE_PAYLOAD: TlvSpec(Kind.OCTETS, 0, -1),
    Tag.DELIVERY_FAILURE_REASON: _int(1),
    Tag.MORE_MESSAGES_TO_SEND: _int(1),
    Tag.MESSAGE_STATE: _int(1),
    Tag.CONGESTION_STATE: _int(1),
    Tag.USSD_SERVICE_OP: _int(1),
    Tag.DISPLAY_TIME: _int(1),
    Tag.SMS_SIGNAL: _int(2),
    Tag.MS_VALIDITY: _int(1),
    Tag.ALERT_ON_MESSAGE_DELIVERY: TlvSpec(Kind.OCTETS, 0, 0),
    Tag.ITS_REPLY_TYPE: _int(1),
    Tag.ITS_SESSION_INFO: TlvSpec(Kind.OCTETS, 2, 2),
    Tag.OUTGOING_ID: TlvSpec(Kind.CSTR, 1, 65),
    Tag.INCOMING_ID: TlvSpec(Kind.CSTR, 1, 65),
}


class TlvError(ValueError):
    """A TLV that breaks its length or value rule; carries the status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_tlv(tag: int, value: bytes) -> None:
    """Raise TlvError when a known tag's value breaks its SMPP 3.4 rule."""
    spec = TLV_SPECS.get(tag)
    if spec is None:
        return
    n = len(value)
    if n < spec.min_len or (spec.max_len >= 0 and n > spec.max_len):
        raise TlvError(
            CommandStatus.ESME_RINVPARLEN,
            f"TLV 0x{tag:04X} has length {n}, allowed {spec.min_len}..{spec.max_len}",
        )
    if spec.kind is Kind.CSTR and value[-1:] != b"\x00":
        raise TlvError(
            CommandStatus.ESME_RINVOPTPARAMVAL, f"TLV 0x{tag:04X} is not NUL-terminated"
        )


def encode_int(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def int_tlv(tag: int, value: int) -> tuple[int, bytes]:
    """A (tag, value) pair for an integer TLV, sized by the tag table."""
    return tag, value.to_bytes(TLV_SPECS[tag].min_len, "big")


def cstr_tlv(tag: int, value: str) -> tuple[int, bytes]:
    return tag, value.encode("latin-1") + b"\x00"


def as_int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def as_cstr(value: bytes) -> str:
    return value.rstrip(b"\x00").decode("latin-1")


_TL = struct.Struct(">HH")


def encode_tlvs(tlvs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_TL.pack(tag, len(value)) + value for tag, value in tlvs)


def decode_tlvs(data: bytes | memoryview, offset: int, end: int) -> list[tuple[int, bytes]]:
    """Decode the optional part from offset to end; raise TlvError on a bad stream."""
    out: list[tuple[int, bytes]] = []
    while offset < end:
        if end - offset < 4:
            raise TlvError(
                CommandStatus.ESME_RINVOPTPARSTREAM, "truncated TLV header in optional part"
            )
        tag, length = _TL.unpack_from(data, offset)
        offset += 4
        if offset + length > end:
            raise TlvError(
                CommandStatus.ESME_RINVOPTPARSTREAM,
                f"TLV 0x{tag:04X} claims {length} octets, {end - offset} remain",
            )
        value = bytes(data[offset : offset + length])
        check_tlv(tag, value)
        out.append((tag, value))
        offset += length
    return out

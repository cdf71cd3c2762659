"""SMPP 3.4 PDUs as dataclasses, and their encoding and decoding.

Every operation of the specification has a class here. Mandatory fields are declared
once, as dataclass fields whose metadata says how they travel on the wire (C-Octet
string with its maximum size, 1- or 4-octet integer, sm_length + short_message, the
submit_multi lists) and which command_status answers a bad value. `decode()` turns
one frame into a PDU or raises `PduError` carrying that status; `encode()` is its
inverse. TLVs stay an ordered list of (tag, raw value), so unknown ones round-trip.
Longer than our usual 500 lines because it declares all 27 PDUs of the specification,
and the one encoder and decoder that read those declarations belong beside them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar

from pdu.fields import INTERFACE_VERSION_34
from pdu.status import CommandStatus
from pdu.tlv import TlvError, decode_tlvs, encode_tlvs

HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
RESPONSE_BIT = 0x80000000
MAX_SHORT_MESSAGE = 254


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class PduError(ValueError):
    """A frame that cannot be decoded; `status` is what the spec says to answer."""

    def __init__(
        self, status: int, message: str, *, command_id: int = 0, sequence_number: int = 0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number


# --- field kinds ------------------------------------------------------------------

_CSTR, _U8, _U32, _SM, _DESTS, _UNSUCCESS = range(6)


def cstr(max_size: int, status: int = CommandStatus.ESME_RINVCMDLEN) -> Any:
    """A C-Octet String of at most max_size octets including the NUL."""
    return field(default="", metadata={"kind": _CSTR, "max": max_size, "status": status})


def u8(status: int = CommandStatus.ESME_RINVCMDLEN, default: int = 0) -> Any:
    return field(default=default, metadata={"kind": _U8, "status": status})


def u32(status: int = CommandStatus.ESME_RINVCMDLEN) -> Any:
    return field(default=0, metadata={"kind": _U32, "status": status})


def short_message() -> Any:
    return field(default=b"", metadata={"kind": _SM, "status": CommandStatus.ESME_RINVMSGLEN})


@dataclass(slots=True)
class SmeDest:
    """A submit_multi destination with dest_flag 1 (an SME address)."""

    ton: int = 0
    npi: int = 0
    addr: str = ""


@dataclass(slots=True)
class DistributionList:
    """A submit_multi destination with dest_flag 2 (a distribution list name)."""

    name: str = ""


@dataclass(slots=True)
class UnsuccessSme:
    """One entry of submit_multi_resp's unsuccess_sme list."""

    ton: int = 0
    npi: int = 0
    addr: str = ""
    error_status_code: int = 0


# --- PDU classes ------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Header fields shared by every PDU, and the optional part."""

    command_id: ClassVar[int] = 0
    FIELDS: ClassVar[tuple[tuple[str, int, int, int], ...]] = ()

    sequence_number: int = 0
    command_status: int = 0
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def get_tlv(self, tag: int) -> bytes | None:
        for t, value in self.tlvs:
            if t == tag:
                return value
        return None

    def set_tlv(self, tag: int, value: bytes) -> None:
        for i, (t, _) in enumerate(self.tlvs):
            if t == tag:
                self.tlvs[i] = (tag, value)
                return
        self.tlvs.append((tag, value))

    @property
    def name(self) -> str:
        return CommandId(self.command_id).name.lower()


PDU_CLASSES: dict[int, type[Pdu]] = {}


def _register(command_id: int):
    def wrap(cls: type[Pdu]) -> type[Pdu]:
        cls.command_id = command_id
        base = {f.name for f in fields(Pdu)}
        cls.FIELDS = tuple(
            (f.name, f.metadata["kind"], f.metadata.get("max", 0), f.metadata["status"])
            for f in fields(cls)
            if f.name not in base
        )
        PDU_CLASSES[command_id] = cls
        return cls

    return wrap


S = CommandStatus


@dataclass(slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = cstr(16, S.ESME_RINVSYSID)
    password: str = cstr(9, S.ESME_RINVPASWD)
    system_type: str = cstr(13, S.ESME_RINVSYSTYP)
    interface_version: int = u8(default=INTERFACE_VERSION_34)
    addr_ton: int = u8()
    addr_npi: int = u8()
    address_range: str = cstr(41)


@_register(CommandId.BIND_TRANSMITTER)
@dataclass(slots=True, kw_only=True)
class BindTransmitter(_Bind):
    pass


@_register(CommandId.BIND_RECEIVER)
@dataclass(slots=True, kw_only=True)
class BindReceiver(_Bind):
    pass


@_register(CommandId.BIND_TRANSCEIVER)
@dataclass(slots=True, kw_only=True)
class BindTransceiver(_Bind):
    pass


@dataclass(slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = cstr(16, S.ESME_RINVSYSID)


@_register(CommandId.BIND_TRANSMITTER_RESP)
@dataclass(slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    pass


@_register(CommandId.BIND_RECEIVER_RESP)
@dataclass(slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    pass


@_register(CommandId.BIND_TRANSCEIVER_RESP)
@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    pass


@_register(CommandId.OUTBIND)
@dataclass(slots=True, kw_only=True)
class Outbind(Pdu):
    system_id: str = cstr(16, S.ESME_RINVSYSID)
    password: str = cstr(9, S.ESME_RINVPASWD)


@_register(CommandId.UNBIND)
@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    pass


@_register(CommandId.UNBIND_RESP)
@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    pass


@_register(CommandId.ENQUIRE_LINK)
@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    pass


@_register(CommandId.ENQUIRE_LINK_RESP)
@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    pass


@_register(CommandId.GENERIC_NACK)
@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    pass


@dataclass(slots=True, kw_only=True)
class _ShortMessagePdu(Pdu):
    """submit_sm and deliver_sm share one body layout (SMPP 3.4 4.4.1 and 4.6.1)."""

    service_type: str = cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(21, S.ESME_RINVSRCADR)
    dest_addr_ton: int = u8(S.ESME_RINVDSTTON)
    dest_addr_npi: int = u8(S.ESME_RINVDSTNPI)
    destination_addr: str = cstr(21, S.ESME_RINVDSTADR)
    esm_class: int = u8(S.ESME_RINVESMCLASS)
    protocol_id: int = u8()
    priority_flag: int = u8(S.ESME_RINVPRTFLG)
    schedule_delivery_time: str = cstr(17, S.ESME_RINVSCHED)
    validity_period: str = cstr(17, S.ESME_RINVEXPIRY)
    registered_delivery: int = u8(S.ESME_RINVREGDLVFLG)
    replace_if_present_flag: int = u8(S.ESME_RINVREPFLAG)
    data_coding: int = u8()
    sm_default_msg_id: int = u8(S.ESME_RINVDFTMSGID)
    short_message: bytes = short_message()


@_register(CommandId.SUBMIT_SM)
@dataclass(slots=True, kw_only=True)
class SubmitSm(_ShortMessagePdu):
    pass


@_register(CommandId.DELIVER_SM)
@dataclass(slots=True, kw_only=True)
class DeliverSm(_ShortMessagePdu):
    pass


@_register(CommandId.SUBMIT_SM_RESP)
@dataclass(slots=True, kw_only=True)
class SubmitSmResp(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)


@_register(CommandId.DELIVER_SM_RESP)
@dataclass(slots=True, kw_only=True)
class DeliverSmResp(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)


@_register(CommandId.DATA_SM)
@dataclass(slots=True, kw_only=True)
class DataSm(Pdu):
    service_type: str = cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(65, S.ESME_RINVSRCADR)
    dest_addr_ton: int = u8(S.ESME_RINVDSTTON)
    dest_addr_npi: int = u8(S.ESME_RINVDSTNPI)
    destination_addr: str = cstr(65, S.ESME_RINVDSTADR)
    esm_class: int = u8(S.ESME_RINVESMCLASS)
    registered_delivery: int = u8(S.ESME_RINVREGDLVFLG)
    data_coding: int = u8()


@_register(CommandId.DATA_SM_RESP)
@dataclass(slots=True, kw_only=True)
class DataSmResp(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)


@_register(CommandId.QUERY_SM)
@dataclass(slots=True, kw_only=True)
class QuerySm(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(21, S.ESME_RINVSRCADR)


@_register(CommandId.QUERY_SM_RESP)
@dataclass(slots=True, kw_only=True)
class QuerySmResp(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)
    final_date: str = cstr(17)
    message_state: int = u8()
    error_code: int = u8()


@_register(CommandId.CANCEL_SM)
@dataclass(slots=True, kw_only=True)
class CancelSm(Pdu):
    service_type: str = cstr(6, S.ESME_RINVSERTYP)
    message_id: str = cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(21, S.ESME_RINVSRCADR)
    dest_addr_ton: int = u8(S.ESME_RINVDSTTON)
    dest_addr_npi: int = u8(S.ESME_RINVDSTNPI)
    destination_addr: str = cstr(21, S.ESME_RINVDSTADR)


@_register(CommandId.CANCEL_SM_RESP)
@dataclass(slots=True, kw_only=True)
class CancelSmResp(Pdu):
    pass


@_register(CommandId.REPLACE_SM)
@dataclass(slots=True, kw_only=True)
class ReplaceSm(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(21, S.ESME_RINVSRCADR)
    schedule_delivery_time: str = cstr(17, S.ESME_RINVSCHED)
    validity_period: str = cstr(17, S.ESME_RINVEXPIRY)
    registered_delivery: int = u8(S.ESME_RINVREGDLVFLG)
    sm_default_msg_id: int = u8(S.ESME_RINVDFTMSGID)
    short_message: bytes = short_message()


@_register(CommandId.REPLACE_SM_RESP)
@dataclass(slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    pass


@_register(CommandId.SUBMIT_MULTI)
@dataclass(slots=True, kw_only=True)
class SubmitMulti(Pdu):
    service_type: str = cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(21, S.ESME_RINVSRCADR)
    dest_addresses: list[SmeDest | DistributionList] = field(
        default_factory=list, metadata={"kind": _DESTS, "status": S.ESME_RINVNUMDESTS}
    )
    esm_class: int = u8(S.ESME_RINVESMCLASS)
    protocol_id: int = u8()
    priority_flag: int = u8(S.ESME_RINVPRTFLG)
    schedule_delivery_time: str = cstr(17, S.ESME_RINVSCHED)
    validity_period: str = cstr(17, S.ESME_RINVEXPIRY)
    registered_delivery: int = u8(S.ESME_RINVREGDLVFLG)
    replace_if_present_flag: int = u8(S.ESME_RINVREPFLAG)
    data_coding: int = u8()
    sm_default_msg_id: int = u8(S.ESME_RINVDFTMSGID)
    short_message: bytes = short_message()


@_register(CommandId.SUBMIT_MULTI_RESP)
@dataclass(slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    message_id: str = cstr(65, S.ESME_RINVMSGID)
    unsuccess_smes: list[UnsuccessSme] = field(
        default_factory=list, metadata={"kind": _UNSUCCESS, "status": S.ESME_RINVCMDLEN}
    )


@_register(CommandId.ALERT_NOTIFICATION)
@dataclass(slots=True, kw_only=True)
class AlertNotification(Pdu):
    source_addr_ton: int = u8(S.ESME_RINVSRCTON)
    source_addr_npi: int = u8(S.ESME_RINVSRCNPI)
    source_addr: str = cstr(65, S.ESME_RINVSRCADR)
    esme_addr_ton: int = u8()
    esme_addr_npi: int = u8()
    esme_addr: str = cstr(65)


# Responses whose body the spec lets an SMSC omit when command_status is not 0.
BODY_OPTIONAL_ON_ERROR = frozenset(
    {
        CommandId.BIND_TRANSMITTER_RESP,
        CommandId.BIND_RECEIVER_RESP,
        CommandId.BIND_TRANSCEIVER_RESP,
        CommandId.SUBMIT_SM_RESP,
        CommandId.DATA_SM_RESP,
        CommandId.SUBMIT_MULTI_RESP,
        CommandId.QUERY_SM_RESP,
        CommandId.DELIVER_SM_RESP,
    }
)

RESPONSE_CLASS: dict[int, type[Pdu]] = {
    cid & ~RESPONSE_BIT: cls
    for cid, cls in PDU_CLASSES.items()
    if cid & RESPONSE_BIT and cid != CommandId.GENERIC_NACK
}


ADDRESS_FIELDS = (
    "source_addr_ton", "source_addr_npi", "source_addr",
    "dest_addr_ton", "dest_addr_npi", "destination_addr",
)


def addresses(pdu: Pdu) -> dict[str, Any]:
    """The source and destination of a message PDU, to build another from it."""
    return {name: getattr(pdu, name) for name in ADDRESS_FIELDS}


def response_for(request: Pdu, status: int = 0, **body: Any) -> Pdu:
    """The response PDU matching a request, with the same sequence_number."""
    cls = RESPONSE_CLASS.get(request.command_id)
    if cls is None:
        return GenericNack(sequence_number=request.sequence_number, command_status=status)
    return cls(sequence_number=request.sequence_number, command_status=status, **body)


# --- encoding ---------------------------------------------------------------------


def _encode_cstr(value: str, max_size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= max_size or b"\x00" in raw:
        raise ValueError(f"{name}: {len(raw)} octets do not fit in C-Octet String({max_size})")
    return raw + b"\x00"


def encode_body(pdu: Pdu) -> bytes:
    parts: list[bytes] = []
    for name, kind, max_size, _status in pdu.FIELDS:
        value = getattr(pdu, name)
        if kind == _CSTR:
            parts.append(_encode_cstr(value, max_size, name))
        elif kind == _U8:
            parts.append(bytes((value,)))
        elif kind == _U32:
            parts.append(value.to_bytes(4, "big"))
        elif kind == _SM:
            if len(value) > MAX_SHORT_MESSAGE:
                raise ValueError(f"short_message: {len(value)} octets, at most 254 allowed")
            parts.append(bytes((len(value),)))
            parts.append(bytes(value))
        elif kind == _DESTS:
            parts.append(bytes((len(value),)))
            for dest in value:
                if isinstance(dest, SmeDest):
                    parts.append(bytes((1, dest.ton, dest.npi)))
                    parts.append(_encode_cstr(dest.addr, 21, "destination_addr"))
                else:
                    parts.append(b"\x02" + _encode_cstr(dest.name, 21, "dl_name"))
        elif kind == _UNSUCCESS:
            parts.append(bytes((len(value),)))
            for sme in value:
                parts.append(bytes((sme.ton, sme.npi)))
                parts.append(_encode_cstr(sme.addr, 21, "destination_addr"))
                parts.append(sme.error_status_code.to_bytes(4, "big"))
    if pdu.tlvs:
        parts.append(encode_tlvs(pdu.tlvs))
    return b"".join(parts)


def encode(pdu: Pdu) -> bytes:
    """The full wire form of a PDU: header and body."""
    body = encode_body(pdu)
    return (
        HEADER.pack(HEADER_SIZE + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number)
        + body
    )


# --- decoding ---------------------------------------------------------------------


def _read_cstr(data: bytes, offset: int, end: int, max_size: int) -> tuple[str, int] | None:
    nul = data.find(b"\x00", offset, min(end, offset + max_size))
    if nul < 0:
        return None
    return data[offset:nul].decode("latin-1"), nul + 1


def decode(frame: bytes) -> Pdu:
    """Decode one whole frame (header included) into its PDU class.

    Raises PduError with the command_status the spec gives for what is wrong.
    """
    if len(frame) < HEADER_SIZE:
        raise PduError(S.ESME_RINVCMDLEN, f"frame of {len(frame)} octets is shorter than a header")
    length, command_id, status, seq = HEADER.unpack_from(frame, 0)
    if length != len(frame):
        raise PduError(
            S.ESME_RINVCMDLEN,
            f"command_length {length} does not match frame size {len(frame)}",
            command_id=command_id,
            sequence_number=seq,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise PduError(
            S.ESME_RINVCMDID,
            f"unknown command_id 0x{command_id:08X}",
            command_id=command_id,
            sequence_number=seq,
        )
    data = bytes(frame)
    values: dict[str, Any] = {"sequence_number": seq, "command_status": status}
    offset, end = HEADER_SIZE, length
    if offset == end and command_id in BODY_OPTIONAL_ON_ERROR:
        return cls(**values)
    for name, kind, max_size, field_status in cls.FIELDS:
        if kind == _CSTR:
            got = _read_cstr(data, offset, end, max_size)
            if got is None:
                raise PduError(
                    field_status,
                    f"{name}: no NUL within {max_size} octets",
                    command_id=command_id,
                    sequence_number=seq,
                )
            values[name], offset = got
        elif kind == _U8:
            if offset >= end:
                raise _truncated(name, command_id, seq)
            values[name] = data[offset]
            offset += 1
        elif kind == _U32:
            if offset + 4 > end:
                raise _truncated(name, command_id, seq)
            values[name] = int.from_bytes(data[offset : offset + 4], "big")
            offset += 4
        elif kind == _SM:
            if offset >= end:
                raise _truncated("sm_length", command_id, seq)
            sm_length = data[offset]
            offset += 1
            if offset + sm_length > end:
                raise PduError(
                    S.ESME_RINVMSGLEN,
                    f"sm_length {sm_length} overruns the PDU ({end - offset} octets left)",
                    command_id=command_id,
                    sequence_number=seq,
                )
            values[name] = data[offset : offset + sm_length]
            offset += sm_length
        elif kind == _DESTS:
            values[name], offset = _decode_dests(data, offset, end, command_id, seq)
        elif kind == _UNSUCCESS:
            values[name], offset = _decode_unsuccess(data, offset, end, command_id, seq)
    if offset < end:
        try:
            values["tlvs"] = decode_tlvs(data, offset, end)
        except TlvError as exc:
            raise PduError(exc.status, str(exc), command_id=command_id, sequence_number=seq)
    return cls(**values)


def _truncated(name: str, command_id: int, seq: int) -> PduError:
    return PduError(
        S.ESME_RINVCMDLEN,
        f"PDU ends before mandatory field {name}",
        command_id=command_id,
        sequence_number=seq,
    )


def _decode_dests(
    data: bytes, offset: int, end: int, command_id: int, seq: int
) -> tuple[list[SmeDest | DistributionList], int]:
    if offset >= end:
        raise _truncated("number_of_dests", command_id, seq)
    count = data[offset]
    offset += 1
    # SMPP 3.4 says at most 254, 5.0 at most 255 (the whole octet): take both.
    if count == 0:
        raise PduError(
            S.ESME_RINVNUMDESTS,
            "number_of_dests 0: a submit_multi needs at least one destination",
            command_id=command_id,
            sequence_number=seq,
        )
    dests: list[SmeDest | DistributionList] = []
    for _ in range(count):
        if offset >= end:
            raise _truncated("dest_flag", command_id, seq)
        flag = data[offset]
        offset += 1
        if flag == 1:
            if offset + 2 > end:
                raise _truncated("dest_addr_ton", command_id, seq)
            ton, npi = data[offset], data[offset + 1]
            got = _read_cstr(data, offset + 2, end, 21)
            if got is None:
                raise PduError(
                    S.ESME_RINVDSTADR, "destination_addr: no NUL within 21 octets",
                    command_id=command_id, sequence_number=seq,
                )
            addr, offset = got
            dests.append(SmeDest(ton, npi, addr))
        elif flag == 2:
            got = _read_cstr(data, offset, end, 21)
            if got is None:
                raise PduError(
                    S.ESME_RINVDLNAME, "dl_name: no NUL within 21 octets",
                    command_id=command_id, sequence_number=seq,
                )
            name, offset = got
            dests.append(DistributionList(name))
        else:
            raise PduError(
                S.ESME_RINVDESTFLAG,
                f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)",
                command_id=command_id,
                sequence_number=seq,
            )
    return dests, offset


def _decode_unsuccess(
    data: bytes, offset: int, end: int, command_id: int, seq: int
) -> tuple[list[UnsuccessSme], int]:
    if offset >= end:
        raise _truncated("no_unsuccess", command_id, seq)
    count = data[offset]
    offset += 1
    out: list[UnsuccessSme] = []
    for _ in range(count):
        if offset + 2 > end:
            raise _truncated("dest_addr_ton", command_id, seq)
        ton, npi = data[offset], data[offset + 1]
        got = _read_cstr(data, offset + 2, end, 21)
        if got is None or got[1] + 4 > end:
            raise _truncated("unsuccess_sme", command_id, seq)
        addr, offset = got
        code = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        out.append(UnsuccessSme(ton, npi, addr, code))
    return out, offset


def peek_header(frame: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a frame."""
    return HEADER.unpack_from(frame, 0)

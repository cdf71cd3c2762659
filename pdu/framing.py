"""Cutting a byte stream into SMPP frames (the command_length prefix).

`Framer` takes whatever the socket delivered, in any split, and yields whole frames;
a command_length below 16 or above the configured maximum is a framing error after
which the stream cannot be trusted, so the connection must close.
"""

from __future__ import annotations

from pdu.codec import HEADER_SIZE
from pdu.status import CommandStatus

DEFAULT_MAX_PDU_SIZE = 65536


class FramingError(ValueError):
    """The stream is not SMPP any more; answer generic_nack and close."""

    status = CommandStatus.ESME_RINVCMDLEN

    def __init__(self, message: str, sequence_number: int = 0) -> None:
        super().__init__(message)
        self.sequence_number = sequence_number


class Framer:
    """Accumulate bytes; hand back whole frames in arrival order."""

    __slots__ = ("_buf", "max_pdu_size")

    def __init__(self, max_pdu_size: int = DEFAULT_MAX_PDU_SIZE) -> None:
        self._buf = bytearray()
        self.max_pdu_size = max_pdu_size

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def frames(self) -> list[bytes]:
        """All complete frames now buffered; raises FramingError on a bad length.

        Frames before the bad one are still returned by an earlier call; callers
        that want them should call `frames()` after each `receive_data()`.
        """
        buf = self._buf
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while size - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < HEADER_SIZE or length > self.max_pdu_size:
                seq = 0
                if size - pos >= 16:
                    seq = int.from_bytes(buf[pos + 12 : pos + 16], "big")
                del buf[:pos]
                if out:
                    # Deliver the good frames first; the error surfaces on the next call.
                    return out
                raise FramingError(
                    f"command_length {length} outside {HEADER_SIZE}..{self.max_pdu_size}", seq
                )
            if size - pos < length:
                break
            out.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return out

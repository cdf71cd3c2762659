"""Our message ids: 64-bit, time-ordered, unique across nodes (snowflake layout).

41 bits of milliseconds since 2026-01-01, 10 bits of node id, 12 bits of sequence.
The SMPP message_id is the decimal text of that number: digits only, which every
client tested (Kannel included) matches in receipts without any conversion.
"""

from __future__ import annotations

import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODE_BITS = 10
SEQ_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
_SEQ_MASK = (1 << SEQ_BITS) - 1


class MessageIdGenerator:
    """Strictly increasing ids for one node; never repeats, even if the clock steps back."""

    __slots__ = ("_clock", "_last_ms", "_node", "_seq")

    def __init__(self, node_id: int = 0, clock=time.time) -> None:
        if not 0 <= node_id <= MAX_NODE:
            raise ValueError(f"node_id must be 0..{MAX_NODE}, got {node_id}")
        self._node = node_id
        self._last_ms = 0
        self._seq = 0
        self._clock = clock

    def next_id(self) -> int:
        ms = int(self._clock() * 1000) - EPOCH_MS
        if ms <= self._last_ms:
            # Same millisecond, or the clock went back: keep counting from the last one.
            self._seq = (self._seq + 1) & _SEQ_MASK
            if self._seq == 0:
                self._last_ms += 1
            ms = self._last_ms
        else:
            self._seq = 0
            self._last_ms = ms
        return (ms << (NODE_BITS + SEQ_BITS)) | (self._node << SEQ_BITS) | self._seq

    def floor_at(self, message_id: int) -> None:
        """Never hand out an id at or below one already stored (restart safety)."""
        ms = message_id >> (NODE_BITS + SEQ_BITS)
        if ms >= self._last_ms:
            self._last_ms = ms
            self._seq = message_id & _SEQ_MASK

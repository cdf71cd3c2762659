"""The built-in SMSC simulator: an upstream that needs no network.

It accepts every message handed to it and, after a configurable delay, reports the
outcome (for now always DELIVERED) as a receipt, as a real upstream SMSC would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from pdu.receipt import MESSAGE_STATE_DELIVERED
from store.batcher import NewMessage

OutcomeCallback = Callable[[NewMessage, int, int, datetime], None]


class SimulatorUpstream:
    name = "simulator"

    def __init__(self, delay_s: float, on_outcome: OutcomeCallback) -> None:
        self._delay = delay_s
        self._on_outcome = on_outcome
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.TimerHandle] = set()

    def send(self, msg: NewMessage) -> None:
        handle: asyncio.TimerHandle

        def done() -> None:
            self._pending.discard(handle)
            self._on_outcome(msg, MESSAGE_STATE_DELIVERED, 0, datetime.now(UTC))

        handle = self._loop.call_later(self._delay, done)
        self._pending.add(handle)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def stop(self) -> None:
        # Messages not yet reported stay ACCEPTED in the store and are sent again
        # after a restart, so dropping the timers loses nothing.
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()

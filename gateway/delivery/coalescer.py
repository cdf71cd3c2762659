"""Group many small store writes into one transaction, off the hot path.

Receipts, delivery acknowledgements and similar bookkeeping arrive one at a time;
`Coalescer` gathers them and calls one async flush per batch, bounded in size and in
delay. A failed flush is retried with the same items, so a store outage delays the
bookkeeping but never drops it while the process lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Coalescer(Generic[T]):
    def __init__(
        self,
        name: str,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        max_batch: int = 1000,
        max_delay: float = 0.005,
        retry_delay: float = 1.0,
    ) -> None:
        self.name = name
        self._flush = flush
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._retry_delay = retry_delay
        self._items: list[T] = []
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, item: T) -> None:
        self._items.append(item)
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def __len__(self) -> int:
        return len(self._items)

    async def _run(self) -> None:
        try:
            while self._items:
                if len(self._items) < self._max_batch:
                    await asyncio.sleep(self._max_delay)
                batch = self._items[: self._max_batch]
                del self._items[: self._max_batch]
                try:
                    await self._flush(batch)
                except Exception:
                    log.exception("%s: flush of %d items failed; retrying", self.name, len(batch))
                    self._items[:0] = batch
                    await asyncio.sleep(self._retry_delay)
        finally:
            self._task = None
            if self._items:
                self._task = asyncio.get_running_loop().create_task(self._run())
            else:
                self._idle.set()

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything added so far is flushed; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

"""The history retention job: purge messages and finished deliveries past their age.

`run_retention` does one pass; `RetentionJob` repeats it every `retention_interval`
seconds until stopped. The gateway starts it with `RetentionJob(engine, settings)
.start()` and stops it with `await job.stop()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from store.history import HistoryStore

log = logging.getLogger(__name__)


async def run_retention(
    engine: AsyncEngine, settings: Settings, now: datetime | None = None
) -> dict[str, int]:
    """Purge what is older than `history_retention_days`; returns rows purged by table."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.history_retention_days)
    purged = await HistoryStore(engine).purge(cutoff)
    if any(purged.values()):
        log.info(
            "retention: purged %d messages and %d finished deliveries older than %s",
            purged["messages"], purged["deliveries"], cutoff.isoformat(timespec="seconds"),
        )
    return purged


class RetentionJob:
    """run_retention() every `settings.retention_interval` seconds, first pass at once."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # completed passes, for tests and metrics

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="history-retention"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        while True:
            try:
                await run_retention(self._engine, self._settings, self._clock())
            except Exception:  # a failed pass is retried at the next interval
                log.exception("retention pass failed")
            self.passes += 1
            await asyncio.sleep(self._settings.retention_interval)

"""alert_notification requests: absent subscribers an account wants to hear about.

A row is added (by store.writer, in the commit of the outcome) when a message whose
submit asked for set_dpf failed because the subscriber was absent. When the upstream reports that
subscriber reachable again the row is marked alerted; it is deleted once a bound
receiver of the account got the alert_notification (SMPP 3.4 section 4.12), or when it
expires unanswered.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.tables import alert_requests


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def subscriber_back(self, ms_addr: str, now: datetime) -> list[dict[str, Any]]:
        """The upstream says `ms_addr` is reachable: mark and return its live requests."""
        async with self._writer.begin() as conn:
            rows = [
                dict(r._mapping)
                for r in await conn.execute(
                    sa.select(alert_requests).where(
                        alert_requests.c.ms_addr == ms_addr, alert_requests.c.expires_at > now
                    )
                )
            ]
            if rows:
                await conn.execute(
                    alert_requests.update()
                    .where(alert_requests.c.id.in_([r["id"] for r in rows]))
                    .values(alerted_at=now)
                )
        return rows

    async def alerted(self, account_id: int, now: datetime) -> list[dict[str, Any]]:
        """Alerts of an account still waiting for a receiver (sent at its next bind)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(alert_requests).where(
                    alert_requests.c.account_id == account_id,
                    alert_requests.c.alerted_at.is_not(None),
                    alert_requests.c.expires_at > now,
                )
            )
            return [dict(r._mapping) for r in rows]

    async def sent(self, ids: Iterable[int]) -> None:
        id_list = list(ids)
        if not id_list:
            return
        async with self._writer.begin() as conn:
            await conn.execute(alert_requests.delete().where(alert_requests.c.id.in_(id_list)))

    async def purge_expired(self, now: datetime) -> int:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                alert_requests.delete().where(alert_requests.c.expires_at <= now)
            )
        return int(result.rowcount)

    async def pending(self, account_id: int | None = None) -> list[dict[str, Any]]:
        """Every live request (for the admin and tests)."""
        stmt = sa.select(alert_requests).order_by(alert_requests.c.id)
        if account_id is not None:
            stmt = stmt.where(alert_requests.c.account_id == account_id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(stmt)]

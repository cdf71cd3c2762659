"""The STOP list: destinations an account must not message any more.

`StopListStore` is the repository (one short transaction per method); the module
functions read the list inside a caller's open transaction, for account reads.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.account_keys import account_id_of
from store.bounds import check_text
from store.engine import writer
from store.errors import StopEntryNotFound
from store.tables import stop_list, utcnow


async def destinations_of(conn: AsyncConnection, account_id: int) -> list[str]:
    rows = await conn.execute(
        sa.select(stop_list.c.destination)
        .where(stop_list.c.account_id == account_id)
        .order_by(stop_list.c.destination)
    )
    return list(rows.scalars().all())


async def destinations_by_account(conn: AsyncConnection) -> dict[int, list[str]]:
    """Every account's STOP-listed destinations, by account id, in order."""
    rows = await conn.execute(
        sa.select(stop_list.c.account_id, stop_list.c.destination).order_by(
            stop_list.c.account_id, stop_list.c.destination
        )
    )
    by_account: dict[int, list[str]] = {}
    for account_id, destination in rows:
        by_account.setdefault(account_id, []).append(destination)
    return by_account


def _check_destination(destination: object) -> None:
    # Length only: STOP replies list the source_addr an upstream sent, as it was.
    most = stop_list.c.destination.type.length
    if not isinstance(destination, str) or not 1 <= len(destination) <= most:
        raise ValueError(f"a STOP destination must have 1 to {most} characters")


class StopListStore:
    """Repository of STOP entries, keyed by (system_id, destination)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add(self, system_id: str, destination: str, note: str | None = None) -> bool:
        """STOP-list a destination; False if it already was (adding twice is harmless)."""
        _check_destination(destination)
        check_text(stop_list.c.note, note, "STOP note")
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id)
            exists = (
                await conn.execute(
                    sa.select(stop_list.c.id).where(
                        stop_list.c.account_id == account_id,
                        stop_list.c.destination == destination,
                    )
                )
            ).first()
            if exists:
                return False
            await conn.execute(
                stop_list.insert().values(
                    account_id=account_id, destination=destination, note=note,
                    created_at=utcnow(),
                )
            )
        return True

    async def remove(self, system_id: str, destination: str) -> None:
        _check_destination(destination)
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id)
            result = await conn.execute(
                stop_list.delete().where(
                    stop_list.c.account_id == account_id,
                    stop_list.c.destination == destination,
                )
            )
            if result.rowcount == 0:
                raise StopEntryNotFound(system_id, destination)

    # Last in the class body: the name shadows the builtin `list` below it.
    async def list(self, system_id: str) -> list[dict[str, Any]]:
        """Each entry with its note and when it was added, by destination."""
        async with self._engine.connect() as conn:
            account_id = await account_id_of(conn, system_id)
            rows = await conn.execute(
                sa.select(stop_list.c.destination, stop_list.c.note, stop_list.c.created_at)
                .where(stop_list.c.account_id == account_id)
                .order_by(stop_list.c.destination)
            )
            return [dict(r._mapping) for r in rows]

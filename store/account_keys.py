"""An account's system_id resolved to its row id, inside the caller's transaction.

Every repository keyed by system_id (accounts, allowed IPs, senders, STOP list, rates)
resolves it here, so an unknown account is the same AccountNotFound everywhere.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from store.errors import AccountNotFound
from store.tables import accounts


async def account_id_of(conn: AsyncConnection, system_id: str, *, lock: bool = False) -> int:
    """The id of the account `system_id`; AccountNotFound if there is none.

    `lock` takes a key-share row lock, which serialises concurrent "count then insert"
    on PostgreSQL (SQLite writers are already serialised by BEGIN IMMEDIATE).
    """
    stmt = sa.select(accounts.c.id).where(accounts.c.system_id == system_id)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    account_id = (await conn.execute(stmt)).scalar_one_or_none()
    if account_id is None:
        raise AccountNotFound(system_id)
    return int(account_id)

"""The sender addresses an account may submit from, each with its kind and state.

`SenderStore` is the repository (one short transaction per method). The module
functions work inside a caller's open transaction: account creation inserts its first
senders, and account reads attach them, in the same transaction as the account row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.account_keys import account_id_of
from store.bounds import check_text
from store.engine import writer
from store.errors import DuplicateSender, SenderNotFound
from store.tables import SENDER_KINDS, SENDER_STATES, senders, utcnow

SENDER_COLUMNS = (
    senders.c.address, senders.c.kind, senders.c.state, senders.c.comment,
    senders.c.created_at, senders.c.updated_at,
)


def sender_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A sender's stored fields, checked: address, kind, state (default pending), comment."""
    kind, state = row.get("kind"), row.get("state", "pending")
    if kind not in SENDER_KINDS:
        raise ValueError(f"sender kind must be one of {', '.join(SENDER_KINDS)}, got {kind!r}")
    if state not in SENDER_STATES:
        raise ValueError(f"sender state must be one of {', '.join(SENDER_STATES)}, got {state!r}")
    address = row.get("address")
    if not isinstance(address, str) or not 1 <= len(address) <= senders.c.address.type.length:
        raise ValueError(f"sender address must be 1 to 21 characters, got {address!r}")
    check_text(senders.c.address, address, "sender address")
    comment = check_text(senders.c.comment, row.get("comment"), "sender comment")
    return {"address": address, "kind": kind, "state": state, "comment": comment}


async def insert_senders(
    conn: AsyncConnection, account_id: int, rows: Iterable[Mapping[str, Any]], now: datetime
) -> None:
    """Insert rows already checked by sender_row(); a duplicate raises IntegrityError."""
    values = [dict(row, account_id=account_id, created_at=now, updated_at=now) for row in rows]
    if values:
        await conn.execute(senders.insert(), values)


async def senders_of(conn: AsyncConnection, account_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(*SENDER_COLUMNS)
        .where(senders.c.account_id == account_id)
        .order_by(senders.c.address)
    )
    return [dict(r._mapping) for r in rows]


async def senders_by_account(conn: AsyncConnection) -> dict[int, list[dict[str, Any]]]:
    """Every account's senders, by account id, ordered by address."""
    rows = await conn.execute(
        sa.select(senders.c.account_id, *SENDER_COLUMNS).order_by(
            senders.c.account_id, senders.c.address
        )
    )
    by_account: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        entry = dict(row._mapping)
        by_account.setdefault(entry.pop("account_id"), []).append(entry)
    return by_account


class SenderStore:
    """Repository of senders, keyed by (system_id, address)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add(
        self,
        system_id: str,
        address: str,
        kind: str,
        *,
        state: str = "pending",
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Add a sender (validated by auth.senders beforehand); returns its row."""
        row = sender_row({"address": address, "kind": kind, "state": state, "comment": comment})
        try:
            async with self._writer.begin() as conn:
                account_id = await account_id_of(conn, system_id)
                await insert_senders(conn, account_id, [row], utcnow())
        except sa.exc.IntegrityError as exc:
            raise DuplicateSender(system_id, row["address"]) from exc
        return await self.get(system_id, row["address"])

    async def get(self, system_id: str, address: str) -> dict[str, Any]:
        check_text(senders.c.address, address, "sender address")
        async with self._engine.connect() as conn:
            account_id = await account_id_of(conn, system_id)
            found = (
                await conn.execute(
                    sa.select(*SENDER_COLUMNS).where(
                        senders.c.account_id == account_id, senders.c.address == address
                    )
                )
            ).one_or_none()
        if found is None:
            raise SenderNotFound(system_id, address)
        return dict(found._mapping)

    async def set_state(
        self, system_id: str, address: str, state: str, comment: str | None = None
    ) -> dict[str, Any]:
        """Move a sender to `state`; a comment given replaces the stored one."""
        if state not in SENDER_STATES:
            raise ValueError(f"sender state must be one of {', '.join(SENDER_STATES)}")
        values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
        if comment is not None:
            values["comment"] = check_text(senders.c.comment, comment, "sender comment")
        check_text(senders.c.address, address, "sender address")
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id)
            result = await conn.execute(
                senders.update()
                .where(senders.c.account_id == account_id, senders.c.address == address)
                .values(**values)
            )
            if result.rowcount == 0:
                raise SenderNotFound(system_id, address)
        return await self.get(system_id, address)

    async def remove(self, system_id: str, address: str) -> None:
        check_text(senders.c.address, address, "sender address")
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id)
            result = await conn.execute(
                senders.delete().where(
                    senders.c.account_id == account_id, senders.c.address == address
                )
            )
            if result.rowcount == 0:
                raise SenderNotFound(system_id, address)

    # Last in the class body: the name shadows the builtin `list` below it.
    async def list(self, system_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await senders_of(conn, await account_id_of(conn, system_id))

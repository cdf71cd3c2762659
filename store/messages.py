"""Message history and the queue of deliver_sm (DLR and MO) waiting for a customer bind.

The hot path's writes (new messages, hand-overs, outcomes with their receipts, MOs,
delivery acknowledgements and retries) are store.writer's; this module reads them
back (history, receipts matched to their message, deliveries due) and keeps the few
writes outside that path: the states of split messages' segments and the expiry of
deliveries nobody fetched. Deliveries are encoded deliver_sm bodies the gateway
produced; the store keeps them as opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.tables import deliveries, message_parts, messages


class MessageStore:
    """Repository of message history and pending deliveries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # -- messages -----------------------------------------------------------------

    async def get(self, message_id: int) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(messages).where(messages.c.id == message_id))
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def by_upstream(self, upstream: str, upstream_id: str) -> dict[str, Any] | None:
        """Map an upstream's message id (from its DLR) back to our message."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(messages)
                    .where(messages.c.upstream == upstream, messages.c.upstream_id == upstream_id)
                    .order_by(messages.c.id.desc())
                    .limit(1)
                )
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def by_upstream_many(
        self, upstream: str, upstream_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """by_upstream() for a batch of receipts from one upstream, in one query."""
        wanted = set(upstream_ids)
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(messages)
                .where(messages.c.upstream == upstream, messages.c.upstream_id.in_(wanted))
                .order_by(messages.c.id)
            )
            # Ordered by id: if an upstream ever reuses an id, the newest message wins.
            return {row.upstream_id: dict(row._mapping) for row in rows}

    async def parts_by_upstream_many(
        self, upstream: str, upstream_ids: Iterable[str]
    ) -> dict[str, tuple[int, int, int]]:
        """upstream id -> (message id, part number, parts) for segments the gateway split."""
        wanted = set(upstream_ids)
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(message_parts.c.upstream_id, message_parts.c.message_id,
                          message_parts.c.part_no, message_parts.c.parts)
                .where(message_parts.c.upstream == upstream,
                       message_parts.c.upstream_id.in_(wanted))
            )
            return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}

    async def record_part_states(
        self, updates: Sequence[tuple[int, int, int, int, int, datetime]]
    ) -> dict[int, list[tuple[int, int | None, int | None]]]:
        """Record (message id, part number, parts, state, error, done_at) of segments'
        receipts, and return every part of those messages as (part, state, error).

        Upserts: a receipt may come before the hand-over that records the part's id.
        """
        if not updates:
            return {}
        rows = [
            {"message_id": m, "part_no": p, "parts": n, "state": st, "error_code": err,
             "done_at": at}
            for m, p, n, st, err, at in updates
        ]
        async with self._writer.begin() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(message_parts)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[message_parts.c.message_id, message_parts.c.part_no],
                    set_={"state": stmt.excluded.state, "error_code": stmt.excluded.error_code,
                          "done_at": stmt.excluded.done_at, "parts": stmt.excluded.parts},
                ),
                rows,
            )
            found = await conn.execute(
                sa.select(message_parts.c.message_id, message_parts.c.part_no,
                          message_parts.c.state, message_parts.c.error_code)
                .where(message_parts.c.message_id.in_({r["message_id"] for r in rows}))
                .order_by(message_parts.c.message_id, message_parts.c.part_no)
            )
            parts: dict[int, list[tuple[int, int | None, int | None]]] = {}
            for message_id, part_no, state, error in found:
                parts.setdefault(int(message_id), []).append((int(part_no), state, error))
            return parts

    async def get_many(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        id_list = list(set(ids))
        if not id_list:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(messages).where(messages.c.id.in_(id_list)))
            return {int(row.id): dict(row._mapping) for row in rows}

    async def query(
        self,
        account_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """History in creation order; `since` inclusive, `until` exclusive."""
        stmt = sa.select(messages)
        if account_id is not None:
            stmt = stmt.where(messages.c.account_id == account_id)
        if since is not None:
            stmt = stmt.where(messages.c.created_at >= since)
        if until is not None:
            stmt = stmt.where(messages.c.created_at < until)
        stmt = stmt.order_by(messages.c.created_at, messages.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(stmt)]

    # -- deliveries (deliver_sm waiting for the customer) ---------------------------

    async def due_deliveries(
        self, account_id: int, now: datetime, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Pending, unexpired deliveries of an account whose next attempt is due."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(_due(sa.select(deliveries), account_id, now, limit))
            return [dict(row._mapping) for row in rows]

    async def claim_deliveries(
        self, account_id: int, node: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Take the account's due deliveries for `node` to give to its receiver: held
        (claimed_by, next_attempt_at = now + lease) so that no other node gives them
        too; PostgreSQL skips rows another node is claiming at the same moment. A hold
        ends when the customer answers (delivered, or rescheduled), or at the lease's
        end, when any node may take it."""
        due = _due(sa.select(deliveries.c.id), account_id, now, limit)
        async with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            ids = (await conn.execute(due)).scalars().all()
            if not ids:
                return []
            await conn.execute(
                deliveries.update().where(deliveries.c.id.in_(ids))
                .values(claimed_by=node, next_attempt_at=now + lease))
            rows = await conn.execute(
                sa.select(deliveries).where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.created_at, deliveries.c.id))
            return [dict(row._mapping) for row in rows]

    async def accounts_waiting(self, now: datetime) -> set[int]:
        """Accounts with deliveries due and unexpired (for outbind)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries.c.account_id).distinct().where(
                    deliveries.c.state == "pending",
                    deliveries.c.next_attempt_at <= now,
                    deliveries.c.expires_at > now,
                )
            )
            return {int(r[0]) for r in rows}

    async def waiting_deliveries(self) -> list[tuple[int, str, int]]:
        """(account id, kind, how many) of the deliveries not yet acknowledged, due or
        not (for the metrics gauge); read through the (state, account_id, ...) index."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries.c.account_id, deliveries.c.kind, sa.func.count())
                .where(deliveries.c.state == "pending")
                .group_by(deliveries.c.account_id, deliveries.c.kind)
            )
            return [(int(a), str(k), int(n)) for a, k, n in rows]

    async def expire_deliveries(self, now: datetime) -> int:
        """Give up on pending deliveries past their expiry; returns how many."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                deliveries.update()
                .where(deliveries.c.state == "pending", deliveries.c.expires_at <= now)
                .values(state="expired")
            )
        return int(result.rowcount)


def _due(query: sa.Select[Any], account_id: int, now: datetime, limit: int) -> sa.Select[Any]:
    """`query` over the account's pending, unexpired deliveries due at `now`, the most
    overdue first."""
    return (
        query.where(
            deliveries.c.state == "pending",
            deliveries.c.account_id == account_id,
            deliveries.c.next_attempt_at <= now,
            deliveries.c.expires_at > now,
        )
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )

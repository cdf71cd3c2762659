"""The outbox: accepted MT messages waiting for an upstream to take them.

A message is in the outbox while its row is ACCEPTED. Its scheduling is on the row
(migration 0006): next_attempt_at says when it is due, claimed_by which node holds it
until next_attempt_at (a lease, so a crashed node's claims come back by themselves),
attempts and last_error what the upstreams said. Claims use FOR UPDATE SKIP LOCKED on
PostgreSQL so several nodes never send the same message; SQLite serialises writers,
which gives the same guarantee on one node. The store writer (store.writer) commits
new messages already claimed and does the hand-over and retry bookkeeping of the hot
path; this module keeps the claim query, cancel and replace.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.engine import writer
from store.errors import InsufficientCredit
from store.tables import accounts, ledger, message_parts, messages

# Statuses a message reaches without ever leaving the gateway.
CANCELLED_STATUS = "DELETED"


def _due(now: datetime) -> sa.ColumnElement[bool]:
    # status and next_attempt_at are ix_messages_due; the rest only filters.
    return sa.and_(
        messages.c.status == "ACCEPTED",
        messages.c.next_attempt_at <= now,
        messages.c.direction == "MT",
        sa.or_(messages.c.schedule_at.is_(None), messages.c.schedule_at <= now),
    )


def _not_in_flight(now: datetime) -> sa.ColumnElement[bool]:
    """No live claim: the message is not on its way to an upstream right now."""
    return sa.or_(messages.c.claimed_by.is_(None), messages.c.next_attempt_at <= now)


async def withdraw_waiting(
    conn: AsyncConnection, account_id: int, now: datetime, *, note: str,
    message_id: int | None = None, source_addr: str | None = None,
    dest_addr: str | None = None,
) -> list[dict[str, Any]]:
    """Inside the caller's transaction: end matching messages that still wait for an
    upstream as DELETED, refund each with a ledger row (cancel_sm; submit_sm's
    replace_if_present_flag does the same inside the store writer's commit, see
    store.writer). Returns the withdrawn rows as they were.
    """
    cond = [
        messages.c.account_id == account_id,
        messages.c.status == "ACCEPTED",
        messages.c.direction == "MT",
        _not_in_flight(now),
    ]
    if message_id is not None:
        cond.append(sa.or_(messages.c.id == message_id, messages.c.group_id == message_id))
    if source_addr:
        cond.append(messages.c.source_addr == source_addr)
    if dest_addr:
        cond.append(messages.c.dest_addr == dest_addr)
    query = sa.select(messages).where(*cond)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = [dict(r._mapping) for r in await conn.execute(query)]
    if not found:
        return []
    ids = [int(r["id"]) for r in found]
    await conn.execute(
        messages.update()
        .where(messages.c.id.in_(ids), messages.c.status == "ACCEPTED")
        .values(status=CANCELLED_STATUS, done_at=now)
    )
    refunds = [
        {"account_id": account_id, "kind": "refund", "amount": int(r["cost"]),
         "message_id": int(r["id"]), "note": note, "created_at": now}
        for r in found if r["cost"]
    ]
    if refunds:
        await conn.execute(ledger.insert(), refunds)
        await conn.execute(
            accounts.update().where(accounts.c.id == account_id)
            .values(balance=accounts.c.balance + sum(r["amount"] for r in refunds))
        )
    return found


class OutboxStore:
    """Claims, restart recovery, cancellation and replacement of messages not yet
    upstream (their hand-overs and retries are store.writer's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def claim(
        self, node: str, now: datetime, lease: timedelta, limit: int, *,
        only_expired: bool = False,
    ) -> list[dict[str, Any]]:
        """Take up to `limit` due messages for this node, oldest first.

        Returns the message rows as they were before the claim (`attempts`: how many
        times tried before), the most overdue first. Expired messages are returned too:
        the caller ends them as EXPIRED. `only_expired` takes just those, for when no
        upstream is up to take the others.
        """
        if limit <= 0:
            return []
        due = _due(now)
        if only_expired:
            due = sa.and_(due, messages.c.expires_at <= now)
        # In the index's order, so a backlog of any size is read only `limit` deep.
        query = sa.select(messages).where(due).order_by(messages.c.next_attempt_at).limit(limit)
        async with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [dict(r._mapping) for r in await conn.execute(query)]
            if rows:
                await conn.execute(
                    messages.update()
                    .where(messages.c.id.in_([r["id"] for r in rows]))
                    .values(claimed_by=node, next_attempt_at=now + lease)
                )
        return rows

    async def taken_parts(
        self, message_ids: Iterable[int]
    ) -> dict[int, tuple[str, dict[int, str]]]:
        """message id -> (upstream, {part number: upstream id}) of the segments an
        upstream already took of a message the gateway split."""
        ids = list(message_ids)
        if not ids:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(message_parts.c.message_id, message_parts.c.upstream,
                          message_parts.c.part_no, message_parts.c.upstream_id)
                .where(message_parts.c.message_id.in_(ids),
                       message_parts.c.upstream_id.is_not(None))
            )
            taken: dict[int, tuple[str, dict[int, str]]] = {}
            for message_id, upstream, part_no, upstream_id in rows:
                entry = taken.setdefault(int(message_id), (upstream, {}))
                entry[1][int(part_no)] = upstream_id
            return taken

    async def release_node(self, node: str, now: datetime) -> int:
        """At start: claims a previous run of this node held are due again at once."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                messages.update()
                .where(messages.c.status == "ACCEPTED", messages.c.claimed_by == node)
                .values(claimed_by=None, next_attempt_at=now)
            )
        return int(result.rowcount)

    async def enroute_with(self, upstream: str, limit: int = 100_000) -> list[dict[str, Any]]:
        """ENROUTE messages an upstream took: an in-process one forgets them on restart."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(messages)
                .where(messages.c.status == "ENROUTE", messages.c.upstream == upstream)
                .order_by(messages.c.id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    async def cancel(self, account_id: int, now: datetime, **match: Any) -> list[dict[str, Any]]:
        """Cancel messages still waiting in the outbox; returns the rows cancelled.

        `match` is either message_id=... (a submit_multi's id cancels every destination
        still waiting), or source_addr/dest_addr (all such messages of the account, as
        cancel_sm with an empty message_id asks). What the messages cost is refunded in
        the same transaction: one 'refund' ledger row each.
        """
        async with self._writer.begin() as conn:
            return await withdraw_waiting(conn, account_id, now, note="cancel_sm", **match)

    async def replace(
        self, account_id: int, message_id: int, now: datetime, values: dict[str, Any],
        *, old_cost: int | None = None,
    ) -> bool:
        """Change a message still waiting in the outbox; False if it is not waiting.

        When `values` carries a new `cost` (replace_sm re-prices), the difference with
        `old_cost` is debited (more segments) or refunded (fewer) in the same
        transaction, as one 'reprice' ledger row; a debit the balance cannot cover
        raises InsufficientCredit and changes nothing.
        """
        delta = 0 if old_cost is None else int(values.get("cost", old_cost)) - old_cost
        where = [
            messages.c.id == message_id,
            messages.c.account_id == account_id,
            messages.c.status == "ACCEPTED",
            _not_in_flight(now),
        ]
        if old_cost is not None:
            where.append(messages.c.cost == old_cost)  # priced as the caller saw it
        async with self._writer.begin() as conn:
            result = await conn.execute(messages.update().where(*where).values(**values))
            if result.rowcount != 1:
                return False
            if delta:
                moved = await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == account_id, accounts.c.balance >= delta)
                    .values(balance=accounts.c.balance - delta)
                )
                if moved.rowcount != 1:
                    raise InsufficientCredit(account_id, delta)
                await conn.execute(ledger.insert().values(
                    account_id=account_id, kind="reprice",
                    amount=-delta, message_id=message_id, note="replace_sm", created_at=now,
                ))
        return True

    async def waiting(self) -> int:
        """How many MT messages wait for an upstream (for metrics and tests)."""
        async with self._engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        sa.select(sa.func.count()).where(
                            messages.c.status == "ACCEPTED", messages.c.direction == "MT"
                        )
                    )
                ).scalar()
                or 0
            )

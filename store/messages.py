"""Message history and the queue of deliver_sm (DLR and MO) waiting for a customer bind.

New MT rows arrive through store.writer (store.batcher until the gateway switches);
this module answers history queries and still holds the SQLAlchemy versions of the
writes the store writer now makes (outcomes, MOs, deliveries and their acks). Deliveries are encoded
deliver_sm bodies the gateway produced; the store keeps them as opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.engine import writer
from store.tables import (
    DELIVERY_KINDS,
    MESSAGE_STATUSES,
    UTCDateTime,
    alert_requests,
    deliveries,
    message_parts,
    messages,
    utcnow,
)

# How long an undelivered DLR/MO is retried when the caller gives no expiry
# (the architecture follows OVH's 7 days).
DEFAULT_DELIVERY_TTL = timedelta(days=7)

StatusUpdate = tuple[int, str, int | None, datetime | None]


class MessageStore:
    """Repository of message history and pending deliveries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # -- messages -----------------------------------------------------------------

    async def mark_status(self, updates: Sequence[StatusUpdate]) -> None:
        """Apply (id, status, error_code, done_at) updates in one executemany transaction.

        A done_at of None keeps the stored one: an intermediate state reported after the
        final one must not erase when the message finished.
        """
        if not updates:
            return
        params = _status_params(updates)
        async with self._writer.begin() as conn:
            await conn.execute(_MARK_STATUS, params)

    async def record_outcomes(
        self, updates: Sequence[StatusUpdate], receipts: Iterable[Mapping[str, Any]],
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> list[int]:
        """mark_status(updates) and enqueue_deliveries(receipts) in one transaction.

        A final state and the DLR that reports it are committed together, so a crash
        cannot leave a DELIVERED message whose receipt was never queued. `alerts` are
        alert_requests rows (absent subscribers whose submit asked for set_dpf), kept
        in the same transaction. Returns the delivery ids in the order given.
        """
        status_params = _status_params(updates)
        delivery_params = _delivery_params(receipts)
        if not status_params and not delivery_params and not alerts:
            return []
        ids: list[int] = []
        async with self._writer.begin() as conn:
            if status_params:
                await conn.execute(_MARK_STATUS, status_params)
            if alerts:
                await add_alert_requests(conn, alerts)
            if delivery_params:
                ids = await _insert_deliveries(conn, delivery_params)
        return ids

    async def set_upstream(
        self, message_id: int, upstream: str, upstream_id: str, sent_at: datetime
    ) -> bool:
        """Record which upstream took the message and its id there.

        An ACCEPTED message becomes ENROUTE, so recovery (pending_upstream) will not
        send it again; a later state already recorded (a fast DLR) is kept.
        Returns False if no such message exists.
        """
        async with self._writer.begin() as conn:
            result = await conn.execute(
                messages.update()
                .where(messages.c.id == message_id)
                .values(
                    upstream=upstream,
                    upstream_id=upstream_id,
                    sent_at=sent_at,
                    status=sa.case(
                        (messages.c.status == "ACCEPTED", "ENROUTE"), else_=messages.c.status
                    ),
                )
            )
        return result.rowcount > 0

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

    async def record_inbound(
        self, rows: Sequence[Mapping[str, Any]], receipts: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        """Insert MO history rows and queue their deliveries in one transaction.

        The MO is acknowledged upstream only after this commit, so it is never lost and
        never recorded without its delivery. Returns the delivery ids in order.
        """
        delivery_params = _delivery_params(receipts)
        if not rows:
            return []
        async with self._writer.begin() as conn:
            await conn.execute(messages.insert(), [dict(r) for r in rows])
            if delivery_params:
                return await _insert_deliveries(conn, delivery_params)
        return []

    async def count_by_status(self, account_id: int) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(messages.c.status, sa.func.count())
                .where(messages.c.account_id == account_id)
                .group_by(messages.c.status)
            )
            return {status: int(count) for status, count in rows}

    async def pending_upstream(self, limit: int = 1000) -> list[dict[str, Any]]:
        """ACCEPTED messages not yet handed to an upstream, oldest first (restart recovery)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(messages)
                .where(messages.c.status == "ACCEPTED")
                .order_by(messages.c.id)
                .limit(limit)
            )
            return [dict(row._mapping) for row in rows]

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

    async def enqueue_deliveries(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Queue deliver_sm bodies; returns their ids in the order given.

        Each row needs account_id, kind ('dlr'|'mo') and body; message_id, created_at
        and next_attempt_at (default now) and expires_at (default now + 7 days) are
        optional.
        """
        params = _delivery_params(rows)
        if not params:
            return []
        async with self._writer.begin() as conn:
            return await _insert_deliveries(conn, params)

    async def due_deliveries(
        self, account_id: int, now: datetime, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Pending, unexpired deliveries of an account whose next attempt is due."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries)
                .where(
                    deliveries.c.state == "pending",
                    deliveries.c.account_id == account_id,
                    deliveries.c.next_attempt_at <= now,
                    deliveries.c.expires_at > now,
                )
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                .limit(limit)
            )
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

    async def mark_delivered(self, ids: Iterable[int]) -> int:
        """Mark pending deliveries delivered; returns how many changed."""
        id_list = list(ids)
        if not id_list:
            return 0
        async with self._writer.begin() as conn:
            result = await conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(id_list), deliveries.c.state == "pending")
                .values(state="delivered")
            )
        return int(result.rowcount)

    async def reschedule(self, delivery_id: int, next_attempt_at: datetime) -> bool:
        """Count a failed attempt and set when to try again; False if not pending."""
        return await self.reschedule_many([delivery_id], next_attempt_at) == 1

    async def reschedule_many(self, ids: Iterable[int], next_attempt_at: datetime) -> int:
        """reschedule() for several deliveries in one statement; returns how many."""
        id_list = list(ids)
        if not id_list:
            return 0
        async with self._writer.begin() as conn:
            result = await conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(id_list), deliveries.c.state == "pending")
                .values(attempts=deliveries.c.attempts + 1, next_attempt_at=next_attempt_at)
            )
        return int(result.rowcount)

    async def expire_deliveries(self, now: datetime) -> int:
        """Give up on pending deliveries past their expiry; returns how many."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                deliveries.update()
                .where(deliveries.c.state == "pending", deliveries.c.expires_at <= now)
                .values(state="expired")
            )
        return int(result.rowcount)


_MARK_STATUS = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        error_code=sa.bindparam("b_error"),
        done_at=sa.func.coalesce(sa.bindparam("b_done", type_=UTCDateTime()), messages.c.done_at),
    )
)


def _status_params(updates: Sequence[StatusUpdate]) -> list[dict[str, Any]]:
    params = []
    for message_id, status, error_code, done_at in updates:
        if status not in MESSAGE_STATUSES:
            raise ValueError(f"unknown message status {status!r} for message {message_id}")
        params.append(
            {"b_id": message_id, "b_status": status, "b_error": error_code, "b_done": done_at}
        )
    return params


def _delivery_params(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    now = utcnow()
    params = []
    for row in rows:
        if row["kind"] not in DELIVERY_KINDS:
            raise ValueError(f"delivery kind must be one of {DELIVERY_KINDS}: {row['kind']!r}")
        params.append(
            {
                "account_id": row["account_id"],
                "message_id": row.get("message_id"),
                "kind": row["kind"],
                "body": bytes(row["body"]),
                "state": "pending",
                "attempts": 0,
                "created_at": row.get("created_at") or now,
                "next_attempt_at": row.get("next_attempt_at") or now,
                "expires_at": row.get("expires_at") or now + DEFAULT_DELIVERY_TTL,
            }
        )
    return params


async def add_alert_requests(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Remember absent subscribers to alert on; one row per (account, mobile, ESME
    address), the latest expiry winning."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(alert_requests)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[alert_requests.c.account_id, alert_requests.c.ms_addr,
                            alert_requests.c.esme_addr],
            set_={"expires_at": stmt.excluded.expires_at, "alerted_at": None},
        ),
        [dict(r) for r in rows],
    )


async def _insert_deliveries(conn: AsyncConnection, params: list[dict[str, Any]]) -> list[int]:
    # sort_by_parameter_order: the caller pairs each id with the row it passed.
    result = await conn.execute(
        deliveries.insert().returning(deliveries.c.id, sort_by_parameter_order=True), params
    )
    return [int(i) for i in result.scalars().all()]

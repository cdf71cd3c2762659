"""Message history for operators: filtered queries, paged export, deletion, retention.

Pages are keyset-paginated on the message id (time-ordered snowflakes), so an export
of any size holds one page in memory and no transaction open between pages; deletion
and purging never touch the ledger, which stays the record of every debit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.bounds import check_id, check_text
from store.engine import writer
from store.tables import MESSAGE_STATUSES, accounts, deliveries, messages

# States in which a message still moves through the gateway: never deleted or purged.
IN_FLIGHT = ("ACCEPTED", "ENROUTE")
# The most rows one query() returns, and the most ids one delete() takes (each id is a
# bound parameter; SQLite allows 32766 in one statement).
MAX_PAGE = 100_000
MAX_DELETE = 10_000

# Columns an export carries, in order (the system_id comes from a join).
EXPORT_COLUMNS = (
    "id", "system_id", "direction", "created_at", "sent_at", "done_at", "source_addr",
    "dest_addr", "segments", "cost", "data_coding", "status", "error_code", "upstream",
    "upstream_id", "body",
)


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What to select; every field is optional. `since` inclusive, `until` exclusive."""

    account_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    sender: str | None = None
    receiver: str | None = None
    status: str | None = None
    message_id: int | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in MESSAGE_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(MESSAGE_STATUSES)}, got {self.status!r}"
            )
        if self.direction is not None and self.direction not in ("MT", "MO"):
            raise ValueError(f"direction must be MT or MO, got {self.direction!r}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("the time range is empty: 'since' must be before 'until'")
        check_text(messages.c.source_addr, self.sender, "sender")
        check_text(messages.c.dest_addr, self.receiver, "receiver")
        if self.message_id is not None:
            check_id("message_id", self.message_id)
        if self.account_id is not None:
            check_id("account_id", self.account_id)

    def where(self) -> list[sa.ColumnElement[bool]]:
        m = messages.c
        clauses: list[sa.ColumnElement[bool]] = []
        if self.account_id is not None:
            clauses.append(m.account_id == self.account_id)
        if self.since is not None:
            clauses.append(m.created_at >= self.since)
        if self.until is not None:
            clauses.append(m.created_at < self.until)
        if self.sender is not None:
            clauses.append(m.source_addr == self.sender)
        if self.receiver is not None:
            clauses.append(m.dest_addr == self.receiver)
        if self.status is not None:
            clauses.append(m.status == self.status)
        if self.message_id is not None:
            clauses.append(m.id == self.message_id)
        if self.direction is not None:
            clauses.append(m.direction == self.direction)
        return clauses


_SELECT = sa.select(messages, accounts.c.system_id).join(
    accounts, accounts.c.id == messages.c.account_id
)


class HistoryStore:
    """Read, export and delete message history."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def query(
        self, flt: HistoryFilter, *, limit: int = 100, after_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` rows in id (creation) order, after `after_id` if given."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
        if after_id is not None:
            check_id("after_id", after_id, least=0)
        stmt = _SELECT.where(*flt.where())
        if after_id is not None:
            stmt = stmt.where(messages.c.id > after_id)
        stmt = stmt.order_by(messages.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(stmt)]

    async def count(self, flt: HistoryFilter) -> int:
        stmt = sa.select(sa.func.count()).select_from(messages).where(*flt.where())
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def pages(
        self, flt: HistoryFilter, page_size: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every matching row, `page_size` at a time, each page its own short read."""
        after: int | None = None
        while True:
            page = await self.query(flt, limit=page_size, after_id=after)
            if not page:
                return
            yield page
            if len(page) < page_size:
                return
            after = page[-1]["id"]

    async def delete(self, account_id: int, message_ids: Iterable[int]) -> int:
        """Delete some of an account's finished messages; returns how many went.

        Messages still in flight (ACCEPTED, ENROUTE) are kept: the outbox and the
        receipt path still need their rows.
        """
        ids = sorted({check_id("message id", i) for i in message_ids})
        if not ids:
            return 0
        if len(ids) > MAX_DELETE:
            raise ValueError(f"at most {MAX_DELETE} message ids at once, got {len(ids)}")
        async with self._writer.begin() as conn:
            result = await conn.execute(
                messages.delete().where(
                    messages.c.account_id == account_id,
                    messages.c.id.in_(ids),
                    messages.c.status.notin_(IN_FLIGHT),
                )
            )
        return int(result.rowcount)

    async def purge(self, cutoff: datetime, *, batch: int = 5000) -> dict[str, int]:
        """Delete messages created before `cutoff`, and finished deliveries queued before
        it, in batches of `batch` rows so no transaction holds the write lock for long.
        Messages still in flight (ACCEPTED, ENROUTE) are kept whatever their age.
        """
        purged = {"messages": 0, "deliveries": 0}
        targets = (
            ("messages", messages, [
                messages.c.created_at < cutoff,
                messages.c.status.notin_(IN_FLIGHT),
            ]),
            ("deliveries", deliveries, [
                deliveries.c.created_at < cutoff,
                deliveries.c.state != "pending",
            ]),
        )
        for name, table, where in targets:
            while True:
                async with self._writer.begin() as conn:
                    ids = (
                        await conn.execute(
                            sa.select(table.c.id).where(*where).order_by(table.c.id).limit(batch)
                        )
                    ).scalars().all()
                    if ids:
                        await conn.execute(table.delete().where(table.c.id.in_(ids)))
                purged[name] += len(ids)
                if len(ids) < batch:
                    break
        return purged

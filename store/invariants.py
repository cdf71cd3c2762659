"""Checks of the money invariants (ARCHITECTURE principle 4), for tests and operators.

For every account the balance equals the sum of its ledger. What messages cost is
compared with what was debited for them, for the messages still in the history
(deletion and retention remove messages, never ledger rows):
- a debit of the store writer pays for one account's messages of one commit; they
  point at it (messages.ledger_id). Their costs equal the debit plus the reprice rows
  of replace_sm that reference them, while all `message_count` of them are present;
  once some were purged, the rest can only cost less than was debited.
- a message written before that (ledger_id NULL) has at most one debit row of its own
  (ledger.message_id), which with its reprice rows equals its cost.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.tables import accounts, ledger, messages


async def ledger_violations(engine: AsyncEngine) -> list[str]:
    """Every broken invariant as a sentence; an empty list means the books balance."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for all the queries, or concurrent commits would show as
            # false alarms.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        return [
            *await _balances(conn),
            *await _commit_debits(conn),
            *await _message_debits(conn),
        ]


async def _balances(conn: AsyncConnection) -> list[str]:
    sums = (
        sa.select(ledger.c.account_id, sa.func.sum(ledger.c.amount).label("total"))
        .group_by(ledger.c.account_id)
        .subquery()
    )
    rows = await conn.execute(
        sa.select(accounts.c.system_id, accounts.c.balance, sa.func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.account_id == accounts.c.id)
    )
    problems = []
    for system_id, balance, total in rows:
        if balance < 0:
            problems.append(f"{system_id}: negative balance {balance}")
        if int(balance) != int(total):
            problems.append(f"{system_id}: balance {balance} != ledger sum {total}")
    return problems


async def _commit_debits(conn: AsyncConnection) -> list[str]:
    """The store writer's debits: one row per account per commit (messages.ledger_id)."""
    paid = (
        sa.select(
            messages.c.ledger_id,
            sa.func.count().label("present"),
            sa.func.sum(messages.c.cost).label("cost"),
        )
        .where(messages.c.ledger_id.is_not(None))
        .group_by(messages.c.ledger_id)
        .subquery()
    )
    repriced = (
        sa.select(messages.c.ledger_id, sa.func.sum(ledger.c.amount).label("amount"))
        .join(ledger, ledger.c.message_id == messages.c.id)
        .where(messages.c.ledger_id.is_not(None), ledger.c.kind == "reprice")
        .group_by(messages.c.ledger_id)
        .subquery()
    )
    rows = await conn.execute(
        sa.select(
            paid.c.ledger_id, paid.c.present, paid.c.cost, ledger.c.id, ledger.c.kind,
            ledger.c.message_id, ledger.c.amount, ledger.c.message_count,
            sa.func.coalesce(repriced.c.amount, 0),
        )
        .select_from(paid)
        .outerjoin(ledger, ledger.c.id == paid.c.ledger_id)
        .outerjoin(repriced, repriced.c.ledger_id == paid.c.ledger_id)
    )
    problems = []
    for ledger_id, present, cost, found, kind, message_id, amount, count, reprice in rows:
        if found is None or kind != "debit" or message_id is not None:
            problems.append(f"ledger row {ledger_id}: {present} messages point at it, "
                            "but it is not a debit of the store writer")
            continue
        # What the messages present cost now, against what was debited for them.
        owed, debited = int(cost), -(int(amount) + int(reprice))
        complete = count is None or int(present) == int(count)
        if (complete and owed != debited) or owed > debited or (
            count is not None and int(present) > int(count)
        ):
            problems.append(
                f"debit {ledger_id}: {present} of {count} messages cost {owed} "
                f"but {debited} was debited"
            )
    return problems


async def _message_debits(conn: AsyncConnection) -> list[str]:
    """Messages without ledger_id: debited one by one (before migration 0006)."""
    debits = (
        sa.select(
            ledger.c.message_id,
            sa.func.sum(ledger.c.amount).label("debited"),
            sa.func.sum(sa.case((ledger.c.kind == "debit", 1), else_=0)).label("rows"),
        )
        .where(ledger.c.kind.in_(("debit", "reprice")), ledger.c.message_id.is_not(None))
        .group_by(ledger.c.message_id)
        .subquery()
    )
    rows = await conn.execute(
        sa.select(messages.c.id, messages.c.cost, debits.c.debited, debits.c.rows)
        .outerjoin(debits, debits.c.message_id == messages.c.id)
        .where(
            messages.c.ledger_id.is_(None),
            sa.or_(messages.c.cost != 0, debits.c.rows.is_not(None)),
        )
    )
    problems = []
    for message_id, cost, debited, count in rows:
        if int(debited or 0) != -int(cost) or (count or 0) > 1:
            problems.append(
                f"message {message_id}: cost {cost} but debited {debited} in {count} rows"
            )
    return problems

"""Checks of the money invariants (ARCHITECTURE principle 4), for tests and operators.

For every account the balance equals the sum of its ledger; for the messages still in
the history, their costs equal the debit row (at most one) plus the reprice rows of
replace_sm that reference them. History deletion
and retention remove messages, never ledger rows, so only debits of messages still
present are compared.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.tables import accounts, ledger, messages


async def ledger_violations(engine: AsyncEngine) -> list[str]:
    """Every broken invariant as a sentence; an empty list means the books balance."""
    problems: list[str] = []
    sums = (
        sa.select(ledger.c.account_id, sa.func.sum(ledger.c.amount).label("total"))
        .group_by(ledger.c.account_id)
        .subquery()
    )
    debits = (
        sa.select(
            ledger.c.message_id,
            sa.func.sum(ledger.c.amount).label("debited"),
            sa.func.sum(sa.case((ledger.c.kind == "debit", 1), else_=0)).label("rows"),
        )
        .where(ledger.c.kind.in_(("debit", "reprice")))
        .group_by(ledger.c.message_id)
        .subquery()
    )
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for all three queries, or concurrent commits would show
            # as false alarms.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        balances = await conn.execute(
            sa.select(
                accounts.c.system_id,
                accounts.c.balance,
                sa.func.coalesce(sums.c.total, 0),
            ).outerjoin(sums, sums.c.account_id == accounts.c.id)
        )
        for system_id, balance, total in balances:
            if balance < 0:
                problems.append(f"{system_id}: negative balance {balance}")
            if int(balance) != int(total):
                problems.append(f"{system_id}: balance {balance} != ledger sum {total}")
        costs = await conn.execute(
            sa.select(messages.c.id, messages.c.cost, debits.c.debited, debits.c.rows)
            .outerjoin(debits, debits.c.message_id == messages.c.id)
            .where(sa.or_(messages.c.cost != 0, debits.c.rows.is_not(None)))
        )
        for message_id, cost, debited, rows in costs:
            if int(debited or 0) != -int(cost) or (rows or 0) > 1:
                problems.append(
                    f"message {message_id}: cost {cost} but debited {debited} in {rows} rows"
                )
        totals = (
            await conn.execute(
                sa.select(
                    sa.select(sa.func.coalesce(sa.func.sum(messages.c.cost), 0))
                    .where(messages.c.direction == "MT")
                    .scalar_subquery(),
                    sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
                    .where(ledger.c.kind.in_(("debit", "reprice")), ledger.c.message_id.in_(
                        sa.select(messages.c.id).where(messages.c.direction == "MT")
                    ))
                    .scalar_subquery(),
                )
            )
        ).one()
        if int(totals[0]) != -int(totals[1]):
            problems.append(f"message costs {totals[0]} != -(debit rows {totals[1]})")
    return problems

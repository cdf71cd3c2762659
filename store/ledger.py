"""Credit balances and their ledger: top-ups, transfers, automatic top-up, the books.

Every change of a balance writes its ledger row in the same transaction, so a balance
always equals the sum of its ledger (principle 4). Amounts are integer minor units
(store.money): each at most MAX_AMOUNT, and no credit made here takes a balance past
MAX_AMOUNT (a conditional update, so two credits racing cannot either). Debits for
messages are written by the store writer (one row per account per commit), not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.bounds import check_id, check_text
from store.engine import writer
from store.errors import AccountNotFound, BalanceLimitExceeded, InsufficientCredit, StoreError
from store.invariants import ledger_violations
from store.money import MAX_AMOUNT, check_amount
from store.tables import accounts, ledger, utcnow

# Kinds add_credits() may write; debits and transfers have their own paths.
CREDIT_KINDS = ("topup", "auto_topup", "refund", "adjust")
# The most ledger rows one entries() call returns.
MAX_PAGE = 10_000


async def insert_entry(
    conn: AsyncConnection,
    account_id: int,
    kind: str,
    amount: int,
    now: datetime,
    *,
    note: str | None = None,
    message_id: int | None = None,
) -> None:
    """One ledger row, in the caller's transaction (which changes the balance with it)."""
    await conn.execute(
        ledger.insert().values(
            account_id=account_id, kind=kind, amount=amount,
            message_id=message_id, note=note, created_at=now,
        )
    )


def _positive_amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int of minor units, got {type(amount).__name__}")
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")
    return check_amount("amount", amount, positive=True)


def _room_for(amount: int) -> sa.ColumnElement[bool]:
    """The balance can take `amount` more without passing MAX_AMOUNT."""
    return accounts.c.balance <= MAX_AMOUNT - amount


async def _over_limit(conn: AsyncConnection, system_id: str, amount: int) -> StoreError:
    """Why a conditional credit of `system_id` updated nothing."""
    balance = (
        await conn.execute(sa.select(accounts.c.balance).where(accounts.c.system_id == system_id))
    ).scalar_one_or_none()
    if balance is None:
        return AccountNotFound(system_id)
    return BalanceLimitExceeded(system_id, int(balance), amount, MAX_AMOUNT)


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class LedgerStore:
    """Repository of balances and ledger rows; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add_credits(
        self,
        system_id: str,
        amount: int,
        *,
        kind: str = "topup",
        note: str | None = None,
        message_id: int | None = None,
    ) -> int:
        """Credit `amount` minor units (1..MAX_AMOUNT); returns the new balance.

        BalanceLimitExceeded, and nothing written, if the balance would pass MAX_AMOUNT.
        """
        _positive_amount(amount)
        if kind not in CREDIT_KINDS:
            raise ValueError(f"kind must be one of {CREDIT_KINDS}, got {kind!r}")
        check_text(ledger.c.note, note)
        if message_id is not None:
            check_id("message_id", message_id)
        async with self._writer.begin() as conn:
            now = utcnow()
            balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.system_id == system_id, _room_for(amount))
                    .values(balance=accounts.c.balance + amount, updated_at=now)
                    .returning(accounts.c.id, accounts.c.balance)
                )
            ).one_or_none()
            if balance is None:
                raise await _over_limit(conn, system_id, amount)
            await insert_entry(
                conn, balance.id, kind, amount, now, note=note, message_id=message_id
            )
        return int(balance.balance)

    async def transfer(self, src: str, dst: str, amount: int) -> tuple[int, int]:
        """Move credit between accounts atomically; returns (src_balance, dst_balance).

        The debit is a conditional update (balance >= amount), so concurrent transfers
        and batched debits, on any number of nodes, can never overdraw `src`; the credit
        is one too (BalanceLimitExceeded past MAX_AMOUNT). Either refusal rolls the
        whole transfer back: nothing is written.
        """
        _positive_amount(amount)
        if src == dst:
            raise ValueError("cannot transfer credit from an account to itself")
        async with self._writer.begin() as conn:
            # Lock both rows in id order so that A->B and B->A running at the same time
            # on PostgreSQL queue up instead of deadlocking. NO KEY UPDATE leaves the
            # foreign-key share locks taken by concurrent ledger inserts free.
            # (SQLite ignores FOR UPDATE; BEGIN IMMEDIATE already serialises writers.)
            rows = (
                await conn.execute(
                    sa.select(accounts.c.id, accounts.c.system_id)
                    .where(accounts.c.system_id.in_((src, dst)))
                    .order_by(accounts.c.id)
                    .with_for_update(key_share=True)
                )
            ).all()
            ids = {row.system_id: row.id for row in rows}
            for system_id in (src, dst):
                if system_id not in ids:
                    raise AccountNotFound(system_id)
            now = utcnow()
            src_balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == ids[src], accounts.c.balance >= amount)
                    .values(balance=accounts.c.balance - amount, updated_at=now)
                    .returning(accounts.c.balance)
                )
            ).scalar_one_or_none()
            if src_balance is None:
                raise InsufficientCredit(src, amount)
            dst_balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == ids[dst], _room_for(amount))
                    .values(balance=accounts.c.balance + amount, updated_at=now)
                    .returning(accounts.c.balance)
                )
            ).scalar_one_or_none()
            if dst_balance is None:
                # Raised inside the transaction: the debit of `src` above is undone.
                raise await _over_limit(conn, dst, amount)
            await conn.execute(
                ledger.insert(),
                [
                    {"account_id": ids[src], "kind": "transfer_out", "amount": -amount,
                     "note": f"to {dst}", "created_at": now},
                    {"account_id": ids[dst], "kind": "transfer_in", "amount": amount,
                     "note": f"from {src}", "created_at": now},
                ],
            )
        return int(src_balance), int(dst_balance)

    async def auto_topup(self, account_id: int, now: datetime | None = None) -> int | None:
        """Top the account up by its auto_topup_amount if its balance is at or below its
        threshold and the month's auto top-ups stay within the cap.

        Returns the amount added, or None when nothing was due or the cap is reached.
        Every check runs inside the write transaction that credits, so two nodes (or two
        triggers) racing cannot top up twice for one crossing.
        """
        now = now or utcnow()
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        accounts.c.balance,
                        accounts.c.auto_topup_threshold,
                        accounts.c.auto_topup_amount,
                        accounts.c.auto_topup_monthly_cap,
                    )
                    .where(accounts.c.id == account_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise AccountNotFound(f"id={account_id}")
            threshold, amount, cap = (
                row.auto_topup_threshold, row.auto_topup_amount, row.auto_topup_monthly_cap
            )
            if threshold is None or not amount or row.balance > threshold:
                return None
            if row.balance > MAX_AMOUNT - amount:
                return None  # a threshold set near the limit: topping up would pass it
            if cap is not None:
                used = (
                    await conn.execute(
                        sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(
                            ledger.c.account_id == account_id,
                            ledger.c.kind == "auto_topup",
                            ledger.c.created_at >= _month_start(now),
                        )
                    )
                ).scalar_one()
                if int(used) + amount > cap:
                    return None
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(balance=accounts.c.balance + amount, updated_at=now)
            )
            await insert_entry(conn, account_id, "auto_topup", amount, now,
                               note="automatic top-up")
        return int(amount)

    async def balance(self, system_id: str) -> int:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(accounts.c.balance).where(accounts.c.system_id == system_id)
                )
            ).scalar_one_or_none()
        if value is None:
            raise AccountNotFound(system_id)
        return int(value)

    async def total(self, account_id: int) -> int:
        """Sum of an account's ledger; equals its balance (principle 4)."""
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(
                        ledger.c.account_id == account_id
                    )
                )
            ).scalar_one()
        return int(value)

    async def entries(self, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ledger rows of an account, newest first (1 <= limit <= MAX_PAGE)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(ledger)
                .where(ledger.c.account_id == account_id)
                .order_by(ledger.c.id.desc())
                .limit(limit)
            )
            return [dict(row._mapping) for row in rows]

    async def violations(self) -> list[str]:
        """Every broken money invariant, for the operator's `ledger check` (empty: none)."""
        return await ledger_violations(self._engine)

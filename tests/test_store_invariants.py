"""The money invariant check (store.invariants) notices a ledger that does not add up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import StoreDB, new_message

from store.accounts import AccountStore
from store.invariants import ledger_violations
from store.outbox import OutboxStore
from store.tables import ledger, messages
from store.writer import StoreWriter

store_db = store_fixtures.store_db


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def test_invariant_check_notices_a_broken_ledger(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h", credits=100)
    async with store_db.engine.begin() as conn:
        await conn.execute(
            ledger.insert().values(account_id=acme["id"], kind="adjust", amount=5,
                                   created_at=datetime.now(UTC))
        )
    problems = await ledger_violations(store_db.engine)
    assert problems == ["acme: balance 100 != ledger sum 105"]


async def _writer_commit(db: StoreDB, account_id: int, *message_ids: int) -> None:
    """Messages of one account in one commit of the store writer: one debit row."""
    writer = StoreWriter(db.url, node="n", claim_lease=timedelta(seconds=60),
                         connect_args=db.connect_args)
    await writer.start()
    now = datetime.now(UTC)
    await asyncio.gather(*(writer.accept(new_message(i, account_id, cost=10, created_at=now))
                           for i in message_ids))
    await writer.stop()


async def test_a_debit_of_the_writer_must_match_the_messages_pointing_at_it(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h", credits=100)
    await _writer_commit(store_db, acme["id"], 1, 2, 3)
    assert await ledger_violations(store_db.engine) == []
    [debit_id] = (await _scalars(store_db, sa.select(ledger.c.id).where(ledger.c.kind == "debit")))
    async with store_db.engine.begin() as conn:
        await conn.execute(messages.update().where(messages.c.id == 2).values(cost=11))
    assert await ledger_violations(store_db.engine) == [
        f"debit {debit_id}: 3 of 3 messages cost 31 but 30 was debited"]


async def test_purging_some_messages_of_a_debit_is_no_violation_but_losing_one_is(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h", credits=100)
    await _writer_commit(store_db, acme["id"], 1, 2, 3)
    async with store_db.engine.begin() as conn:
        await conn.execute(messages.delete().where(messages.c.id == 1))  # purged
    assert await ledger_violations(store_db.engine) == []
    # A message that points at a debit which never counted it: debited too little.
    async with store_db.engine.begin() as conn:
        [debit_id] = (await conn.execute(
            sa.select(ledger.c.id).where(ledger.c.kind == "debit"))).scalars().all()
        await conn.execute(messages.update().where(messages.c.id == 3).values(cost=25))
    assert await ledger_violations(store_db.engine) == [
        f"debit {debit_id}: 2 of 3 messages cost 35 but 30 was debited"]


async def test_a_reprice_of_a_message_paid_by_a_commit_debit_keeps_the_books(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h", credits=100)
    now = datetime.now(UTC)
    writer = StoreWriter(store_db.url, node="n", claim_lease=timedelta(seconds=60),
                         connect_args=store_db.connect_args)
    await writer.start()
    await writer.accept(new_message(1, acme["id"], cost=10, created_at=now,
                                    schedule_at=now + timedelta(hours=1)))
    await writer.stop()
    # replace_sm: two segments more (a 'reprice' row referencing the message).
    assert await OutboxStore(store_db.engine).replace(
        acme["id"], 1, now, {"cost": 30, "segments": 3}, old_cost=10)
    assert await ledger_violations(store_db.engine) == []


async def _scalars(db: StoreDB, query: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(query)).scalars().all())

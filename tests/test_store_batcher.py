"""WriteBehindBatcher: acknowledged means committed, short accounts harm no one else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import StoreDB, new_message

from store.accounts import AccountStore
from store.batcher import WriteBehindBatcher
from store.errors import AccountNotFound, InsufficientCredit, StoreError
from store.ledger import LedgerStore
from store.tables import ledger, messages

store_db = store_fixtures.store_db


async def _committed_ids(db: StoreDB) -> list[int]:
    """Message ids as a separate engine (another pool, another connection) sees them."""
    other = db.other_engine()
    try:
        async with other.connect() as conn:
            rows = await conn.execute(sa.select(messages.c.id).order_by(messages.c.id))
            return [int(i) for i in rows.scalars()]
    finally:
        await other.dispose()


async def _ledger(db: StoreDB) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(ledger.c.account_id, ledger.c.kind, ledger.c.amount, ledger.c.message_id)
            .where(ledger.c.kind == "debit")
            .order_by(ledger.c.message_id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
async def batcher(store_db: StoreDB) -> AsyncIterator[WriteBehindBatcher]:
    b = WriteBehindBatcher(store_db.engine, max_batch=100, max_delay=0.005)
    await b.start()
    yield b
    await b.stop()


async def test_submit_returns_after_the_row_and_debit_are_committed(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    acme = await accounts.create("acme", "h", credits=100)
    await batcher.submit(new_message(7001, acme["id"], cost=30))
    assert await _committed_ids(store_db) == [7001]
    assert await _ledger(store_db) == [(acme["id"], "debit", -30, 7001)]
    assert await ledger_store.balance("acme") == 70


async def test_concurrent_submits_share_transactions(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    a = await accounts.create("a", "h", credits=10_000)
    b = await accounts.create("b", "h", credits=10_000)
    await asyncio.gather(
        *(batcher.submit(new_message(i, (a, b)[i % 2]["id"], cost=3)) for i in range(1, 301))
    )
    assert await _committed_ids(store_db) == list(range(1, 301))
    for account in (a, b):
        balance = await ledger_store.balance(account["system_id"])
        assert balance == 10_000 - 150 * 3
        assert await ledger_store.total(account["id"]) == balance


async def test_full_batch_does_not_wait_for_the_delay(store_db: StoreDB) -> None:
    account = await AccountStore(store_db.engine).create("acme", "h", credits=1000)
    slow = WriteBehindBatcher(store_db.engine, max_batch=10, max_delay=30.0)
    await slow.start()
    started = time.monotonic()
    await asyncio.gather(*(slow.submit(new_message(i, account["id"])) for i in range(1, 11)))
    assert time.monotonic() - started < 5.0
    await slow.stop()


async def test_a_lone_message_waits_only_about_max_delay(store_db: StoreDB) -> None:
    account = await AccountStore(store_db.engine).create("acme", "h", credits=1000)
    b = WriteBehindBatcher(store_db.engine, max_batch=1000, max_delay=0.05)
    await b.start()
    started = time.monotonic()
    await b.submit(new_message(1, account["id"]))
    elapsed = time.monotonic() - started
    await b.stop()
    assert 0.04 <= elapsed < 2.0


async def test_insufficient_credit_rejects_only_the_short_account(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    rich = await accounts.create("rich", "h", credits=1000)
    poor = await accounts.create("poor", "h", credits=25)
    # Both accounts in one batch; poor's three messages need 30 > 25.
    results = await asyncio.gather(
        batcher.submit(new_message(1, rich["id"], cost=10)),
        batcher.submit(new_message(2, poor["id"], cost=10)),
        batcher.submit(new_message(3, rich["id"], cost=10)),
        batcher.submit(new_message(4, poor["id"], cost=10)),
        batcher.submit(new_message(5, poor["id"], cost=10)),
        return_exceptions=True,
    )
    assert results[0] == [] and results[2] == []  # committed, nothing replaced
    assert all(isinstance(results[i], InsufficientCredit) for i in (1, 3, 4))
    assert await _committed_ids(store_db) == [1, 3]
    assert [row[3] for row in await _ledger(store_db)] == [1, 3]
    assert await ledger_store.balance("poor") == 25
    assert await ledger_store.balance("rich") == 980
    assert await ledger_store.total(poor["id"]) == 25


async def test_unknown_account_fails_only_its_messages(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h", credits=100)
    results = await asyncio.gather(
        batcher.submit(new_message(1, acme["id"])),
        batcher.submit(new_message(2, 999_999)),
        return_exceptions=True,
    )
    assert results[0] == []
    assert isinstance(results[1], AccountNotFound)
    assert await _committed_ids(store_db) == [1]


async def test_free_messages_get_a_row_but_no_ledger_entry(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h")
    await batcher.submit(new_message(1, acme["id"], cost=0))
    assert await _committed_ids(store_db) == [1]
    assert await _ledger(store_db) == []


async def test_database_error_fails_the_whole_batch_and_writes_nothing(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    a = await accounts.create("a", "h", credits=100)
    b = await accounts.create("b", "h", credits=100)
    # The same id twice in one batch: the insert violates the primary key.
    results = await asyncio.gather(
        batcher.submit(new_message(1, a["id"])),
        batcher.submit(new_message(2, b["id"])),
        batcher.submit(new_message(2, b["id"])),
        return_exceptions=True,
    )
    assert all(isinstance(r, sa.exc.IntegrityError) for r in results)
    assert await _committed_ids(store_db) == []
    assert await _ledger(store_db) == []
    assert (await ledger_store.balance("a"), await ledger_store.balance("b")) == (100, 100)
    # The batcher carries on after a failed batch.
    await batcher.submit(new_message(3, a["id"]))
    assert await _committed_ids(store_db) == [3]


async def test_stop_flushes_everything_pending(store_db: StoreDB) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h", credits=1000)
    b = WriteBehindBatcher(store_db.engine, max_batch=1000, max_delay=60.0)
    await b.start()
    futures = [b.enqueue(new_message(i, acme["id"])) for i in range(1, 51)]
    await asyncio.sleep(0.01)
    assert not any(f.done() for f in futures)  # held back by the 60 s delay
    await b.stop()
    assert all(f.done() and f.exception() is None for f in futures)
    assert await _committed_ids(store_db) == list(range(1, 51))
    with pytest.raises(StoreError, match="not running"):
        await b.submit(new_message(99, acme["id"]))


async def test_items_arriving_during_a_flush_go_into_the_next_batch(store_db: StoreDB) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h", credits=10_000)
    b = WriteBehindBatcher(store_db.engine, max_batch=5, max_delay=0.001)
    await b.start()
    # More than one batch worth, enqueued in waves while flushes run.
    waves = []
    for wave in range(4):
        waves += [b.enqueue(new_message(wave * 7 + i, acme["id"], cost=1)) for i in range(1, 8)]
        await asyncio.sleep(0)
    await asyncio.gather(*waves)
    await b.stop()
    assert len(await _committed_ids(store_db)) == 28
    assert await LedgerStore(store_db.engine).balance("acme") == 10_000 - 28


async def test_submit_before_start_is_refused(store_db: StoreDB) -> None:
    b = WriteBehindBatcher(store_db.engine)
    with pytest.raises(StoreError, match="not running"):
        await b.submit(new_message(1, 1))
    await b.stop()  # stopping a batcher that never started is harmless


async def test_ledger_matches_balances_after_topups_transfers_and_debits(
    store_db: StoreDB, batcher: WriteBehindBatcher
) -> None:
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    a = await accounts.create("a", "h", credits=500)
    b = await accounts.create("b", "h", credits=500)
    await ledger_store.add_credits("a", 250)

    async def traffic() -> None:
        await asyncio.gather(
            *(batcher.submit(new_message(i, (a, b)[i % 2]["id"], cost=7)) for i in range(1, 41)),
            return_exceptions=True,
        )

    await asyncio.gather(
        traffic(),
        ledger_store.transfer("a", "b", 100),
        ledger_store.transfer("b", "a", 40),
        return_exceptions=True,
    )
    for account in (a, b):
        assert await ledger_store.total(account["id"]) == await ledger_store.balance(
            account["system_id"])
    total = await ledger_store.balance("a") + await ledger_store.balance("b")
    assert total == 1250 - 7 * len(await _committed_ids(store_db))


async def test_two_nodes_sharing_one_store_never_oversell(store_db: StoreDB) -> None:
    # Two gateway nodes: separate engines (pools) and batchers on the same database.
    accounts = AccountStore(store_db.engine)
    ledger_store = LedgerStore(store_db.engine)
    acme = await accounts.create("acme", "h", credits=250)
    other_engine = store_db.other_engine()
    nodes = [
        WriteBehindBatcher(store_db.engine, max_batch=4, max_delay=0.001),
        WriteBehindBatcher(other_engine, max_batch=4, max_delay=0.001),
    ]
    for node in nodes:
        await node.start()
    try:
        results = await asyncio.gather(
            *(nodes[i % 2].submit(new_message(i, acme["id"], cost=10)) for i in range(1, 61)),
            return_exceptions=True,
        )
    finally:
        for node in nodes:
            await node.stop()
        await other_engine.dispose()
    accepted = [i + 1 for i, r in enumerate(results) if r == []]
    assert all(r == [] or isinstance(r, InsufficientCredit) for r in results)
    assert await _committed_ids(store_db) == accepted
    balance = await ledger_store.balance("acme")
    assert balance == 250 - 10 * len(accepted) >= 0
    assert await ledger_store.total(acme["id"]) == balance

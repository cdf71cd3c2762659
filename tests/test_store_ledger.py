"""LedgerStore on SQLite and PostgreSQL: credits, transfers, automatic top-up, and the
money invariants under concurrent transfers and group-committed submits (store.writer)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import MakeWriter, StoreDB, new_message

from store.accounts import AccountStore
from store.errors import AccountNotFound, InsufficientCredit
from store.invariants import ledger_violations
from store.ledger import LedgerStore
from store.tables import ledger as ledger_table
from store.tables import messages

store_db = store_fixtures.store_db
make_writer = store_fixtures.make_writer
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


@pytest.fixture
def ledger(store_db: StoreDB) -> LedgerStore:
    return LedgerStore(store_db.engine)


async def _books_balance(db: StoreDB) -> None:
    assert await ledger_violations(db.engine) == []


async def test_add_credits_returns_new_balance(accounts: AccountStore, ledger: LedgerStore) -> None:
    account = await accounts.create("acme", "h", credits=100)
    assert await ledger.add_credits("acme", 250) == 350
    assert await ledger.add_credits("acme", 50, kind="refund", note="msg 7", message_id=7) == 400
    assert await ledger.balance("acme") == 400
    entries = await ledger.entries(account["id"])
    assert (entries[0]["kind"], entries[0]["message_id"], entries[0]["note"]) == (
        "refund", 7, "msg 7")


@pytest.mark.parametrize("amount", [0, -5])
async def test_add_credits_refuses_non_positive_amounts(
    accounts: AccountStore, ledger: LedgerStore, amount: int
) -> None:
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match="positive"):
        await ledger.add_credits("acme", amount)


async def test_add_credits_refuses_unknown_kind_and_account(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match="kind"):
        await ledger.add_credits("acme", 1, kind="debit")
    with pytest.raises(AccountNotFound):
        await ledger.add_credits("nobody", 1)
    with pytest.raises(AccountNotFound):
        await ledger.balance("nobody")


async def test_transfer_moves_credit_and_writes_both_ledger_rows(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    a = await accounts.create("a", "h", credits=1000)
    b = await accounts.create("b", "h", credits=10)
    assert await ledger.transfer("a", "b", 300) == (700, 310)
    newest_a = (await ledger.entries(a["id"]))[0]
    newest_b = (await ledger.entries(b["id"]))[0]
    assert (newest_a["kind"], newest_a["amount"], newest_a["note"]) == (
        "transfer_out", -300, "to b")
    assert (newest_b["kind"], newest_b["amount"], newest_b["note"]) == (
        "transfer_in", 300, "from a")


async def test_transfer_refuses_overdraft_self_and_unknown(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    await accounts.create("a", "h", credits=100)
    await accounts.create("b", "h")
    with pytest.raises(InsufficientCredit):
        await ledger.transfer("a", "b", 101)
    with pytest.raises(ValueError, match="itself"):
        await ledger.transfer("a", "a", 1)
    with pytest.raises(AccountNotFound, match="nobody"):
        await ledger.transfer("a", "nobody", 1)
    with pytest.raises(AccountNotFound, match="nobody"):
        await ledger.transfer("nobody", "a", 1)
    with pytest.raises(ValueError):
        await ledger.transfer("a", "b", 0)
    assert (await ledger.balance("a"), await ledger.balance("b")) == (100, 0)


async def test_balance_equals_ledger_after_topups_and_transfers(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    a = await accounts.create("a", "h", credits=500)
    b = await accounts.create("b", "h")
    await ledger.add_credits("a", 120)
    await ledger.add_credits("b", 7, kind="auto_topup")
    await ledger.transfer("a", "b", 200)
    await ledger.transfer("b", "a", 50)
    for account in (a, b):
        assert await ledger.total(account["id"]) == await ledger.balance(account["system_id"])
    assert await ledger.balance("a") + await ledger.balance("b") == 627


async def test_concurrent_transfers_never_overdraw(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    a = await accounts.create("a", "h", credits=1000)
    b = await accounts.create("b", "h", credits=300)

    async def attempt(src: str, dst: str) -> bool:
        try:
            await ledger.transfer(src, dst, 100)
        except InsufficientCredit:
            return False
        return True

    # 20 each way at once: some A->B must fail or succeed depending on interleaving, but
    # the total never changes and neither balance may go negative.
    results = await asyncio.gather(
        *(attempt("a", "b") for _ in range(20)), *(attempt("b", "a") for _ in range(20))
    )
    balance_a, balance_b = await ledger.balance("a"), await ledger.balance("b")
    assert balance_a >= 0 and balance_b >= 0
    assert balance_a + balance_b == 1300
    moved = sum(results[:20]) - sum(results[20:])
    assert balance_a == 1000 - 100 * moved
    assert await ledger.total(a["id"]) == balance_a
    assert await ledger.total(b["id"]) == balance_b


async def test_concurrent_drain_stops_exactly_at_zero(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    await accounts.create("a", "h", credits=1000)
    await accounts.create("b", "h")

    async def attempt() -> bool:
        try:
            await ledger.transfer("a", "b", 70)
        except InsufficientCredit:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(20)))
    assert sum(results) == 14  # 14 * 70 = 980, a 15th would need 1050
    assert (await ledger.balance("a"), await ledger.balance("b")) == (20, 980)


async def test_auto_topup_respects_threshold_and_monthly_cap(
    store_db: StoreDB, accounts: AccountStore, ledger: LedgerStore
) -> None:
    acme = await accounts.create(
        "acme", "h", credits=500,
        settings={"auto_topup_threshold": 100, "auto_topup_amount": 1000,
                  "auto_topup_monthly_cap": 2000},
    )
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert await ledger.auto_topup(acme["id"], now) is None  # 500 > threshold 100
    await ledger.transfer("acme", await _sink(accounts), 450)
    assert await ledger.auto_topup(acme["id"], now) == 1000
    assert await ledger.balance("acme") == 1050
    assert await ledger.auto_topup(acme["id"], now) is None  # back above the threshold
    await ledger.transfer("acme", "sink", 1000)
    assert await ledger.auto_topup(acme["id"], now) == 1000  # 2000 of 2000 used
    await ledger.transfer("acme", "sink", 1000)
    assert await ledger.auto_topup(acme["id"], now) is None  # the cap holds this month
    next_month = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    assert await ledger.auto_topup(acme["id"], next_month) == 1000
    kinds = [e["kind"] for e in await ledger.entries(acme["id"])]
    assert kinds.count("auto_topup") == 3
    await _books_balance(store_db)


async def _sink(accounts: AccountStore) -> str:
    await accounts.create("sink", "h")
    return "sink"


async def test_concurrent_auto_topups_add_once(
    store_db: StoreDB, accounts: AccountStore, ledger: LedgerStore
) -> None:
    acme = await accounts.create(
        "acme", "h", settings={"auto_topup_threshold": 0, "auto_topup_amount": 100},
    )
    results = await asyncio.gather(*(ledger.auto_topup(acme["id"]) for _ in range(10)))
    assert sorted(results, key=str) == [100] + [None] * 9
    assert await ledger.balance("acme") == 100
    await _books_balance(store_db)


async def test_transfers_and_batched_submits_never_overdraw(
    store_db: StoreDB, accounts: AccountStore, ledger: LedgerStore, make_writer: MakeWriter
) -> None:
    """Transfers both ways and group-committed submits on both accounts, all at once."""
    a = await accounts.create("a", "h", credits=5_000)
    b = await accounts.create("b", "h", credits=5_000)
    writer = await make_writer(max_batch=50)
    rng = random.Random(4)
    next_id = iter(range(1, 1_000_000))

    async def submit(account_id: int) -> bool:
        try:
            await writer.accept(new_message(next(next_id), account_id, cost=rng.randint(1, 90)))
        except InsufficientCredit:
            return False
        return True

    async def transfer(src: str, dst: str) -> bool:
        try:
            await ledger.transfer(src, dst, rng.randint(1, 400))
        except InsufficientCredit:
            return False
        return True

    jobs = []
    for _ in range(150):
        jobs.append(submit(a["id"]))
        jobs.append(submit(b["id"]))
    for _ in range(30):
        jobs.append(transfer("a", "b"))
        jobs.append(transfer("b", "a"))
    rng.shuffle(jobs)
    results = await asyncio.gather(*jobs)
    assert any(results) and not all(results)  # both outcomes happened: credit ran out
    for name in ("a", "b"):
        assert await ledger.balance(name) >= 0
    async with store_db.engine.connect() as conn:
        costs = (await conn.execute(sa.select(sa.func.sum(messages.c.cost)))).scalar_one()
        debits = (
            await conn.execute(
                sa.select(sa.func.sum(ledger_table.c.amount))
                .where(ledger_table.c.kind == "debit")
            )
        ).scalar_one()
    assert int(costs) == -int(debits)
    assert await ledger.balance("a") + await ledger.balance("b") == 10_000 - int(costs)
    await _books_balance(store_db)

"""Account control in the store, on SQLite and PostgreSQL: per-account settings, senders,
STOP list, rates, IP cap, automatic top-up, history, retention, and the money invariants
under concurrent transfers and batched submits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import StoreDB, new_message

from store.accounts import AccountStore
from store.batcher import WriteBehindBatcher
from store.errors import (
    AccountNotFound,
    DuplicateSender,
    InsufficientCredit,
    RateNotFound,
    SenderNotFound,
    StopEntryNotFound,
    TooManyAllowedIps,
)
from store.history import HistoryFilter, HistoryStore
from store.invariants import ledger_violations
from store.rates import RateStore
from store.tables import ledger, messages

store_db = store_fixtures.store_db


@pytest.fixture
def store(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


@pytest.fixture(autouse=True)
async def _books_balance_after_every_test(
    request: pytest.FixtureRequest, store_db: StoreDB
) -> AsyncIterator[None]:
    """The money invariants after every scenario (but the one that breaks them on purpose)."""
    yield
    if request.node.name.startswith("test_invariant_check_notices"):
        return
    assert await ledger_violations(store_db.engine) == []


async def _books_balance(db: StoreDB) -> None:
    assert await ledger_violations(db.engine) == []


async def test_new_account_has_default_settings_and_given_senders(store: AccountStore) -> None:
    await store.create(
        "acme", "h", settings={"window_size": 5, "stop_mode": "refuse"},
        sender_list=[{"address": "ACME", "kind": "alphanumeric", "state": "enabled"}],
    )
    row = await store.get("acme")
    assert row is not None
    assert (row["window_size"], row["throughput"], row["bind_limit"]) == (5, 20.0, 1)
    assert (row["gsm_packed"], row["max_segments"], row["keep_bodies"]) == (False, 8, True)
    assert (row["dlr_retention_days"], row["stop_mode"]) == (7, "refuse")
    assert [(s["address"], s["kind"], s["state"]) for s in row["senders"]] == [
        ("ACME", "alphanumeric", "enabled")
    ]
    assert row["auto_topup_threshold"] is None and row["low_balance_threshold"] is None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"window_size": 0}, "window"),
        ({"throughput": -1.0}, "throughput"),
        ({"stop_mode": "drop"}, "stop_mode"),
        ({"gsm_packed": "yes"}, "gsm_packed"),
        ({"auto_topup_amount": 0}, "auto_topup_amount"),
        ({"colour": "red"}, "unknown account setting"),
        ({"contact_email": "not-an-address"}, "e-mail"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    store: AccountStore, values: dict, message: str
) -> None:
    await store.create("acme", "h")
    with pytest.raises(ValueError, match=message):
        await store.update_settings("acme", values)
    row = await store.get("acme")
    assert row is not None and row["window_size"] == 10 and row["stop_mode"] == "dlr"


async def test_settings_update_unknown_account(store: AccountStore) -> None:
    with pytest.raises(AccountNotFound):
        await store.update_settings("nobody", {"window_size": 3})


async def test_sender_lifecycle(store: AccountStore) -> None:
    await store.create("acme", "h")
    added = await store.add_sender("acme", "ACME", "alphanumeric")
    assert added["state"] == "pending"
    with pytest.raises(DuplicateSender):
        await store.add_sender("acme", "ACME", "alphanumeric")
    enabled = await store.set_sender_state("acme", "ACME", "enabled", "documents checked")
    assert (enabled["state"], enabled["comment"]) == ("enabled", "documents checked")
    kept = await store.set_sender_state("acme", "ACME", "disabled")
    assert kept["comment"] == "documents checked"
    with pytest.raises(ValueError, match="state"):
        await store.set_sender_state("acme", "ACME", "approved")
    with pytest.raises(SenderNotFound):
        await store.set_sender_state("acme", "OTHER", "enabled")
    await store.remove_sender("acme", "ACME")
    assert await store.list_senders("acme") == []
    with pytest.raises(SenderNotFound):
        await store.remove_sender("acme", "ACME")


async def test_stop_list_add_is_idempotent_and_remove_checks(store: AccountStore) -> None:
    await store.create("acme", "h")
    assert await store.add_stop("acme", "33612345678", "replied STOP") is True
    assert await store.add_stop("acme", "33612345678") is False
    assert [e["destination"] for e in await store.list_stop("acme")] == ["33612345678"]
    assert (await store.get("acme"))["stop_list"] == ["33612345678"]
    await store.remove_stop("acme", "33612345678")
    with pytest.raises(StopEntryNotFound):
        await store.remove_stop("acme", "33612345678")


async def test_allowed_ip_cap_is_enforced(store: AccountStore) -> None:
    await store.create("acme", "h", allowed_ips=["10.0.0.1", "10.0.0.2"])
    with pytest.raises(TooManyAllowedIps, match="maximum of 2"):
        await store.add_allowed_ip("acme", "10.0.0.3", max_count=2)
    with pytest.raises(TooManyAllowedIps):
        await store.create("wide", "h", allowed_ips=["10.0.0.1", "10.0.0.2"], max_allowed_ips=1)
    await store.add_allowed_ip("acme", "10.0.0.3", max_count=3)
    assert len((await store.get("acme"))["allowed_ips"]) == 3


async def test_rates_global_and_per_account(store_db: StoreDB, store: AccountStore) -> None:
    rates = RateStore(store_db.engine)
    await store.create("acme", "h")
    assert await rates.set_rate("33", 7) is None
    assert await rates.set_rate("33", 8) == 7
    await rates.set_rate("336", 9)
    await rates.set_rate("33", 5, "acme")
    assert [(r["prefix"], r["price"]) for r in await rates.list_rates()] == [("33", 8), ("336", 9)]
    assert [(r["prefix"], r["price"]) for r in await rates.list_rates("acme")] == [("33", 5)]
    loaded = {(r["account_id"] is None, r["prefix"]): r["price"] for r in await rates.load_all()}
    assert loaded == {(True, "33"): 8, (True, "336"): 9, (False, "33"): 5}
    assert await rates.remove_rate("336") == 9
    with pytest.raises(RateNotFound):
        await rates.remove_rate("336")
    with pytest.raises(ValueError, match="prefix"):
        await rates.set_rate("33a", 1)
    with pytest.raises(ValueError, match="price"):
        await rates.set_rate("33", -1)
    with pytest.raises(AccountNotFound):
        await rates.set_rate("33", 1, "nobody")


async def test_auto_topup_respects_threshold_and_monthly_cap(
    store_db: StoreDB, store: AccountStore
) -> None:
    acme = await store.create(
        "acme", "h", credits=500,
        settings={"auto_topup_threshold": 100, "auto_topup_amount": 1000,
                  "auto_topup_monthly_cap": 2000},
    )
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert await store.auto_topup(acme["id"], now) is None  # 500 > threshold 100
    await store.transfer("acme", await _sink(store), 450)
    assert await store.auto_topup(acme["id"], now) == 1000
    assert await store.balance("acme") == 1050
    assert await store.auto_topup(acme["id"], now) is None  # back above the threshold
    await store.transfer("acme", "sink", 1000)
    assert await store.auto_topup(acme["id"], now) == 1000  # 2000 of 2000 used
    await store.transfer("acme", "sink", 1000)
    assert await store.auto_topup(acme["id"], now) is None  # the cap holds this month
    next_month = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    assert await store.auto_topup(acme["id"], next_month) == 1000
    kinds = [e["kind"] for e in await store.ledger_entries(acme["id"])]
    assert kinds.count("auto_topup") == 3
    await _books_balance(store_db)


async def _sink(store: AccountStore) -> str:
    await store.create("sink", "h")
    return "sink"


async def test_concurrent_auto_topups_add_once(store_db: StoreDB, store: AccountStore) -> None:
    acme = await store.create(
        "acme", "h", settings={"auto_topup_threshold": 0, "auto_topup_amount": 100},
    )
    results = await asyncio.gather(*(store.auto_topup(acme["id"]) for _ in range(10)))
    assert sorted(results, key=str) == [100] + [None] * 9
    assert await store.balance("acme") == 100
    await _books_balance(store_db)


async def _fill_history(db: StoreDB, account_id: int, n: int, start: datetime) -> None:
    rows = []
    for i in range(n):
        msg = new_message(
            10_000 + i, account_id, cost=0, created_at=start + timedelta(minutes=i),
            source_addr="ACME" if i % 2 else "33700000000", dest_addr=f"3361000{i:04d}",
            status="DELIVERED" if i % 3 else "UNDELIVERABLE",
        )
        rows.append({f: getattr(msg, f) for f in msg.__dataclass_fields__})
    async with db.engine.begin() as conn:
        await conn.execute(messages.insert(), rows)


async def test_history_filters_pages_and_delete(store_db: StoreDB, store: AccountStore) -> None:
    acme = await store.create("acme", "h")
    other = await store.create("other", "h")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await _fill_history(store_db, acme["id"], 30, start)
    history = HistoryStore(store_db.engine)
    mine = HistoryFilter(account_id=acme["id"])
    assert await history.count(mine) == 30
    assert await history.count(HistoryFilter(account_id=other["id"])) == 0
    assert await history.count(HistoryFilter(account_id=acme["id"], sender="ACME")) == 15
    assert await history.count(HistoryFilter(receiver="33610000007")) == 1
    assert await history.count(HistoryFilter(status="UNDELIVERABLE")) == 10
    window = HistoryFilter(since=start + timedelta(minutes=10), until=start + timedelta(minutes=20))
    assert [r["id"] for r in await history.query(window)] == list(range(10_010, 10_020))
    assert len(await history.query(HistoryFilter(message_id=10_005))) == 1
    pages = [len(p) async for p in history.pages(mine, page_size=7)]
    assert pages == [7, 7, 7, 7, 2]
    assert (await history.query(mine, limit=1))[0]["system_id"] == "acme"
    # Another account cannot delete acme's rows; unknown ids are just not counted.
    assert await history.delete(other["id"], [10_000, 10_001]) == 0
    assert await history.delete(acme["id"], [10_000, 10_001, 999]) == 2
    assert await history.count(mine) == 28
    async with store_db.engine.begin() as conn:
        await conn.execute(
            messages.update().where(messages.c.id == 10_002).values(status="ENROUTE")
        )
    assert await history.delete(acme["id"], [10_002]) == 0  # still in flight: kept
    with pytest.raises(ValueError, match="status"):
        HistoryFilter(status="LOST")
    with pytest.raises(ValueError, match="empty"):
        HistoryFilter(since=start, until=start)


async def test_purge_keeps_recent_and_in_flight_messages(
    store_db: StoreDB, store: AccountStore
) -> None:
    acme = await store.create("acme", "h")
    old = datetime(2025, 1, 1, tzinfo=UTC)
    await _fill_history(store_db, acme["id"], 12, old)
    async with store_db.engine.begin() as conn:
        await conn.execute(
            messages.update().where(messages.c.id == 10_000).values(status="ENROUTE")
        )
        await conn.execute(
            messages.update().where(messages.c.id == 10_011).values(created_at=datetime.now(UTC))
        )
    history = HistoryStore(store_db.engine)
    purged = await history.purge(datetime(2026, 1, 1, tzinfo=UTC), batch=4)
    assert purged["messages"] == 10
    left = [r["id"] for r in await history.query(HistoryFilter())]
    assert left == [10_000, 10_011]


async def test_transfers_and_batched_submits_never_overdraw(
    store_db: StoreDB, store: AccountStore
) -> None:
    """Transfers both ways and group-committed submits on both accounts, all at once."""
    a = await store.create("a", "h", credits=5_000)
    b = await store.create("b", "h", credits=5_000)
    batcher = WriteBehindBatcher(store_db.engine, max_batch=50, max_delay=0.002)
    await batcher.start()
    rng = random.Random(4)
    next_id = iter(range(1, 1_000_000))

    async def submit(account_id: int) -> bool:
        try:
            await batcher.submit(new_message(next(next_id), account_id, cost=rng.randint(1, 90)))
        except InsufficientCredit:
            return False
        return True

    async def transfer(src: str, dst: str) -> bool:
        try:
            await store.transfer(src, dst, rng.randint(1, 400))
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
    try:
        results = await asyncio.gather(*jobs)
    finally:
        await batcher.stop()
    assert any(results) and not all(results)  # both outcomes happened: credit ran out
    for name in ("a", "b"):
        assert await store.balance(name) >= 0
    async with store_db.engine.connect() as conn:
        costs = (await conn.execute(sa.select(sa.func.sum(messages.c.cost)))).scalar_one()
        debits = (
            await conn.execute(
                sa.select(sa.func.sum(ledger.c.amount)).where(ledger.c.kind == "debit")
            )
        ).scalar_one()
    assert int(costs) == -int(debits)
    assert await store.balance("a") + await store.balance("b") == 10_000 - int(costs)
    await _books_balance(store_db)


async def test_invariant_check_notices_a_broken_ledger(
    store_db: StoreDB, store: AccountStore
) -> None:
    acme = await store.create("acme", "h", credits=100)
    async with store_db.engine.begin() as conn:
        await conn.execute(
            ledger.insert().values(account_id=acme["id"], kind="adjust", amount=5,
                                   created_at=datetime.now(UTC))
        )
    problems = await ledger_violations(store_db.engine)
    assert problems == ["acme: balance 100 != ledger sum 105"]

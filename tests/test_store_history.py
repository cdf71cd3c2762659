"""HistoryStore on SQLite and PostgreSQL: filters, pages, deletion by the owner only, and
the purge that keeps recent and in-flight messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import store_fixtures
from store_fixtures import StoreDB, new_message

from store.accounts import AccountStore
from store.history import HistoryFilter, HistoryStore
from store.tables import messages

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


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


async def test_history_filters_pages_and_delete(store_db: StoreDB, accounts: AccountStore) -> None:
    acme = await accounts.create("acme", "h")
    other = await accounts.create("other", "h")
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
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h")
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

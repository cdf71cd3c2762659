"""The outbox repository (store/outbox) on SQLite and PostgreSQL.

Claims must never hand one message to two workers (two engines stand for two nodes),
leases must come back after a crash, and cancel/replace must not touch a message that
is on its way upstream. Messages are written by the store writer with a claim lease of
zero: due at once, as if the writer's node had let them go.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import store_fixtures
from store_fixtures import MakeWriter, StoreDB, new_message

from store import tables
from store.outbox import OutboxStore
from store.writer import StoreWriter

store_db = store_fixtures.store_db
make_writer = store_fixtures.make_writer
LEASE = timedelta(seconds=60)


async def _account(db: StoreDB, system_id: str = "acme") -> int:
    # Straight into the table: these tests are about the outbox, not account rules.
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        result = await conn.execute(
            tables.accounts.insert().values(
                system_id=system_id, password_hash="x", balance=10_000, created_at=now,
                updated_at=now,
            )
        )
    return int(result.inserted_primary_key[0])


async def _writer(make_writer: MakeWriter) -> StoreWriter:
    return await make_writer(node="writer", claim_lease=timedelta(0))


async def _messages(writer: StoreWriter, account_id: int, n: int) -> list[int]:
    ids = list(range(1000, 1000 + n))
    await asyncio.gather(*(writer.accept(new_message(i, account_id, cost=0)) for i in ids))
    return ids


async def test_two_nodes_claiming_at_once_never_share_a_message(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    account_id = await _account(store_db)
    ids = await _messages(await _writer(make_writer), account_id, 200)
    other = store_db.other_engine()
    try:
        a, b = OutboxStore(store_db.engine), OutboxStore(other)
        now = datetime.now(UTC)
        got_a, got_b = [], []
        for _ in range(10):
            ra, rb = await asyncio.gather(
                a.claim("node-a", now, LEASE, 15), b.claim("node-b", now, LEASE, 15)
            )
            got_a += [r["id"] for r in ra]
            got_b += [r["id"] for r in rb]
        assert not set(got_a) & set(got_b)
        assert sorted(got_a + got_b) == ids
        # A lease blocks every further claim until it runs out.
        assert await a.claim("node-a", now, LEASE, 500) == []
        later = now + LEASE + timedelta(seconds=1)
        assert len(await b.claim("node-b", later, LEASE, 500)) == 200
    finally:
        await other.dispose()


async def test_restart_releases_own_claims_and_backoff_is_honoured(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    account_id = await _account(store_db)
    writer = await _writer(make_writer)
    ids = await _messages(writer, account_id, 3)
    outbox = OutboxStore(store_db.engine)
    now = datetime.now(UTC)
    assert len(await outbox.claim("node-0", now, LEASE, 10)) == 3
    assert await outbox.release_node("node-0", now) == 3
    rows = await outbox.claim("node-0", now, LEASE, 10)
    assert [r["attempts"] for r in rows] == [0, 0, 0]
    await writer.retry(ids[0], now + timedelta(seconds=30), "ESME_RTHROTTLED", counts=True)
    await writer.handed(ids[1], "smsc-a", "up-1", now)
    assert await outbox.release_node("node-0", now) == 1  # ids[2] only
    due = await outbox.claim("node-0", now, LEASE, 10)
    assert [r["id"] for r in due] == [ids[2]]  # ids[0] backs off, ids[1] left
    later = await outbox.claim("node-0", now + timedelta(seconds=31), LEASE, 10)
    assert [(r["id"], r["attempts"]) for r in later] == [(ids[0], 1)]


async def test_scheduled_messages_wait_and_expired_ones_are_handed_back(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    account_id = await _account(store_db)
    now = datetime.now(UTC)
    writer = await _writer(make_writer)
    await writer.accept(new_message(1, account_id, schedule_at=now + timedelta(hours=1)))
    await writer.accept(new_message(2, account_id, expires_at=now - timedelta(minutes=1)))
    # A new message is due from its created_at on: look after both were written.
    rows = await OutboxStore(store_db.engine).claim("n", datetime.now(UTC), LEASE, 10)
    assert [r["id"] for r in rows] == [2]


async def test_cancel_and_replace_only_touch_messages_not_in_flight(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    account_id = await _account(store_db)
    ids = await _messages(await _writer(make_writer), account_id, 2)
    outbox = OutboxStore(store_db.engine)
    now = datetime.now(UTC)
    await outbox.claim("n", now, LEASE, 1)  # ids[0] is being sent
    assert await outbox.cancel(account_id, now, message_id=ids[0]) == []
    assert not await outbox.replace(account_id, ids[0], now, {"body": b"new"})
    assert await outbox.replace(account_id, ids[1], now, {"body": b"new"})
    assert await outbox.cancel(account_id + 1, now, message_id=ids[1]) == []  # not theirs
    assert [r["id"] for r in await outbox.cancel(account_id, now, message_id=ids[1])] == [ids[1]]
    assert await outbox.cancel(account_id, now, message_id=ids[1]) == []
    assert await outbox.waiting() == 1

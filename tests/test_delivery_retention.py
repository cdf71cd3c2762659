"""The retention job purges history older than the configured age, on both engines, and
its loop keeps running after a failed pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import store_fixtures
from gw_helpers import gateway_settings
from store_fixtures import MakeWriter, StoreDB, new_message

from gateway.delivery.retention import RetentionJob, run_retention
from store.accounts import AccountStore
from store.history import HistoryFilter, HistoryStore
from store.invariants import ledger_violations
from store.tables import deliveries, messages
from store.writer import DeliveryRow

store_db = store_fixtures.store_db
make_writer = store_fixtures.make_writer

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


async def _message_at(db: StoreDB, message_id: int, account_id: int, at: datetime,
                      status: str = "DELIVERED") -> None:
    msg = new_message(message_id, account_id, cost=0, created_at=at, status=status)
    async with db.engine.begin() as conn:
        await conn.execute(messages.insert(), [{f: getattr(msg, f) for f in
                                                msg.__dataclass_fields__}])


async def test_run_retention_purges_only_what_is_older_than_the_setting(
    store_db: StoreDB, make_writer: MakeWriter, tmp_path
) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h")
    settings = gateway_settings(tmp_path, history_retention_days=30)
    await _message_at(store_db, 1, acme["id"], NOW - timedelta(days=31))
    await _message_at(store_db, 2, acme["id"], NOW - timedelta(days=29))
    await _message_at(store_db, 3, acme["id"], NOW - timedelta(days=90), status="ENROUTE")
    writer = await make_writer()
    old = NOW - timedelta(days=40)
    # Message 1's receipt, delivered; an MO of as long ago whose delivery still waits.
    done = DeliveryRow(101, acme["id"], 1, "dlr", b"x", old, old, old + timedelta(days=7))
    await writer.outcome(1, "DELIVERED", 0, None, delivery=done)
    await writer.delivered(done.id)
    mo = new_message(4, acme["id"], cost=0, created_at=old, direction="MO", status="DELIVERED")
    waiting = DeliveryRow(102, acme["id"], 4, "mo", b"y", old, old, NOW + timedelta(days=7))
    await writer.inbound(mo, waiting)
    purged = await run_retention(store_db.engine, settings, NOW)
    assert purged == {"messages": 2, "deliveries": 1}
    left = [r["id"] for r in await HistoryStore(store_db.engine).query(HistoryFilter())]
    assert left == [2, 3]  # recent, and in flight however old
    async with store_db.engine.connect() as conn:
        kept = (await conn.execute(sa.select(deliveries.c.id))).scalars().all()
    assert kept == [waiting.id]  # still pending: it may yet reach the customer
    assert await run_retention(store_db.engine, settings, NOW) == {"messages": 0,
                                                                   "deliveries": 0}
    assert await ledger_violations(store_db.engine) == []


async def test_retention_job_runs_every_interval_until_stopped(
    store_db: StoreDB, tmp_path
) -> None:
    acme = await AccountStore(store_db.engine).create("acme", "h")
    settings = gateway_settings(tmp_path, history_retention_days=1, retention_interval=0.05)
    clock = [NOW]
    job = RetentionJob(store_db.engine, settings, clock=lambda: clock[0])
    job.start()
    try:
        await _message_at(store_db, 1, acme["id"], NOW - timedelta(hours=1))
        passes = job.passes
        while job.passes < passes + 2:
            await asyncio.sleep(0.01)
        assert await HistoryStore(store_db.engine).count(HistoryFilter()) == 1
        clock[0] = NOW + timedelta(days=2)
        passes = job.passes
        while job.passes < passes + 2:
            await asyncio.sleep(0.01)
        assert await HistoryStore(store_db.engine).count(HistoryFilter()) == 0
    finally:
        await job.stop()
    stopped_at = job.passes
    await asyncio.sleep(0.15)
    assert job.passes == stopped_at

"""store.changes on the real PostgreSQL: notices reach every listener, a listener that
lost its connection asks for a full reload once it is back; on SQLite nothing is sent."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import store_fixtures

from store.changes import CHANNEL, RELOAD_ALL, ChangeFeed, account_notice
from store.engine import make_engine

gateway_store = store_fixtures.gateway_store


async def _heard(queue: asyncio.Queue[str], timeout: float = 5.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_notices_reach_listeners_and_a_lost_listener_asks_for_a_reload(gateway_store):
    engine = make_engine(gateway_store)
    feed = ChangeFeed(engine, retry_max=0.5)
    try:
        if not feed.shared:
            # SQLite: one node, nothing to tell; publishing is harmless and listening idle.
            await feed.publish(account_notice("acme"))
            feed.listen(lambda payload: pytest.fail(f"heard {payload!r} on SQLite"))
            assert not feed.connected.is_set()
            return
        heard: asyncio.Queue[str] = asyncio.Queue()
        feed.listen(heard.put_nowait)
        await asyncio.wait_for(feed.connected.wait(), 10)
        await ChangeFeed(engine).publish(account_notice("acme"))
        assert await _heard(heard) == "account:acme"

        # The listening connection is cut: once back, the listener reloads everything.
        admin = await asyncpg.connect(gateway_store.replace("+asyncpg", ""))
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query ILIKE $1 AND pid <> pg_backend_pid()"
                    " AND datname = current_database()", f"%LISTEN%{CHANNEL}%")
        finally:
            await admin.close()
        assert cut == 1
        assert await _heard(heard, 10) == RELOAD_ALL
        await ChangeFeed(engine).publish(account_notice("again"))
        assert await _heard(heard) == "account:again"
    finally:
        await feed.close()
        await engine.dispose()

"""A customer that leaves while its receipts are being produced gets every one, once,
when it binds again: on the same gateway, and across a gateway restart."""

from __future__ import annotations

import asyncio
import logging

import store_fixtures
from delivery_helpers import Esme, ready_account, submit_pdu, wait_for
from sqlalchemy import func, select

from gateway.app import Gateway
from store import tables

N = 200

# Each test runs on SQLite and on PostgreSQL.
gateway_store = store_fixtures.gateway_store


async def _all_done(gw: Gateway) -> bool:
    async with gw.engine.connect() as conn:
        waiting = (
            await conn.execute(
                select(func.count()).where(tables.messages.c.status != "DELIVERED")
            )
        ).scalar()
    return waiting == 0


async def _leave_during_receipts(gw: Gateway, account: dict) -> tuple[set[str], Esme]:
    """Submit N in two halves; unbind once the first half's receipts are flowing and the
    second half's are still being produced upstream."""
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    pdus = [submit_pdu(f"336{i:08d}", f"m{i}") for i in range(N)]
    resps = await esme.submit_many(pdus[: N // 2])
    await wait_for(lambda: len(esme.receipts) >= 10, 10, "the first receipts")
    resps += await esme.submit_many(pdus[N // 2 :])
    await esme.leave()
    assert all(r.command_status == 0 for r in resps)
    assert len(esme.receipts) < N, "the customer left too late to test anything"
    return {r.message_id for r in resps}, esme


async def _store_has_everything(gw: Gateway) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await _all_done(gw):
        assert loop.time() < deadline, "messages never reached a final state"
        await asyncio.sleep(0.05)


def assert_exactly_once(ours: set[str], *sessions: Esme) -> None:
    seen: dict[str, int] = {}
    for esme in sessions:
        for mid, receipts in esme.receipts.items():
            seen[mid] = seen.get(mid, 0) + len(receipts)
    assert set(seen) == ours
    assert {n for n in seen.values()} == {1}, "some receipt arrived twice"


async def test_pending_receipts_arrive_once_after_rebind(make_gateway, gateway_store):
    # Latency spread over the submit burst: receipts keep coming after the customer left.
    gw = await make_gateway(simulator_delay_ms=300, database_url=gateway_store)
    account = await ready_account(gw)
    ours, first = await _leave_during_receipts(gw, account)
    await _store_has_everything(gw)
    second = await Esme.bind(*gw.endpoints.smpp, account)
    await wait_for(lambda: len(first.receipts) + len(second.receipts) >= N, 20)
    await asyncio.sleep(1.5)  # a duplicate would come with the next sweep
    await second.close()
    assert_exactly_once(ours, first, second)


async def test_pending_receipts_arrive_once_after_a_gateway_restart(
    make_gateway, tmp_path, caplog, gateway_store
):
    caplog.set_level(logging.INFO, logger="gateway.app")
    state = tmp_path / "state"
    gw = await make_gateway(state_dir=state, simulator_delay_ms=600,
                            database_url=gateway_store)
    account = await ready_account(gw)
    ours, first = await _leave_during_receipts(gw, account)
    # Stopped while receipts are still being produced: the in-process upstream's
    # memory goes with the process, the store keeps the rest.
    await gw.stop()
    gw = await make_gateway(state_dir=state, simulator_delay_ms=600,
                            database_url=gateway_store)
    await _store_has_everything(gw)
    second = await Esme.bind(*gw.endpoints.smpp, account)
    await wait_for(lambda: len(first.receipts) + len(second.receipts) >= N, 20)
    await asyncio.sleep(1.5)
    await second.close()
    assert_exactly_once(ours, first, second)
    await gw.stop()
    assert any("re-driving" in r.getMessage() for r in caplog.records), (
        "the restart found nothing in flight upstream; the test lost its point")

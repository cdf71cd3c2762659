"""The upstream SMSC goes away for 30 seconds under load and comes back.

Every acknowledged message reaches the upstream exactly once, and every receipt reaches
the customer exactly once. This is the one slow test (about 40 s): the outage has to
outlast the connector's back-off, enquire_link and response timers to mean anything.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import store_fixtures
from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for

OUTAGE_S = 30.0
RATE = 40  # submit_sm per second from the customer, all along

# On SQLite and on PostgreSQL.
gateway_store = store_fixtures.gateway_store


async def _steady_load(esme: Esme, acked: list[str], stop: asyncio.Event) -> None:
    i = 0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        resps = await esme.submit_many(
            [submit_pdu(f"336{i + k:08d}", f"out {i + k}") for k in range(RATE // 10)]
        )
        assert all(r.command_status == 0 for r in resps), "store-and-forward refused a message"
        acked.extend(r.message_id for r in resps)
        i += RATE // 10
        await asyncio.sleep(max(0.0, 0.1 - (loop.time() - started)))


async def test_upstream_down_for_30s_under_load_loses_and_repeats_nothing(
    make_gateway, tmp_path, gateway_store
):
    sim = SimProcess(tmp_path, "--latency-ms", "200").start()
    url = sim.url + "?reconnect_min=0.5&reconnect_max=4&enquire_link_interval=2&response_timeout=3"
    gw = await make_gateway(upstream_url=url, database_url=gateway_store)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        acked: list[str] = []
        stop = asyncio.Event()
        load = asyncio.create_task(_steady_load(esme, acked, stop))
        await asyncio.sleep(3)
        before = len(acked)
        assert sim.stop() == 0
        await asyncio.sleep(1)
        assert not gw.connectors["default"].is_up
        await asyncio.sleep(OUTAGE_S - 1)
        during = len(acked) - before
        sim.start()  # the same port, and the receipts it kept in its state file
        await asyncio.sleep(3)
        stop.set()
        await load
        ours = set(acked)
        await wait_for(lambda: ours <= set(esme.receipts), 60, "every receipt after the outage")
        await asyncio.sleep(1.5)  # a repeated receipt would come with the next sweep
        await esme.close()
    finally:
        await gw.stop()
        sim.stop()
    assert during > RATE * OUTAGE_S * 0.5, "the load did not go on through the outage"
    assert len(ours) == len(acked)
    repeated = [m for m, r in esme.receipts.items() if len(r) != 1]
    assert not repeated, f"{len(repeated)} receipts arrived more than once"
    assert set(esme.receipts) == ours
    at_upstream = Counter(m["text"] for m in sim.accepted())
    assert len(at_upstream) == len(ours)
    assert set(at_upstream.values()) == {1}, "a message reached the upstream twice"
    assert gw.connectors["default"].connects == 2

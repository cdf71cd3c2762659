"""Two real `smppgw serve` nodes on one PostgreSQL database: a change made through either
node's admin socket reaches the other within 2 seconds (LISTEN/NOTIFY), and a change
that no notice announced is picked up by the periodic reload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import store_fixtures
from cluster_helpers import PROPAGATION, Node, start_node

from pdu.status import CommandStatus as S

gateway_store = store_fixtures.gateway_store
pytestmark = pytest.mark.parametrize("gateway_store", ["postgresql"], indirect=True)


async def _start_nodes(database_url: str, tmp_path: Path, reload_interval: float
                       ) -> AsyncIterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        for node_id in (1, 2):
            started.append(await start_node(
                database_url, tmp_path / f"node{node_id}", node_id,
                SMPPGW_DIRECTORY_RELOAD_INTERVAL=str(reload_interval)))
        yield started[0], started[1]
    finally:
        for node in started:
            assert node.process.stop() == 0


@pytest.fixture
async def nodes(gateway_store: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes whose periodic reload is far off: what they see, they were told."""
    async for pair in _start_nodes(gateway_store, tmp_path, 600):
        yield pair


@pytest.fixture
async def reloading_nodes(gateway_store: str, tmp_path: Path
                          ) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes that re-read the whole directory every second."""
    async for pair in _start_nodes(gateway_store, tmp_path, 1):
        yield pair


async def _within(seconds: float, check) -> float:
    """Seconds until `await check()` is true; fails after `seconds`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        assert loop.time() - start < seconds, f"not seen within {seconds} s"
        await asyncio.sleep(0.1)
    return loop.time() - start


async def test_an_account_created_on_one_node_binds_on_the_other(nodes):
    a, b = nodes
    created = await _create(a)
    sid, password = created["system_id"], created["password"]
    took = await _within(PROPAGATION, lambda: _binds(b, sid, password))
    print(f"\naccount seen on node B after {took * 1000:.0f} ms")
    assert took < PROPAGATION
    assert await b.bind(sid, password) == S.ESME_ROK


async def test_a_password_rotated_on_one_node_is_refused_on_the_other(nodes):
    a, b = nodes
    created = await _create(a)
    sid, old = created["system_id"], created["password"]
    await _within(PROPAGATION, lambda: _binds(b, sid, old))
    rotated = await b.admin("password", "rotate", sid)
    new = rotated["password"]
    await _within(PROPAGATION, lambda: _refused(a, sid, old, S.ESME_RINVPASWD))
    assert await a.bind(sid, new) == S.ESME_ROK


async def test_a_change_no_notice_announced_is_seen_by_the_periodic_reload(
    reloading_nodes, gateway_store
):
    """A notice can be lost (a node's listening connection down at the wrong moment):
    a change written behind the nodes' backs shows within the reload interval (1 s)."""
    a, b = reloading_nodes
    created = await _create(a)
    sid, password = created["system_id"], created["password"]
    await _within(PROPAGATION, lambda: _binds(b, sid, password))
    conn = await asyncpg.connect(gateway_store.replace("+asyncpg", ""))
    try:
        await conn.execute("UPDATE accounts SET status = 'suspended' WHERE system_id = $1", sid)
    finally:
        await conn.close()
    for node in (a, b):
        took = await _within(PROPAGATION + 1.0,
                             lambda node=node: _refused(node, sid, password, S.ESME_RBINDFAIL))
        assert took < PROPAGATION + 1.0
        assert await node.bind(sid, password) == S.ESME_RBINDFAIL


async def _create(node: Node) -> dict:
    # Room for the polling binds, each closed at once: a refusal must mean the change.
    return await node.admin("account", "create", "--credits", "10", "--allow-ip",
                            "127.0.0.1", "--bind-limit", "50")


async def _binds(node: Node, sid: str, password: str) -> bool:
    status = await node.bind(sid, password)
    assert status in (S.ESME_ROK, S.ESME_RINVSYSID), status
    return status == S.ESME_ROK


async def _refused(node: Node, sid: str, password: str, status: int) -> bool:
    got = await node.bind(sid, password)
    assert got in (S.ESME_ROK, status), got
    return got == status

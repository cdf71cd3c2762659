"""`smppgw admin` on one node acting on sessions bound on another (two real `smppgw
serve` nodes on one PostgreSQL): `sessions kick ID` unbinds exactly that session where
it is, and `account delete` unbinds the account on every node, after which no node
takes its bind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import store_fixtures
from cluster_helpers import Node, bind_when_known, books, start_node
from delivery_helpers import Esme, wait_for

from pdu.codec import EnquireLink
from pdu.status import CommandStatus as S

gateway_store = store_fixtures.gateway_store
pytestmark = pytest.mark.parametrize("gateway_store", ["postgresql"], indirect=True)

NODE_SETTINGS = {"SMPPGW_NODE_HEARTBEAT_INTERVAL": "0.5", "SMPPGW_NODE_TTL": "5"}


@pytest.fixture
async def nodes(gateway_store: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        for node_id in (1, 2):  # one after the other, as test_cluster_nodes does
            started.append(await start_node(gateway_store, tmp_path / f"node{node_id}",
                                            node_id, **NODE_SETTINGS))
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.stop()


async def _listed(node: Node, system_id: str, count: int) -> list[dict]:
    """`sessions list SID --json` on `node`, once it shows `count` sessions."""
    for _ in range(200):
        listed = await node.admin("sessions", "list", system_id)
        if len(listed) == count:
            return listed
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {count} sessions of {system_id}: {listed}")


async def _bind_refused(node: Node, system_id: str, password: str) -> None:
    """The node refuses the bind, once the delete's notice has reached it."""
    for _ in range(100):
        status = await node.bind(system_id, password)
        if status != S.ESME_ROK:
            assert status == S.ESME_RINVSYSID, status
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node.endpoint} still binds the deleted {system_id}")


async def test_a_kick_or_a_delete_on_one_node_unbinds_sessions_on_the_other(
    nodes, gateway_store,
) -> None:
    a, b = nodes
    account = await a.admin("account", "create", "--allow-ip", "127.0.0.1", "--sender",
                            "ACME", "--bind-limit", "2")
    sid = account["system_id"]
    first = await bind_when_known(b, account)
    second = await Esme.bind(*b.endpoint, account)
    listed = await _listed(a, sid, 2)
    ids = {s["id"] for s in listed}
    assert len(ids) == 2 and {s["node"] for s in listed} == {listed[0]["node"]}
    assert all(i.startswith(listed[0]["node"] + "/") for i in ids)
    by_port = {s["peer"].rsplit(":", 1)[1]: s["id"] for s in listed}
    first_id = by_port[str(first.client.writer.get_extra_info("sockname")[1])]
    second_id = (ids - {first_id}).pop()

    kicked = await a.admin("sessions", "kick", first_id)
    assert (kicked["id"], kicked["sessions_unbound"]) == (first_id, 1)
    await wait_for(lambda: first.gone, 30, "the kicked session closed")
    assert [s["id"] for s in await _listed(a, sid, 1)] == [second_id]
    assert (await second.request(EnquireLink())).command_status == S.ESME_ROK

    deleted = await a.admin("account", "delete", sid, "--yes")
    assert deleted["deleted"] is True and deleted["sessions_unbound"] == 1
    await wait_for(lambda: second.gone, 30, "the other node unbound the deleted account")
    for node in (a, b):
        await _bind_refused(node, sid, account["password"])
    for esme in (first, second):
        await esme.close()
    assert await books(gateway_store) == []

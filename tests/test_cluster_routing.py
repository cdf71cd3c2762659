"""Upstreams and routes on two real `smppgw serve` nodes sharing one PostgreSQL: what an
operator adds, stops or routes through one node's `smppgw admin` runs on the other
within the propagation bound, without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import store_fixtures
from cluster_helpers import PROPAGATION, Node, start_node

gateway_store = store_fixtures.gateway_store
pytestmark = pytest.mark.parametrize("gateway_store", ["postgresql"], indirect=True)


@pytest.fixture
async def nodes(gateway_store: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        for node_id in (1, 2):
            started.append(await start_node(gateway_store, tmp_path / f"node{node_id}", node_id,
                                            SMPPGW_DIRECTORY_RELOAD_INTERVAL="600"))
        yield started[0], started[1]
    finally:
        for node in started:
            assert node.process.stop() == 0


async def _upstreams(node: Node) -> dict[str, dict]:
    return {row["name"]: row for row in await node.admin("upstream", "list")}


async def _within(seconds: float, check) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        assert loop.time() - start < seconds, f"not seen within {seconds} s"
        await asyncio.sleep(0.1)


async def test_an_upstream_and_route_added_on_one_node_run_on_the_other(nodes):
    a, b = nodes
    await a.admin("upstream", "add", "sim-2", "--type", "simulator", "--latency-ms", "5")
    await a.admin("route", "set", "44", "sim-2", "simulator")

    async def b_runs_it() -> bool:
        row = (await _upstreams(b)).get("sim-2")
        return row is not None and row["state"] == "up"

    await _within(PROPAGATION, b_runs_it)
    assert {"prefix": "44", "account": "", "connectors": ["sim-2", "simulator"]} in (
        await b.admin("route", "list"))

    # Stopped through node B: node A stops it too.
    await b.admin("upstream", "stop", "sim-2")

    async def a_stopped_it() -> bool:
        return (await _upstreams(a))["sim-2"]["state"] == "stopped"

    await _within(PROPAGATION, a_stopped_it)

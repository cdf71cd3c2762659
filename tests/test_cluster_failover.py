"""Two real `smppgw serve` nodes on one PostgreSQL database: when a node dies (SIGKILL)
with accepted messages in its outbox, the other node sends them once their claim's
lease has run out, and not before; the customer gets exactly one receipt per message.

Node B's upstream is an SMSC that binds but never answers submit_sm, so what B accepted
stays ACCEPTED and claimed by B (some of it in flight to that SMSC, the rest queued in
B's memory) until B is killed. Node A's upstream is its built-in simulator. Both are in
the shared store, each limited to its node (`--nodes`), as an operator sets them up.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import store_fixtures
from cluster_helpers import Node, bind_when_known, books, start_node
from delivery_helpers import Esme, submit_pdu, wait_for
from sqlalchemy import select

from pdu.codec import (
    BindReceiver,
    BindTransmitter,
    CommandId,
    decode,
    encode,
    response_for,
)
from store import tables
from store.engine import make_engine

gateway_store = store_fixtures.gateway_store
pytestmark = pytest.mark.parametrize("gateway_store", ["postgresql"], indirect=True)

LEASE = 3.0  # SMPPGW_OUTBOX_CLAIM_LEASE of both nodes, seconds
MESSAGES = 50
UPSTREAM_WINDOW = 10  # submit_sm node B has outstanding at its hung SMSC
# After the lease: node A's outbox looks at the store every 0.5 s, its simulator
# answers in SIMULATOR_DELAY_MS; the rest is room for a loaded machine.
TAKEOVER = 10.0
# How long receipts keep being counted once every message has one: a second receipt
# would come from a second claim (A polls every 0.5 s) or a redelivery (1 s retry).
SETTLE = 2.0
SIMULATOR_DELAY_MS = 20
BIND_REQUESTS = (CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER,
                 CommandId.BIND_TRANSCEIVER)


class HungSmsc:
    """An upstream SMSC that binds anyone and answers enquire_link and unbind, but never
    answers submit_sm: whatever a node hands it stays in flight at that node."""

    def __init__(self) -> None:
        self.bound = asyncio.Event()
        self.submits = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> HungSmsc:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">I", header)
                pdu = decode(header + await reader.readexactly(length - 4))
                if pdu.command_id == CommandId.SUBMIT_SM:
                    self.submits += 1
                    continue
                if pdu.is_response:
                    continue
                if pdu.command_id in BIND_REQUESTS:
                    writer.write(encode(response_for(pdu, system_id="hung")))
                    self.bound.set()
                else:
                    writer.write(encode(response_for(pdu)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _start_node(database_url: str, state_dir: Path, node_id: int, **extra: str) -> Node:
    return await start_node(
        database_url, state_dir, node_id, SMPPGW_OUTBOX_CLAIM_LEASE=str(LEASE),
        SMPPGW_SIMULATOR_DELAY_MS=str(SIMULATOR_DELAY_MS), SMPPGW_DLR_RETRY_INTERVAL="1",
        **extra)


@pytest.fixture
async def hung_smsc() -> AsyncIterator[HungSmsc]:
    smsc = await HungSmsc().start()
    try:
        yield smsc
    finally:
        await smsc.close()


@pytest.fixture
async def nodes(gateway_store: str, tmp_path: Path, hung_smsc: HungSmsc
                ) -> AsyncIterator[tuple[Node, Node]]:
    """Node A (node-1) on its built-in simulator, node B (node-2) on the hung SMSC."""
    started: list[Node] = []
    try:
        started.append(await _start_node(gateway_store, tmp_path / "node1", 1))
        started.append(await _start_node(gateway_store, tmp_path / "node2", 2))
        a = started[0]
        await a.admin("upstream", "set", "simulator", "--nodes", "1")
        await a.admin("upstream", "add", "hung", "--type", "smpp", "--host", "127.0.0.1",
                      "--port", str(hung_smsc.port), "--system-id", "gw", "--password",
                      "secret", "--window", str(UPSTREAM_WINDOW), "--nodes", "2")
        await a.admin("route", "set", "default", "hung", "simulator")
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.stop()  # B was killed: its exit status says so


async def _rows(database_url: str, ids: set[int]) -> dict[int, dict]:
    m = tables.messages
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(m.c.id, m.c.status, m.c.claimed_by, m.c.upstream, m.c.created_at,
                       m.c.next_attempt_at, m.c.sent_at).where(m.c.id.in_(ids)))
            return {row.id: row._asdict() for row in result}
    finally:
        await engine.dispose()


async def test_a_killed_nodes_outbox_is_sent_by_the_other_node_after_the_lease_once(
    nodes, hung_smsc, gateway_store
):
    a, b = nodes
    lease = timedelta(seconds=LEASE)
    await wait_for(hung_smsc.bound.is_set, 10, "node B bound to its upstream")
    account = await a.admin("account", "create", "--credits", "10000", "--allow-ip",
                            "127.0.0.1", "--sender", "ACME", "--throughput", "1000",
                            "--bind-limit", "50")
    receiver = await Esme.bind(*a.endpoint, account, bind_cls=BindReceiver)
    transmitter = await bind_when_known(b, account, BindTransmitter)

    resps = await transmitter.submit_many(
        [submit_pdu(f"336{i:08d}", f"failover {i}") for i in range(MESSAGES)], window=10)
    assert [r.command_status for r in resps] == [0] * MESSAGES
    accepted = {r.message_id for r in resps}
    ids = {int(mid) for mid in accepted}
    assert len(accepted) == MESSAGES
    # B has handed what its upstream window holds; those answers never come.
    await wait_for(lambda: hung_smsc.submits >= UPSTREAM_WINDOW, 5, "B sending upstream")

    held = await _rows(gateway_store, ids)
    assert set(held) == ids
    for row in held.values():
        assert (row["status"], row["claimed_by"], row["upstream"]) == ("ACCEPTED", "node-2", None)
        assert row["next_attempt_at"] == row["created_at"] + lease
    first_free = min(row["next_attempt_at"] for row in held.values())
    # Killed while its claims still hold, or this would not be a takeover.
    assert datetime.now(UTC) < first_free - timedelta(seconds=0.5), "B outlived its lease"
    b.process.kill()
    await transmitter.close()

    # While the claims hold, node A leaves B's messages alone.
    before_end = (first_free - datetime.now(UTC)).total_seconds() - 0.25
    await asyncio.sleep(max(0.0, before_end))
    assert datetime.now(UTC) < first_free
    assert receiver.receipts == {}
    still = await _rows(gateway_store, ids)
    assert {(r["status"], r["claimed_by"]) for r in still.values()} == {("ACCEPTED", "node-2")}

    # Then node A sends every one of them, and the customer hears of each once.
    await wait_for(lambda: accepted <= set(receiver.receipts), LEASE + TAKEOVER,
                   "a receipt on node A for every message B accepted")
    await asyncio.sleep(SETTLE)
    counts = {mid: len(pdus) for mid, pdus in receiver.receipts.items()}
    await receiver.close()
    assert set(counts) == accepted
    assert set(counts.values()) == {1}, {m: n for m, n in counts.items() if n != 1}

    sent = await _rows(gateway_store, ids)
    assert {row["status"] for row in sent.values()} <= {"ENROUTE", "DELIVERED"}
    assert {row["upstream"] for row in sent.values()} == {"simulator"}  # A's, not B's
    assert {row["claimed_by"] for row in sent.values()} == {None}
    early = [mid for mid, row in sent.items() if row["sent_at"] < row["created_at"] + lease]
    assert early == [], "sent upstream while node B's claim still held"
    assert await books(gateway_store) == []

"""Two real `smppgw serve` nodes on one PostgreSQL database share credit, bind limits and
the customers' receipts (issue 13):
- credit added through one node is spent on the other at once, and two nodes selling
  one balance concurrently sell exactly that balance;
- an account's bind limit counts the sessions of every node, and the sessions of a node
  killed with -9 stop counting once its heartbeat is stale;
- a receiver bound on one node gets the receipts of messages submitted on the other,
  each once, within a second (a notice, not the 30 s sweep); with receivers on both
  nodes, still each once;
- `smppgw admin` on either node lists both nodes and the sessions of both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import store_fixtures
from cluster_helpers import PROPAGATION, Node, bind_when_known, books, start_node
from delivery_helpers import Esme, submit_pdu, wait_for

from pdu.codec import BindReceiver, BindTransmitter
from pdu.status import CommandStatus as S
from store.engine import make_engine
from store.ledger import LedgerStore

gateway_store = store_fixtures.gateway_store
pytestmark = pytest.mark.parametrize("gateway_store", ["postgresql"], indirect=True)

NO_CREDIT = S.ESME_RSUBMITFAIL  # gateway.submit.pipeline.NO_CREDIT_STATUS
HEARTBEAT, TTL = 0.5, 2.0  # SMPPGW_NODE_HEARTBEAT_INTERVAL and SMPPGW_NODE_TTL, seconds
# Receipts reach the customer through notices here: the sweep is far off.
NODE_SETTINGS = {"SMPPGW_SIMULATOR_DELAY_MS": "20", "SMPPGW_DLR_RETRY_INTERVAL": "600",
                 "SMPPGW_NODE_HEARTBEAT_INTERVAL": str(HEARTBEAT),
                 "SMPPGW_NODE_TTL": str(TTL)}
# How long receipts keep being counted once each message has one: a second would show.
SETTLE = 1.5
# Long enough for a notice from one node to be applied by the other (tens of ms).
NOTICE = 0.5


async def _two_nodes(database_url: str, tmp_path: Path, **settings: str
                     ) -> AsyncIterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        # One after the other: the first one fills the empty upstream and route tables.
        for node_id in (1, 2):
            started.append(await start_node(database_url, tmp_path / f"node{node_id}",
                                            node_id, **settings))
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.stop()  # a node a test killed says so in its exit status


@pytest.fixture
async def nodes(gateway_store: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async for pair in _two_nodes(gateway_store, tmp_path, **NODE_SETTINGS):
        yield pair


async def _account(node: Node, credits: str, bind_limit: int = 2) -> dict:
    return await node.admin("account", "create", "--credits", credits, "--allow-ip",
                            "127.0.0.1", "--sender", "ACME", "--throughput", "10000",
                            "--window", "100", "--bind-limit", str(bind_limit))


def _statuses(responses) -> list[int]:
    return [r.command_status for r in responses]


# --- credit ------------------------------------------------------------------------------


async def test_credit_added_on_one_node_is_spent_on_the_other_at_once(nodes, gateway_store):
    a, b = nodes
    account = await _account(a, "0")
    esme = await bind_when_known(b, account)
    try:
        assert (await esme.request(submit_pdu("33600000001"))).command_status == NO_CREDIT
        added = await a.admin("credits", "add", account["system_id"], "2")
        assert added["balance"] == "2.00"
        # At once: no waiting for a notice, B reads the balance before it refuses.
        first = await esme.submit_many([submit_pdu(f"3360000000{i}") for i in (2, 3, 4)],
                                       window=1)
        assert _statuses(first) == [0, 0, NO_CREDIT]
        # Credit no notice announced (as another node's top-up before its notice
        # arrives): B still sells it, as its view is read again before a refusal.
        await _top_up_silently(gateway_store, account["system_id"], 100)
        again = await esme.request(submit_pdu("33600000005"))
        assert again.command_status == 0
    finally:
        await esme.close()
    for node in (a, b):
        assert (await node.admin("balance", account["system_id"]))["balance"] == "0.00"
    assert await books(gateway_store) == []


async def _top_up_silently(database_url: str, system_id: str, minor: int) -> None:
    engine = make_engine(database_url)
    try:
        await LedgerStore(engine).add_credits(system_id, minor, kind="topup")
    finally:
        await engine.dispose()


async def test_two_nodes_sell_exactly_the_balance_of_one_account(nodes, gateway_store):
    """Credit for exactly N messages, 2 x 1.5 N submitted at once on the two nodes: N are
    accepted in all, never more (the database pays each in turn), never fewer (a node
    whose view says no asks the store first)."""
    a, b = nodes
    n = 120
    account = await _account(a, str(n))
    on_a = await Esme.bind(*a.endpoint, account)
    on_b = await bind_when_known(b, account)
    try:
        # Separate PDU objects: a client numbers the ones it sends.
        got_a, got_b = await asyncio.gather(*(
            esme.submit_many([submit_pdu(f"336{k}{i:07d}", rd=0) for i in range(n * 3 // 2)],
                             window=20)
            for k, esme in enumerate((on_a, on_b))))
    finally:
        await on_a.close()
        await on_b.close()
    statuses = _statuses(got_a) + _statuses(got_b)
    assert set(statuses) <= {0, NO_CREDIT}
    accepted_a, accepted_b = _statuses(got_a).count(0), _statuses(got_b).count(0)
    print(f"\naccepted on A {accepted_a}, on B {accepted_b}, of {len(statuses)}")
    assert accepted_a + accepted_b == n
    assert accepted_a and accepted_b  # both nodes sold some of it
    for node in (a, b):
        assert (await node.admin("balance", account["system_id"]))["balance"] == "0.00"
    assert await books(gateway_store) == []


# --- bind limits ---------------------------------------------------------------------------


async def _refused_for_the_limit(node: Node, account: dict, cls) -> bool:
    """Whether a bind is refused for the bind limit (not for an unknown account)."""
    status = await node.bind(account["system_id"], account["password"], cls=cls)
    assert status in (S.ESME_RINVSYSID, S.ESME_RBINDFAIL, S.ESME_ROK), status
    return status == S.ESME_RBINDFAIL


async def test_the_bind_limit_counts_every_node_and_forgets_a_dead_one(nodes):
    a, b = nodes
    account = await _account(a, "10", bind_limit=1)
    sid, password = account["system_id"], account["password"]
    held = await Esme.bind(*a.endpoint, account)  # a transceiver on A
    # On B, once the account is known there, a second transceiver is refused.
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await _refused_for_the_limit(b, account, BindTransmitter):
        assert loop.time() - start < PROPAGATION, "B never applied the limit"
        await asyncio.sleep(0.1)
    assert await b.bind(sid, password) == S.ESME_RBINDFAIL
    assert await b.bind(sid, password, cls=BindReceiver) == S.ESME_RBINDFAIL

    # Both nodes list A's session.
    for node in (a, b):
        listed = await node.admin("sessions", sid)
        assert [(s["node"], s["bind_type"]) for s in listed] == [("node-1", "transceiver")]

    # Unbound on A: B takes a bind at once.
    await held.leave()
    receiver = await Esme.bind(*b.endpoint, account, bind_cls=BindReceiver)
    # A transmitter on A beside B's receiver: one of each is within a limit of 1.
    transmitter = await Esme.bind(*a.endpoint, account, bind_cls=BindTransmitter)
    assert await a.bind(sid, password, cls=BindReceiver) == S.ESME_RBINDFAIL

    # A killed with its transmitter bound: its session counts until its heartbeat is
    # older than the TTL, then no more.
    a.process.kill()
    await transmitter.close()
    killed_at = loop.time()
    assert await b.bind(sid, password, cls=BindTransmitter) == S.ESME_RBINDFAIL
    while await b.bind(sid, password, cls=BindTransmitter) != S.ESME_ROK:
        assert loop.time() - killed_at < TTL + 3, "the dead node's session still counts"
        await asyncio.sleep(0.2)
    assert loop.time() - killed_at >= TTL - HEARTBEAT - 0.2  # not before it was stale
    listed = await b.admin("nodes")
    assert {(n["name"], n["state"]) for n in listed} == {("node-1", "gone"), ("node-2", "up")}
    await receiver.close()


# --- receipts to wherever the customer is bound ---------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_a_receiver_on_one_node_gets_the_receipts_of_the_other_once_and_fast(nodes):
    a, b = nodes
    count = 300
    account = await _account(a, "10000")
    receiver = await Esme.bind(*a.endpoint, account, bind_cls=BindReceiver)
    transmitter = await bind_when_known(b, account, BindTransmitter)
    try:
        pdus = [submit_pdu(f"3362{i:07d}", f"to A {i}") for i in range(count)]
        resps = await transmitter.submit_many(pdus, window=20)
        assert _statuses(resps) == [0] * count
        ids = {r.message_id for r in resps}
        await wait_for(lambda: ids <= set(receiver.receipts), 30, "every receipt on node A")
        await asyncio.sleep(SETTLE)
    finally:
        await transmitter.close()
        await receiver.close()
    counts = {mid: len(got) for mid, got in receiver.receipts.items()}
    assert set(counts) == ids
    assert set(counts.values()) == {1}, {m: n for m, n in counts.items() if n != 1}
    # From submit_sm_resp on B to the receipt on A (the simulator answers in 20 ms).
    answered = {r.message_id: transmitter.response_at[r.sequence_number] for r in resps}
    latency = [receiver.receipt_at[mid] - answered[mid] for mid in ids]
    p50, p99 = _percentile(latency, 0.5), _percentile(latency, 0.99)
    print(f"\nreceipt on A after submit on B: p50 {p50 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms")
    assert p99 < 1.0


async def test_with_receivers_on_both_nodes_each_receipt_comes_once(nodes):
    a, b = nodes
    count = 200
    account = await _account(a, "10000")
    receivers = [await Esme.bind(*a.endpoint, account, bind_cls=BindReceiver),
                 await bind_when_known(b, account, BindReceiver)]
    senders = [await Esme.bind(*a.endpoint, account, bind_cls=BindTransmitter),
               await Esme.bind(*b.endpoint, account, bind_cls=BindTransmitter)]
    try:
        sent = await asyncio.gather(*(
            esme.submit_many([submit_pdu(f"336{n}{i:07d}", f"both {i}") for i in range(count)],
                             window=20)
            for n, esme in enumerate(senders)))
        ids = {r.message_id for resps in sent for r in resps if r.command_status == 0}
        assert len(ids) == 2 * count

        def heard() -> set[str]:
            return set(receivers[0].receipts) | set(receivers[1].receipts)

        await wait_for(lambda: ids <= heard(), 30, "every receipt on one of the nodes")
        await asyncio.sleep(SETTLE)
    finally:
        for esme in senders + receivers:
            await esme.close()
    counts: dict[str, int] = {}
    for esme in receivers:
        for mid, got in esme.receipts.items():
            counts[mid] = counts.get(mid, 0) + len(got)
    assert set(counts) == ids
    assert set(counts.values()) == {1}, {m: n for m, n in counts.items() if n != 1}
    assert all(esme.receipts for esme in receivers)  # each node gave its own


# --- the operator's view ---------------------------------------------------------------


async def test_admin_on_either_node_lists_both_nodes_and_their_sessions(nodes):
    a, b = nodes
    account = await _account(a, "10", bind_limit=2)
    on_a = await Esme.bind(*a.endpoint, account)
    on_b = await bind_when_known(b, account)
    try:
        for node in (a, b):
            listed = await node.admin("nodes")
            assert [(n["name"], n["state"], n["sessions"]) for n in listed] == [
                ("node-1", "up", 1), ("node-2", "up", 1)]
            assert all(n["heartbeat_age"] < TTL for n in listed)
            sessions = await node.admin("sessions", account["system_id"])
            assert sorted(s["node"] for s in sessions) == ["node-1", "node-2"]
            shown = await node.admin("account", "show", account["system_id"])
            assert shown["bound_sessions"] == 2
        # Suspended with --unbind on B: A's session is unbound too.
        suspended = await b.admin("account", "suspend", account["system_id"], "--unbind")
        assert suspended["sessions_unbound"] == 2
        await wait_for(lambda: on_a.gone, PROPAGATION, "A's session unbound")
    finally:
        await on_a.close()
        await on_b.close()


# --- bind throttling -------------------------------------------------------------------


@pytest.fixture
async def strict_nodes(gateway_store: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes that block a (system_id, address) pair after 4 failed binds."""
    async for pair in _two_nodes(gateway_store, tmp_path, SMPPGW_BIND_FAIL_LIMIT_PAIR="4"):
        yield pair


async def test_failed_binds_on_either_node_count_on_both(strict_nodes):
    """A guesser spreading its tries over the nodes meets the limit of one node: two
    failures on A and two on B block the pair on both (without sharing, each node would
    have counted two of four)."""
    a, b = strict_nodes
    account = await _account(a, "10")
    sid, password = account["system_id"], account["password"]
    await b.admin("rate", "quote", sid, "33600000000")  # B knows the account now
    for node in (a, b, a):
        assert await node.bind(sid, "wrong") == S.ESME_RINVPASWD
    # The fourth failure, on B, blocks the pair on B and, once told (a notice takes
    # milliseconds), on A too. A bind with the right password must not be the probe:
    # let through before the notice, it would start the pair afresh.
    assert await b.bind(sid, "wrong") == S.ESME_RINVPASWD
    await asyncio.sleep(NOTICE)
    for node in (b, a):
        assert await node.bind(sid, password) == S.ESME_RBINDTHROTTLED

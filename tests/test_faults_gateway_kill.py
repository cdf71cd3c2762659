"""SIGKILL the gateway under load: every message acknowledged with status 0 is still
delivered after the restart, and none is charged twice.

The gateway runs as an operator runs it (`python -m gateway.cli serve`), the upstream
is the standalone simulator, the customer an ESME in this process.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import store_fixtures
from cluster_helpers import Node
from delivery_helpers import Esme, GatewayProcess, SimProcess, submit_pdu, wait_for
from sqlalchemy import select

from store import tables
from store.engine import make_engine
from store.invariants import ledger_violations

SENDER = "ovh"

# On SQLite and on PostgreSQL.
gateway_store = store_fixtures.gateway_store


def _pdu(i: int):
    pdu = submit_pdu(f"336{i:08d}", f"kill {i}")
    pdu.source_addr = SENDER
    return pdu


async def _load(esme: Esme, acked: set[str], stop: asyncio.Event) -> None:
    """Submit with a window of 10 until the gateway goes away."""
    i = 0
    try:
        while not stop.is_set():
            resps = await esme.submit_many([_pdu(i + k) for k in range(10)], timeout=5)
            acked.update(r.message_id for r in resps if r.command_status == 0)
            i += 10
    except (AssertionError, ConnectionError, OSError):
        # The kill: responses that never came are simply not acknowledged.
        for resp in list(esme.responses.values()):
            if resp.command_status == 0 and hasattr(resp, "message_id"):
                acked.add(resp.message_id)


async def test_sigkill_under_load_loses_no_acknowledged_message_and_charges_once(
    tmp_path, gateway_store
):
    sim = SimProcess(tmp_path, "--latency-ms", "100").start()
    env = {"SMPPGW_UPSTREAM_URL": sim.url, "SMPPGW_DLR_RETRY_INTERVAL": "1",
           "SMPPGW_DATABASE_URL": gateway_store}
    state = tmp_path / "gw"
    gw = GatewayProcess(state, env).start()
    # A configured store gets no demo account: the operator creates one.
    account = await Node(gw).admin("account", "create", "--credits", "1000", "--allow-ip",
                                   "127.0.0.1", "--sender", SENDER)
    try:
        esme = await Esme.bind(*gw.endpoint, account)
        acked: set[str] = set()
        stop = asyncio.Event()
        load = asyncio.create_task(_load(esme, acked, stop))
        await wait_for(lambda: len(acked) >= 150, 30, "150 acknowledged messages")
        gw.kill()
        stop.set()
        await asyncio.wait_for(load, 10)
        await esme.close()
        # Whatever receipts came before the kill count; the rest must come after.
        receipts = dict(esme.receipts)

        gw = GatewayProcess(state, env).start()
        again = await Esme.bind(*gw.endpoint, account)
        await wait_for(lambda: acked <= set(receipts) | set(again.receipts), 60,
                       "a receipt for every acknowledged message")
        await again.close()
    finally:
        assert gw.stop() == 0
        sim.stop()

    engine = make_engine(gateway_store)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(
                tables.messages.c.id, tables.messages.c.status, tables.messages.c.cost,
                tables.messages.c.ledger_id,
            ))).all()
            debits = {
                row.id: row for row in (await conn.execute(
                    select(tables.ledger.c.id, tables.ledger.c.amount,
                           tables.ledger.c.message_count)
                    .where(tables.ledger.c.kind == "debit")
                )).all()
            }
        books = await ledger_violations(engine)
    finally:
        await engine.dispose()
    statuses = {row.id: row.status for row in rows}
    assert {int(m) for m in acked} <= set(statuses)
    assert all(statuses[int(m)] == "DELIVERED" for m in acked)
    # Charged once: every stored message points at the debit of its commit, each debit
    # is exactly its messages' costs, and no debit is left without its messages.
    by_debit = Counter(row.ledger_id for row in rows)
    assert None not in by_debit and set(by_debit) == set(debits)
    for debit_id, debit in debits.items():
        costs = sum(row.cost for row in rows if row.ledger_id == debit_id)
        assert (-debit.amount, debit.message_count) == (costs, by_debit[debit_id])
    assert books == []
    # Every stored message reached the upstream (a resend after the crash may repeat one
    # there: at-least-once towards the upstream, once per message id towards the customer).
    assert len({m["text"] for m in sim.accepted()}) == len(statuses)

"""The Prometheus endpoint (gateway/metrics) scraped over HTTP while a customer binds
and submits: the session, PDU and credit counters, the hot path's histograms and the
queue, store and link gauges move by what happened."""

from __future__ import annotations

import asyncio
import sqlite3

from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import new_account
from smpp_client import RawClient

import gateway.metrics as gateway_metrics
from pdu.codec import BindReceiver, BindTransceiver, BindTransmitter, SubmitSm

IN_AN_HOUR = "000000010000000R"  # relative schedule_delivery_time


async def _scrape(gw) -> dict[str, float]:
    reader, writer = await asyncio.open_connection(*gw.endpoints.metrics)
    writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_counters_move(gateway):
    account = await new_account(gateway)
    before = await _scrape(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    await client.bind(account["system_id"], account["password"], cls=BindTransceiver)
    during = await _scrape(gateway)
    for _ in range(3):
        resp = await client.request(SubmitSm(source_addr="ovh", source_addr_ton=5,
                                             destination_addr="33601020304", dest_addr_ton=1,
                                             dest_addr_npi=1, short_message=b"m"))
        assert resp.command_status == 0
    after = await _scrape(gateway)
    await client.close()
    bound = 'smppgw_sessions_bound{bind_type="transceiver"}'
    assert before[bound] == 0 and during[bound] == 1
    submits = 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"}'
    assert after[submits] - before.get(submits, 0) == 3
    resps = 'smppgw_pdus_total{command="submit_sm_resp",direction="out",status="ESME_ROK"}'
    assert after[resps] == 3
    assert after["smppgw_credits_debited_total"] - before["smppgw_credits_debited_total"] == 3


# --- the hot path's histograms and the gauges, while messages flow ---------------------


async def _until(gw, predicate, what: str, timeout: float = 20.0) -> dict[str, float]:
    """Scrape until `predicate(values)` holds; the values of the scrape that saw it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        values = await _scrape(gw)
        if predicate(values):
            return values
        if loop.time() > deadline:
            raise AssertionError(f"no scrape showed {what} within {timeout}s: {values}")
        await asyncio.sleep(0.05)


def _link_up(values: dict[str, float]) -> list[float]:
    return [v for k, v in values.items() if k.startswith("smppgw_upstream_link_up{")]


def _moved(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


AWAY = 'smppgw_deliveries_waiting{kind="dlr",receiver="away"}'


async def test_hot_path_histograms_and_gauges_appear_and_move(
    make_gateway, tmp_path, monkeypatch
):
    # Every scrape reads the store afresh (the gateway reads it at most once a second).
    monkeypatch.setattr(gateway_metrics, "REFRESH_INTERVAL", 0.0)
    sim = SimProcess(tmp_path, "--latency-ms", "400").start()
    gw = await make_gateway(upstream_url=sim.url)
    try:
        await _until(gw, lambda v: _link_up(v) and all(_link_up(v)), "the upstream link up")
        account = await ready_account(gw)
        before = await _scrape(gw)
        for name in ("smppgw_store_writer_queue", "smppgw_outbox_in_flight",
                     "smppgw_deliveries_in_flight", "smppgw_outbox_waiting"):
            assert name in before, name

        # Three submits answered: three latencies, commits that wrote them, and three
        # receipts awaited from the upstream (it answers 0.4 s later).
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        resps = await esme.submit_many([submit_pdu(f"3361000000{i}") for i in range(3)])
        assert [r.command_status for r in resps] == [0, 0, 0]
        sent = await _scrape(gw)
        assert _moved(before, sent, "smppgw_submit_latency_seconds_count") == 3
        assert _moved(before, sent, "smppgw_submit_latency_seconds_sum") > 0
        assert _moved(before, sent, 'smppgw_submit_latency_seconds_bucket{le="+Inf"}') == 3
        assert _moved(before, sent, "smppgw_store_commit_seconds_count") >= 1
        assert _moved(before, sent, "smppgw_store_commit_messages_sum") >= 3
        assert sent["smppgw_receipts_awaited"] == 3
        # The receipts come back: DLR latency for each, none awaited any more.
        await wait_for(lambda: {r.message_id for r in resps} <= set(esme.receipts), 20)
        back = await _until(gw, lambda v: _moved(before, v, "smppgw_dlr_latency_seconds_count")
                            == 3, "three DLR latencies")
        assert back["smppgw_receipts_awaited"] == 0
        await esme.leave()

        # Nobody bound to receive: the receipts wait in the store for a bind.
        tx = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=BindTransmitter)
        await tx.submit_many([submit_pdu(f"3362000000{i}") for i in range(2)])
        await _until(gw, lambda v: v.get(AWAY) == 2, "two receipts waiting for a bind")
        # One scheduled an hour ahead waits in the outbox.
        later = await tx.request(submit_pdu("33630000000", schedule_delivery_time=IN_AN_HOUR))
        assert later.command_status == 0
        waiting = await _scrape(gw)
        assert waiting["smppgw_outbox_waiting"] == 1
        rx = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=BindReceiver)
        await wait_for(lambda: len(rx.receipts) == 2, 20)
        await _until(gw, lambda v: v.get(AWAY, 0) == 0
                     and not v.get('smppgw_deliveries_waiting{kind="dlr",receiver="bound"}'),
                     "the receipts delivered")
        await rx.close()
        await tx.close()

        # The upstream goes away: its link is down.
        sim.stop()
        await _until(gw, lambda v: _link_up(v) and not any(_link_up(v)), "the link down")
    finally:
        await gw.stop()
        if sim.proc is not None and sim.proc.poll() is None:
            sim.stop()


async def test_the_writer_queue_gauge_counts_writes_waiting_for_a_slow_store(gateway):
    account = await ready_account(gateway)
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    before = await _scrape(gateway)
    # Another process holds the store's write lock for a second (a backup, an operator's
    # sqlite3 shell): the writer's next commit waits for it, and what comes meanwhile
    # waits in the writer's queue.
    path = gateway.settings.effective_database_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        # The first ones are taken into the commit that now waits for the lock...
        sent = [await esme.client.send(submit_pdu(f"3364000000{i}")) for i in range(5)]
        await asyncio.sleep(0.1)
        # ...and these wait in the queue for the next one.
        sent += [await esme.client.send(submit_pdu(f"3365000000{i}")) for i in range(5)]
        waiting = await _until(gateway, lambda v: v["smppgw_store_writer_queue"] >= 5,
                               "the submits queued behind the lock", timeout=0.6)
        await asyncio.sleep(0.3)
    finally:
        other.execute("COMMIT")
        other.close()
    await wait_for(lambda: all(s in esme.responses for s in sent), 10)
    assert [esme.responses[s].command_status for s in sent] == [0] * 10
    after = await _until(gateway, lambda v: v["smppgw_store_writer_queue"] == 0, "an empty queue")
    await esme.close()
    assert waiting["smppgw_store_writer_queue"] == 5
    # The commit that waited for the lock is in the commit histogram.
    assert _moved(before, after, "smppgw_store_commit_seconds_sum") >= 0.3

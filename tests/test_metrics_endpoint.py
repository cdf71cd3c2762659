"""The Prometheus endpoint (gateway/metrics) scraped over HTTP while a customer binds
and submits: the session, PDU and credit counters, the hot path's histograms and the
queue, store and link gauges move by what happened; every declared family moves in a
run that takes messages through each of their fates, each stage counted once."""

from __future__ import annotations

import asyncio
import sqlite3

from delivery_helpers import SENDER, Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import admin, new_account
from smpp_client import RawClient

import gateway.metrics as gateway_metrics
from gateway.upstream.simulator import SimulatedNetwork
from pdu.codec import BindReceiver, BindTransceiver, BindTransmitter, CancelSm, SubmitSm

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
    return [v for k, v in values.items() if k.startswith("smppgw_upstream_up{")]


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
    # Its own BEGIN waits its turn behind the gateway's writes (a loaded machine can
    # hold one past sqlite3's default 5 s).
    other = sqlite3.connect(path, isolation_level=None, timeout=60)
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


# --- every declared series moves in a real run ---------------------------------------

# Families a run of this size does not move, each pinned elsewhere: a metric declared and
# left out of both this list and the run below fails the audit.
PINNED_ELSEWHERE = {
    # Transient within a turn or two of the loop; the writer queue has its own test here.
    "smppgw_store_writer_queue", "smppgw_outbox_in_flight", "smppgw_deliveries_in_flight",
    # Receipts waiting for a bind: test_hot_path_histograms_and_gauges_appear_and_move.
    "smppgw_deliveries_waiting",
    # The upstream connectors' own (gateway/upstream/stats): in-process simulators neither
    # keep a submit in flight nor reconnect, nor time a network round trip.
    "smppgw_upstream_in_flight", "smppgw_upstream_reconnects", "smppgw_upstream_submit_seconds",
}
_SUFFIXES = ("", "_total", "_count", "_info")

# One simulator per fate, routed by destination prefix; other destinations have no route.
AUDIT_UPSTREAMS = [
    {"name": "ok", "type": "simulator", "latency_ms": 300, "mix": "delivered=1"},
    {"name": "lost", "type": "simulator", "latency_ms": 20, "mix": "undeliverable=1"},
    {"name": "refusing", "type": "simulator", "latency_ms": 20, "mix": "refused=1"},
    {"name": "busy", "type": "simulator", "latency_ms": 20, "mix": "throttled=1"},
]
AUDIT_ROUTES = [{"prefix": p, "connectors": [c]} for p, c in
                (("3361", "ok"), ("3362", "lost"), ("3363", "refusing"), ("3364", "busy"))]
INBOUND_NUMBER = "33700000001"


def _family_value(values: dict[str, float], family: str) -> float:
    """A family's total: its series summed (counters, gauges), its _count (histograms)."""
    wanted = {family + suffix for suffix in _SUFFIXES}
    return sum(v for k, v in values.items() if k.split("{", 1)[0] in wanted)


async def test_every_declared_series_moves_when_traffic_flows(make_gateway, monkeypatch):
    monkeypatch.setattr(gateway_metrics, "REFRESH_INTERVAL", 0.0)
    gw = await make_gateway(
        upstreams=AUDIT_UPSTREAMS, routes=AUDIT_ROUTES, outbox_retry_min=0.2,
        outbox_retry_max=0.5, bind_timeout=3.0, max_connections_per_ip=8,
    )
    scrapes = [await _scrape(gw)]
    before = scrapes[0]
    # The standard collectors and the build, from the first scrape on.
    assert before["process_resident_memory_bytes"] > 0
    assert [v for k, v in before.items() if k.startswith("python_info{")] == [1.0]
    assert any(k.startswith("python_gc_objects_collected_total{") for k in before)
    assert before[f'smppgw_build_info{{python="{gateway_metrics.PYTHON}",'
                  f'version="{gateway_metrics.VERSION}"}}'] == 1

    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    # A guesser's bind, refused.
    guesser = await RawClient.connect(*gw.endpoints.smpp)
    assert (await guesser.bind(account["system_id"], "wrong")).command_status != 0
    await guesser.close()

    # Delivered (its receipt awaited 0.3 s), undeliverable, refused upstream, and one an
    # upstream keeps answering "throttled" until its 3 s validity ends.
    fates = [submit_pdu("33610000001"), submit_pdu("33620000001"), submit_pdu("33630000001"),
             submit_pdu("33640000001", validity_period="000000000003000R")]
    resps = await esme.submit_many(fates)
    assert [r.command_status for r in resps] == [0, 0, 0, 0]
    scrapes.append(await _until(gw, lambda v: v["smppgw_receipts_awaited"] >= 1,
                                "a receipt awaited"))
    # No route: refused at submit.
    assert (await esme.request(submit_pdu("44700000001"))).command_status != 0
    # Scheduled an hour ahead, seen waiting in the outbox, then cancelled.
    later = await esme.request(submit_pdu("33610000002", schedule_delivery_time=IN_AN_HOUR))
    assert later.command_status == 0
    scrapes.append(await _until(gw, lambda v: v["smppgw_outbox_waiting"] >= 1,
                                "the scheduled message waiting"))
    cancel = CancelSm(message_id=later.message_id, source_addr=SENDER, source_addr_ton=5)
    assert (await esme.request(cancel)).command_status == 0

    # MOs from an upstream: one to the account's number (delivered to its transceiver),
    # one to a number nobody owns.
    await gw.inbound_numbers.add(gw.accounts.get(account["system_id"]).id, INBOUND_NUMBER)
    acks: list[int] = []
    network = SimulatedNetwork()
    gw.inbound.on_deliver("ok", network.mo(INBOUND_NUMBER), acks.append)
    gw.inbound.on_deliver("ok", network.mo("33700000999"), acks.append)
    await wait_for(lambda: len(acks) == 2 and len(esme.mos) == 1, 20, "the MOs")

    # An account that crosses its low-balance threshold (and is topped up), and one
    # with no credit at all.
    lean = await admin(gw, "account.create", credits="3", allowed_ips=["127.0.0.1"],
                       senders=[SENDER], settings={
                           "low_balance_threshold": "2", "auto_topup_threshold": "2",
                           "auto_topup_amount": "10"})
    broke = await ready_account(gw, credits="0")
    for who, statuses in ((lean, [0, 0]), (broke, None)):
        tx = await Esme.bind(*gw.endpoints.smpp, who, bind_cls=BindTransmitter)
        got = await tx.submit_many([submit_pdu("33610000003"), submit_pdu("33610000004")])
        if statuses is not None:
            assert [r.command_status for r in got] == statuses
        else:
            assert all(r.command_status != 0 for r in got)
        scrapes.append(await _scrape(gw))
        await tx.close()

    # Every fate ended: receipts delivered, the busy one expired.
    await wait_for(lambda: {resps[0].message_id, resps[1].message_id} <= set(esme.receipts)
                   and resps[3].message_id in esme.receipts, 30, "the receipts")
    await esme.leave()

    # More connections from one address than allowed: the extra ones are aborted; the
    # others, never binding, are dropped at bind_timeout.
    extra = [await asyncio.open_connection(*gw.endpoints.smpp) for _ in range(9)]
    try:
        scrapes.append(await _until(
            gw, lambda v: _family_value(v, "smppgw_connections_refused") >= 1
            and _family_value(v, "smppgw_connections_dropped") >= 1, "the limits enforced"))
    finally:
        for _, writer in extra:
            writer.close()
    delivered = 'smppgw_mt_final_total{cause="upstream_receipt",state="delivered"}'
    after = await _until(gw, lambda v: _family_value(v, "smppgw_auto_topups") >= 1
                         and _family_value(v, "smppgw_low_balance_alerts") >= 1
                         and _moved(before, v, delivered) == 3,
                         "the top-up, the low-balance alert and lean's receipts")
    scrapes.append(after)

    # Counters and histograms must have counted; gauges must have shown something.
    declared = {m.name: m.type for m in gw.metrics.registry.collect()
                if m.name.startswith("smppgw_")}
    assert {"smppgw_mt_accepted", "smppgw_mt_final", "smppgw_pdus"} <= set(declared)
    still = sorted(
        family for family, kind in declared.items() if family not in PINNED_ELSEWHERE
        and max(_family_value(v, family) - _family_value(before, family) for v in scrapes) <= 0
        and (kind != "gauge" or max(_family_value(v, family) for v in scrapes) <= 0)
    )
    assert still == [], f"declared but never moved by the run: {still}"

    # Each stage counted once per message.
    def moved(name: str) -> float:
        return _moved(before, after, name)

    assert moved("smppgw_mt_accepted_total") == 4 + 1 + 2  # fates, scheduled, lean's
    assert moved("smppgw_mt_handed_upstream_total") == 1 + 1 + 2  # ok, lost, lean's
    assert moved("smppgw_mt_upstream_retries_total") >= 1
    assert moved('smppgw_mt_refused_total{reason="invalid"}') == 1
    assert moved('smppgw_mt_refused_total{reason="no_credit"}') == 2
    final = {k: v - before.get(k, 0) for k, v in after.items()
             if k.startswith("smppgw_mt_final_total{") and v - before.get(k, 0)}
    assert final == {
        'smppgw_mt_final_total{cause="upstream_receipt",state="delivered"}': 1 + 2,
        'smppgw_mt_final_total{cause="upstream_receipt",state="undeliverable"}': 1,
        'smppgw_mt_final_total{cause="upstream_refused",state="rejected"}': 1,
        'smppgw_mt_final_total{cause="expired",state="expired"}': 1,
        'smppgw_mt_final_total{cause="cancelled",state="deleted"}': 1,
    }
    assert moved("smppgw_mo_received_total") == 1
    assert moved('smppgw_mo_refused_total{reason="no_owner"}') == 1
    assert "smppgw_messages_total" not in str(after)
    assert not any(k.startswith("smppgw_last_commit_batch_messages") for k in after)

"""The delivery pipeline (gateway/delivery) end to end over loopback: outbox, routes and
connectors, receipts and their retries, MOs, validity and schedules.

The gateway runs in this process on a real SQLite file; the upstream is either the
in-process simulator connector or `python -m gateway.upstream.smsc_sim` in a child process.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from sqlalchemy import func, select
from store_fixtures import new_message

from gateway.app import Gateway
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S
from pdu.tlv import Tag, as_cstr, as_int
from store import tables
from store.writer import NewMessage


async def _statuses(gw: Gateway) -> dict[str, int]:
    async with gw.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.messages.c.status, func.count()).group_by(tables.messages.c.status)
        )
        return {status: n for status, n in rows}


async def _handed_over(gw: Gateway, column) -> set:
    """Values of `column` once every hand-over is committed (a few ms after the receipt)."""
    values: set = set()
    for _ in range(100):
        async with gw.engine.connect() as conn:
            values = set((await conn.execute(select(column))).scalars())
        if None not in values:
            break
        await asyncio.sleep(0.05)
    return values


async def test_1000_messages_through_the_standalone_simulator_come_back_as_our_dlrs(
    make_gateway, tmp_path
):
    sim = SimProcess(tmp_path, "--latency-ms", "50").start()
    gw = await make_gateway(upstream_url=sim.url + "?window=50&throughput=5000")
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        pdus = [submit_pdu(f"336{i:08d}", f"msg {i}") for i in range(1000)]
        resps = await esme.submit_many(pdus, window=10)
        assert [r.command_status for r in resps] == [0] * 1000
        ours = {r.message_id for r in resps}
        await wait_for(lambda: ours <= set(esme.receipts), 60, "1000 receipts")
        assert set(esme.receipts) == ours
        for mid, receipts in esme.receipts.items():
            assert len(receipts) == 1
            receipt = receipts[0]
            assert parse_receipt(receipt.short_message).message_id == mid
            assert as_int(receipt.get_tlv(Tag.MESSAGE_STATE)) == 2
            # Vendor TLVs are off by default: smpplib would raise on them.
            assert receipt.get_tlv(Tag.OUTGOING_ID) is None
        await esme.close()
        upstream_ids = {m["id"] for m in sim.accepted()}
        stored = await _handed_over(gw, tables.messages.c.upstream_id)
        assert stored == upstream_ids and len(upstream_ids) == 1000
        assert await _statuses(gw) == {"DELIVERED": 1000}
    finally:
        await gw.stop()
        sim.stop()


async def test_failover_when_the_first_connector_of_the_route_is_down(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "10").start()
    upstreams = [
        # Nothing listens on port 9 of loopback: this connector never comes up.
        {"name": "primary", "host": "127.0.0.1", "port": 9, "system_id": "gw",
         "reconnect_min": 0.2, "reconnect_max": 0.5},
        {"name": "backup", "host": "127.0.0.1", "port": sim.port, "system_id": "gw"},
    ]
    routes = [{"prefix": "33", "connectors": ["primary", "backup"]}]
    gw = await make_gateway(upstreams=upstreams, routes=routes)
    try:
        assert gw.router.route_for("anyone", "33612345678").connectors == ("primary", "backup")
        assert gw.router.route_for("anyone", "44712345678") is None
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        resps = await esme.submit_many([submit_pdu(f"336{i:08d}") for i in range(50)])
        ours = {r.message_id for r in resps}
        await wait_for(lambda: ours <= set(esme.receipts), 30, "receipts via the backup")
        await esme.close()
        assert await _handed_over(gw, tables.messages.c.upstream) == {"backup"}
        assert not gw.connectors["primary"].is_up
    finally:
        await gw.stop()
        sim.stop()


async def test_mo_reaches_the_receiver_of_the_account_owning_the_number(make_gateway):
    upstreams = [{"name": "sim", "type": "simulator", "latency_ms": 10, "mo_rate": 20,
                  "mo_to": ["33700000001"]}]
    gw = await make_gateway(upstreams=upstreams, vendor_tlvs=True)
    owner = await ready_account(gw)
    other = await ready_account(gw)
    await gw.inbound_numbers.add(gw.accounts.get(owner["system_id"]).id, "+33 7 00 00 00 01")
    owner_esme = await Esme.bind(*gw.endpoints.smpp, owner)
    other_esme = await Esme.bind(*gw.endpoints.smpp, other)
    await wait_for(lambda: len(owner_esme.mos) >= 3, 10, "three MOs")
    await owner_esme.close()
    await other_esme.close()
    mo = owner_esme.mos[0]
    assert mo.destination_addr == "33700000001" and mo.esm_class == 0
    incoming = as_cstr(mo.get_tlv(Tag.INCOMING_ID))
    stored = await gw.messages.get(int(incoming))
    assert stored["direction"] == "MO" and stored["account_id"] == gw.accounts.get(
        owner["system_id"]).id
    assert stored["body"] == mo.short_message
    assert other_esme.mos == []


async def test_mo_to_a_number_nobody_owns_is_refused_upstream_and_not_recorded(make_gateway):
    upstreams = [{"name": "sim", "type": "simulator", "mo_rate": 50, "mo_to": ["33799999999"]}]
    gw = await make_gateway(upstreams=upstreams)
    await asyncio.sleep(0.3)
    async with gw.engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(tables.messages))).scalar()
    assert n == 0


async def test_permanent_upstream_refusal_ends_with_a_failed_dlr(make_gateway):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "refused=1"}]
    gw = await make_gateway(upstreams=upstreams)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    (resp,) = await esme.submit_many([submit_pdu("33612345678")])
    await wait_for(lambda: resp.message_id in esme.receipts, 10)
    receipt = parse_receipt(esme.receipts[resp.message_id][0].short_message)
    await esme.close()
    assert receipt.stat == "REJECTD"
    assert receipt.err == S.ESME_RINVDSTADR  # the upstream's status, mapped into err:
    assert (await gw.messages.get(int(resp.message_id)))["status"] == "REJECTED"


async def test_temporary_upstream_errors_are_retried_until_accepted(make_gateway):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "throttled=0.6,delivered=0.4",
                  "latency_ms": 5}]
    gw = await make_gateway(upstreams=upstreams, outbox_retry_min=0.05, outbox_retry_max=0.2)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    resps = await esme.submit_many([submit_pdu(f"336{i:08d}") for i in range(30)])
    ours = {r.message_id for r in resps}
    await wait_for(lambda: ours <= set(esme.receipts), 30, "every message delivered")
    await esme.close()
    assert all(len(v) == 1 for v in esme.receipts.values())
    assert gw.connectors["sim"].received > 30  # some were throttled and sent again
    assert await _statuses(gw) == {"DELIVERED": 30}


async def _insert(gw: Gateway, account: dict, **fields) -> NewMessage:
    """A message committed as the submit path would, with fields submit cannot set yet."""
    account_id = gw.accounts.get(account["system_id"]).id
    msg = new_message(gw.ids.next_id(), account_id, cost=0, source_addr="ACME", **fields)
    await gw.writer.accept(msg)
    gw.outbox.committed(msg)
    return msg


async def test_validity_past_ends_as_expired_and_schedule_is_honoured(make_gateway):
    gw = await make_gateway(simulator_delay_ms=5)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    now = datetime.now(UTC)
    expired = await _insert(gw, account, expires_at=now - timedelta(seconds=1))
    later = await _insert(gw, account, schedule_at=now + timedelta(seconds=1.5))
    await wait_for(lambda: str(expired.id) in esme.receipts, 10)
    receipt = parse_receipt(esme.receipts[str(expired.id)][0].short_message)
    assert receipt.stat == "EXPIRED"
    assert (await gw.messages.get(later.id))["status"] == "ACCEPTED"
    await wait_for(lambda: str(later.id) in esme.receipts, 10)
    assert datetime.now(UTC) >= later.schedule_at
    await esme.close()


async def test_dlr_carries_network_error_code_and_vendor_outgoing_id_when_enabled(
    make_gateway,
):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "undeliverable=1", "latency_ms": 5}]
    gw = await make_gateway(upstreams=upstreams, vendor_tlvs=True)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    (resp,) = await esme.submit_many([submit_pdu("33612345678")])
    await wait_for(lambda: resp.message_id in esme.receipts, 10)
    dlr = esme.receipts[resp.message_id][0]
    await esme.close()
    assert as_cstr(dlr.get_tlv(Tag.OUTGOING_ID)) == resp.message_id
    assert as_cstr(dlr.get_tlv(Tag.RECEIPTED_MESSAGE_ID)) == resp.message_id
    assert as_int(dlr.get_tlv(Tag.MESSAGE_STATE)) == 5
    assert dlr.get_tlv(Tag.NETWORK_ERROR_CODE) == b"\x03\x00\x1b"  # GSM, MAP error 27
    assert parse_receipt(dlr.short_message).stat == "UNDELIV"


async def test_refused_deliver_sm_resp_is_retried_later(make_gateway):
    gw = await make_gateway(simulator_delay_ms=5, dlr_retry_interval=0.5)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    esme.deliver_status = S.ESME_RX_T_APPN
    (resp,) = await esme.submit_many([submit_pdu("33612345678")])
    await asyncio.sleep(0.3)
    assert resp.message_id not in esme.receipts
    esme.deliver_status = 0
    await wait_for(lambda: resp.message_id in esme.receipts, 10, "the retried receipt")
    await esme.close()


async def test_undelivered_receipts_expire_with_a_log_line_and_a_metric(make_gateway, caplog):
    gw = await make_gateway(simulator_delay_ms=5, dlr_max_age=0.5, dlr_retry_interval=0.3)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=_transmitter())
    await esme.submit_many([submit_pdu("33612345678")])
    await esme.close()
    with caplog.at_level(logging.WARNING, logger="gateway.delivery.deliveries"):
        await wait_for(
            lambda: (gw.metrics.registry.get_sample_value(
                "smppgw_deliveries_total", {"kind": "any", "outcome": "expired"}) or 0) >= 1,
            10)
    assert any("expired" in r.getMessage() for r in caplog.records)


def _transmitter():
    from pdu.codec import BindTransmitter

    return BindTransmitter


async def test_validity_runs_out_even_while_no_upstream_is_up(make_gateway):
    upstreams = [{"name": "down", "host": "127.0.0.1", "port": 9, "system_id": "gw",
                  "reconnect_min": 0.2, "reconnect_max": 0.5}]
    gw = await make_gateway(upstreams=upstreams)
    account = await ready_account(gw)
    esme = await Esme.bind(*gw.endpoints.smpp, account)
    now = datetime.now(UTC)
    expired = await _insert(gw, account, expires_at=now - timedelta(seconds=1))
    waiting = await _insert(gw, account, expires_at=now + timedelta(hours=1))
    await wait_for(lambda: str(expired.id) in esme.receipts, 10)
    assert parse_receipt(esme.receipts[str(expired.id)][0].short_message).stat == "EXPIRED"
    assert (await gw.messages.get(waiting.id))["status"] == "ACCEPTED"
    await esme.close()

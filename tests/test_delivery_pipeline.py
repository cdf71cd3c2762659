"""The delivery pipeline end to end over loopback: outbox, connectors, receipts, MOs.

The gateway runs in this process on a real SQLite file; the upstream is either the
in-process simulator connector or `python -m gateway.smsc_sim` in a child process.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import gateway_settings
from sqlalchemy import func, select
from store_fixtures import new_message

from gateway.app import Gateway
from pdu.codec import CancelSm, QuerySm
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S
from pdu.tlv import Tag, as_cstr, as_int
from store import tables
from store.batcher import NewMessage
from store.invariants import ledger_violations
from store.ledger import LedgerStore


async def _gateway(tmp_path, **overrides) -> Gateway:
    gw = Gateway(gateway_settings(tmp_path / "state", **overrides))
    await gw.start()
    return gw


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


async def test_1000_messages_through_the_standalone_simulator_come_back_as_our_dlrs(tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "50").start()
    gw = await _gateway(tmp_path, upstream_url=sim.url + "?window=50&throughput=5000")
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


async def test_failover_when_the_first_connector_of_the_route_is_down(tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "10").start()
    upstreams = [
        # Nothing listens on port 9 of loopback: this connector never comes up.
        {"name": "primary", "host": "127.0.0.1", "port": 9, "system_id": "gw",
         "reconnect_min": 0.2, "reconnect_max": 0.5},
        {"name": "backup", "host": "127.0.0.1", "port": sim.port, "system_id": "gw"},
    ]
    routes = [{"prefix": "33", "connectors": ["primary", "backup"]}]
    gw = await _gateway(tmp_path, upstreams=upstreams, routes=routes)
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


async def test_mo_reaches_the_receiver_of_the_account_owning_the_number(tmp_path):
    upstreams = [{"name": "sim", "type": "simulator", "latency_ms": 10, "mo_rate": 20,
                  "mo_to": ["33700000001"]}]
    gw = await _gateway(tmp_path, upstreams=upstreams, vendor_tlvs=True)
    try:
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
    finally:
        await gw.stop()


async def test_mo_to_a_number_nobody_owns_is_refused_upstream_and_not_recorded(tmp_path):
    upstreams = [{"name": "sim", "type": "simulator", "mo_rate": 50, "mo_to": ["33799999999"]}]
    gw = await _gateway(tmp_path, upstreams=upstreams)
    try:
        await asyncio.sleep(0.3)
        async with gw.engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(tables.messages))).scalar()
        assert n == 0
    finally:
        await gw.stop()


async def test_permanent_upstream_refusal_ends_with_a_failed_dlr(tmp_path):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "refused=1"}]
    gw = await _gateway(tmp_path, upstreams=upstreams)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        (resp,) = await esme.submit_many([submit_pdu("33612345678")])
        await wait_for(lambda: resp.message_id in esme.receipts, 10)
        receipt = parse_receipt(esme.receipts[resp.message_id][0].short_message)
        await esme.close()
        assert receipt.stat == "REJECTD"
        assert receipt.err == S.ESME_RINVDSTADR  # the upstream's status, mapped into err:
        assert (await gw.messages.get(int(resp.message_id)))["status"] == "REJECTED"
    finally:
        await gw.stop()


async def test_temporary_upstream_errors_are_retried_until_accepted(tmp_path):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "throttled=0.6,delivered=0.4",
                  "latency_ms": 5}]
    gw = await _gateway(tmp_path, upstreams=upstreams, outbox_retry_min=0.05,
                        outbox_retry_max=0.2)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        resps = await esme.submit_many([submit_pdu(f"336{i:08d}") for i in range(30)])
        ours = {r.message_id for r in resps}
        await wait_for(lambda: ours <= set(esme.receipts), 30, "every message delivered")
        await esme.close()
        assert all(len(v) == 1 for v in esme.receipts.values())
        assert gw.connectors["sim"].received > 30  # some were throttled and sent again
        assert await _statuses(gw) == {"DELIVERED": 30}
    finally:
        await gw.stop()


async def _insert(gw: Gateway, account: dict, **fields) -> NewMessage:
    """A message committed as the submit path would, with fields submit cannot set yet."""
    account_id = gw.accounts.get(account["system_id"]).id
    msg = new_message(gw.ids.next_id(), account_id, cost=0, source_addr="ACME", **fields)
    await gw.writer.submit(msg)
    gw.outbox.committed(msg)
    return msg


async def test_validity_past_ends_as_expired_and_schedule_is_honoured(tmp_path):
    gw = await _gateway(tmp_path, simulator_delay_ms=5)
    try:
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
    finally:
        await gw.stop()


async def test_dlr_carries_network_error_code_and_vendor_outgoing_id_when_enabled(tmp_path):
    upstreams = [{"name": "sim", "type": "simulator", "mix": "undeliverable=1", "latency_ms": 5}]
    gw = await _gateway(tmp_path, upstreams=upstreams, vendor_tlvs=True)
    try:
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
    finally:
        await gw.stop()


async def test_query_sm_answers_from_history(tmp_path):
    gw = await _gateway(tmp_path, simulator_delay_ms=5)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        (resp,) = await esme.submit_many([submit_pdu("33612345678")])
        await wait_for(lambda: resp.message_id in esme.receipts, 10)
        answer = await esme.request(QuerySm(message_id=resp.message_id, source_addr="ACME"))
        assert answer.command_status == 0
        assert (answer.message_id, answer.message_state, answer.error_code) == (
            resp.message_id, 2, 0)
        assert len(answer.final_date) == 16 and answer.final_date.endswith("00+")
        waiting = await esme.request(
            submit_pdu("33612345679", schedule_delivery_time="000000010000000R"))
        pending = await esme.request(QuerySm(message_id=waiting.message_id))
        assert (pending.message_state, pending.final_date) == (1, "")  # ENROUTE, not final
        unknown = await esme.request(QuerySm(message_id="12345"))
        assert unknown.command_status == S.ESME_RQUERYFAIL
        malformed = await esme.request(QuerySm(message_id="abc"))
        assert malformed.command_status == S.ESME_RINVMSGID
        other = await ready_account(gw)
        stranger = await Esme.bind(*gw.endpoints.smpp, other)
        theirs = await stranger.request(QuerySm(message_id=resp.message_id))
        assert theirs.command_status == S.ESME_RQUERYFAIL  # not another account's history
        await stranger.close()
        await esme.close()
    finally:
        await gw.stop()


async def test_cancel_sm_cancels_only_messages_still_waiting(tmp_path):
    gw = await _gateway(tmp_path, simulator_delay_ms=5)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        (sent,) = await esme.submit_many([submit_pdu("33612345678")])
        await wait_for(lambda: sent.message_id in esme.receipts, 10)
        # Scheduled an hour ahead: it waits in the outbox.
        waiting = await esme.request(
            submit_pdu("33612345679", schedule_delivery_time="000000010000000R"))
        assert waiting.command_status == 0
        charged = gw.accounts.get(account["system_id"]).balance
        ok = await esme.request(CancelSm(message_id=waiting.message_id, source_addr="ACME"))
        assert ok.command_status == 0
        cancelled = await gw.messages.get(int(waiting.message_id))
        assert cancelled["status"] == "DELETED"
        # What it cost comes back, in memory and in the store, as a refund ledger row.
        assert gw.accounts.get(account["system_id"]).balance == charged + cancelled["cost"]
        assert await LedgerStore(gw.engine).balance(account["system_id"]) == (
            charged + cancelled["cost"]
        )
        assert await ledger_violations(gw.engine) == []
        await wait_for(lambda: waiting.message_id in esme.receipts, 10)
        assert parse_receipt(esme.receipts[waiting.message_id][0].short_message).stat == "DELETED"
        again = await esme.request(CancelSm(message_id=waiting.message_id))
        assert again.command_status == S.ESME_RCANCELFAIL
        gone = await esme.request(CancelSm(message_id=sent.message_id))
        assert gone.command_status == S.ESME_RCANCELFAIL  # already delivered upstream
        # By addresses: every waiting message from ACME to that number.
        for _ in range(2):
            await esme.request(submit_pdu("33600000077", schedule_delivery_time="000000010000000R"))
        by_addr = await esme.request(CancelSm(source_addr="ACME", destination_addr="33600000077"))
        assert by_addr.command_status == 0
        assert (await _statuses(gw)).get("ACCEPTED", 0) == 0
        await esme.close()
    finally:
        await gw.stop()


async def test_refused_deliver_sm_resp_is_retried_later(tmp_path):
    gw = await _gateway(tmp_path, simulator_delay_ms=5, dlr_retry_interval=0.5)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        esme.deliver_status = S.ESME_RX_T_APPN
        (resp,) = await esme.submit_many([submit_pdu("33612345678")])
        await asyncio.sleep(0.3)
        assert resp.message_id not in esme.receipts
        esme.deliver_status = 0
        await wait_for(lambda: resp.message_id in esme.receipts, 10, "the retried receipt")
        await esme.close()
    finally:
        await gw.stop()


async def test_undelivered_receipts_expire_with_a_log_line_and_a_metric(tmp_path, caplog):
    gw = await _gateway(tmp_path, simulator_delay_ms=5, dlr_max_age=0.5, dlr_retry_interval=0.3)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account, bind_cls=_transmitter())
        await esme.submit_many([submit_pdu("33612345678")])
        await esme.close()
        with caplog.at_level(logging.WARNING, logger="gateway.delivery.deliveries"):
            await wait_for(
                lambda: gw.metrics.deliveries.labels("any", "expired")._value.get() >= 1, 10)
        assert any("expired" in r.getMessage() for r in caplog.records)
    finally:
        await gw.stop()


def _transmitter():
    from pdu.codec import BindTransmitter

    return BindTransmitter


@pytest.mark.parametrize("url", ["smpp://u:p@127.0.0.1:1?window=0", "http://x", "smpp://u@h?x=1"])
def test_bad_upstream_url_is_refused_at_load(url):
    from config.errors import ConfigError
    from config.settings import Settings

    with pytest.raises(ConfigError):
        Settings(upstream_url=url)


async def test_validity_runs_out_even_while_no_upstream_is_up(tmp_path):
    upstreams = [{"name": "down", "host": "127.0.0.1", "port": 9, "system_id": "gw",
                  "reconnect_min": 0.2, "reconnect_max": 0.5}]
    gw = await _gateway(tmp_path, upstreams=upstreams)
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        now = datetime.now(UTC)
        expired = await _insert(gw, account, expires_at=now - timedelta(seconds=1))
        waiting = await _insert(gw, account, expires_at=now + timedelta(hours=1))
        await wait_for(lambda: str(expired.id) in esme.receipts, 10)
        assert parse_receipt(esme.receipts[str(expired.id)][0].short_message).stat == "EXPIRED"
        assert (await gw.messages.get(waiting.id))["status"] == "ACCEPTED"
        await esme.close()
    finally:
        await gw.stop()

"""Submit operations over real TCP against a whole gateway (gateway/submit): submit_multi,
query_sm, cancel_sm, replace_sm, replace_if_present_flag, the default validity period,
and what an SMPP 5.0 session is told (congestion_state, sc_interface_version); the books
checked after the operations that move money."""

from __future__ import annotations

import asyncio

from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import admin
from sqlalchemy import func, select

from gateway.app import Gateway
from pdu.codec import (
    BindTransceiver,
    CancelSm,
    QuerySm,
    ReplaceSm,
    SmeDest,
    SubmitMulti,
)
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S
from pdu.tlv import Tag, as_cstr, as_int
from store import tables
from store.invariants import ledger_violations
from store.ledger import LedgerStore

IN_AN_HOUR = "000000010000000R"  # relative schedule: the message waits in the outbox


async def _statuses(gw: Gateway) -> dict[str, int]:
    async with gw.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.messages.c.status, func.count()).group_by(tables.messages.c.status)
        )
        return {status: n for status, n in rows}


async def _books_balance(gw: Gateway) -> None:
    await gw.writer.flush()
    assert await ledger_violations(gw.engine) == []


async def test_submit_multi_one_id_for_every_destination_stop_listed_free(gateway):
    account = await ready_account(gateway, credits="100")
    sid = account["system_id"]
    # The provider's default limit: 20 messages per second, a burst of 20.
    await admin(gateway, "account.set", system_id=sid, throughput=20)
    stopped = "33600000007"
    await admin(gateway, "stop.add", system_id=sid, destination=stopped)
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    dests = [f"336000000{i:02d}" for i in range(30)]
    resp = await esme.request(SubmitMulti(
        source_addr_ton=5, source_addr="ACME", registered_delivery=1,
        short_message=b"to thirty",
        dest_addresses=[SmeDest(1, 1, d) for d in dests]))
    assert resp.command_status == 0, S(resp.command_status).name
    assert resp.unsuccess_smes == []
    group = resp.message_id
    await wait_for(lambda: len(esme.receipts.get(group, [])) == 30, 15, "30 receipts")
    await esme.close()
    receipts = {r.source_addr: parse_receipt(r.short_message) for r in esme.receipts[group]}
    assert set(receipts) == set(dests)
    assert all(as_cstr(r.get_tlv(Tag.RECEIPTED_MESSAGE_ID)) == group
               for r in esme.receipts[group])
    delivered = [d for d, r in receipts.items() if r.stat == "DELIVRD"]
    assert len(delivered) == 29 and stopped not in delivered
    assert (receipts[stopped].stat, receipts[stopped].err) == ("REJECTD", 53)
    assert all(r.message_id == group for r in receipts.values())
    # 29 charged at the default rate of 1.00, the STOP-listed one free.
    assert gateway.accounts.get(sid).balance == 100_00 - 29 * 100
    await _books_balance(gateway)


async def test_submit_multi_refuse_mode_lists_the_stop_listed_as_unsuccessful(gateway):
    account = await ready_account(gateway, credits="10")
    sid = account["system_id"]
    await admin(gateway, "account.set", system_id=sid, stop_mode="refuse")
    await admin(gateway, "stop.add", system_id=sid, destination="33600000001")
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    resp = await esme.request(SubmitMulti(
        source_addr_ton=0, source_addr="ACME", short_message=b"hi",
        dest_addresses=[SmeDest(1, 1, "33600000001"), SmeDest(0, 0, "+33600000002")]))
    await esme.close()
    assert resp.command_status == 0
    assert [(u.addr, u.error_status_code) for u in resp.unsuccess_smes] == [
        ("33600000001", S.ESME_RINVDSTADR)]
    assert gateway.accounts.get(sid).balance == 10_00 - 100
    await _books_balance(gateway)


async def test_replace_sm_reprices_and_checks_like_submit_sm(gateway):
    account = await ready_account(gateway, credits="20")
    sid = account["system_id"]
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    (resp,) = await esme.submit_many([submit_pdu("33612345678", "short",
                                                 schedule_delivery_time=IN_AN_HOUR)])
    assert gateway.accounts.get(sid).balance == 19_00
    three = b"", [(Tag.MESSAGE_PAYLOAD, b"x" * 400)]
    answer = await esme.request(ReplaceSm(message_id=resp.message_id, short_message=three[0],
                                          tlvs=three[1]))
    assert answer.command_status == 0
    assert gateway.accounts.get(sid).balance == 17_00  # exactly two more segments
    row = await gateway.messages.get(int(resp.message_id))
    assert (row["segments"], row["cost"], row["body"]) == (3, 300, b"x" * 400)
    # Back to one segment: the two are refunded.
    assert (await esme.request(ReplaceSm(message_id=resp.message_id,
                                         short_message=b"short again"))).command_status == 0
    assert gateway.accounts.get(sid).balance == 19_00
    # Bytes that are not GSM 03.38 for an unpacked account: the vendor status 0x402.
    bad = await esme.request(ReplaceSm(message_id=resp.message_id, short_message=b"caf\xe9"))
    assert bad.command_status == S.ESME_RINVGSM7CODING
    too_long = await esme.request(ReplaceSm(message_id=resp.message_id, short_message=b"",
                                            tlvs=[(Tag.MESSAGE_PAYLOAD, b"y" * 2000)]))
    assert too_long.command_status == S.ESME_RINVMSGLEN
    bad_expiry = await esme.request(ReplaceSm(message_id=resp.message_id, short_message=b"z",
                                              validity_period="garbage"))
    assert bad_expiry.command_status == S.ESME_RINVEXPIRY
    assert (await gateway.messages.get(int(resp.message_id)))["body"] == b"short again"
    await esme.close()
    await _books_balance(gateway)


async def test_replace_sm_of_a_message_already_sent_is_refused(gateway):
    account = await ready_account(gateway)
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    (resp,) = await esme.submit_many([submit_pdu("33612345678", "gone")])
    await wait_for(lambda: resp.message_id in esme.receipts, 10)
    answer = await esme.request(ReplaceSm(message_id=resp.message_id, short_message=b"late"))
    await esme.close()
    assert answer.command_status == S.ESME_RREPLACEFAIL


async def test_replace_if_present_replaces_the_waiting_message_and_refunds_it(gateway):
    account = await ready_account(gateway, credits="10")
    sid = account["system_id"]
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    first, other = await esme.submit_many([
        submit_pdu("33612345678", "first", schedule_delivery_time=IN_AN_HOUR, service_type="A"),
        submit_pdu("33612345678", "other service", schedule_delivery_time=IN_AN_HOUR,
                   service_type="B"),
    ])
    assert gateway.accounts.get(sid).balance == 8_00
    (second,) = await esme.submit_many([submit_pdu(
        "33612345678", "second", schedule_delivery_time=IN_AN_HOUR, service_type="A",
        replace_if_present_flag=1)])
    assert second.command_status == 0 and second.message_id != first.message_id
    await wait_for(lambda: first.message_id in esme.receipts, 10, "the replaced one's receipt")
    await esme.close()
    assert parse_receipt(esme.receipts[first.message_id][0].short_message).stat == "DELETED"
    old = await gateway.messages.get(int(first.message_id))
    kept = await gateway.messages.get(int(other.message_id))
    assert (old["status"], kept["status"]) == ("DELETED", "ACCEPTED")
    assert gateway.accounts.get(sid).balance == 8_00  # the first refunded, the second paid
    await _books_balance(gateway)


async def test_query_sm_answers_from_history(make_gateway):
    gw = await make_gateway(simulator_delay_ms=5)
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


async def test_cancel_sm_cancels_only_messages_still_waiting(make_gateway):
    gw = await make_gateway(simulator_delay_ms=5)
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


async def test_no_validity_period_expires_at_the_default_with_a_receipt(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--never-answer").start()
    gw = await make_gateway(default_validity=4.0, outbox_retry_min=0.5,
                            upstream_url=sim.url + "?response_timeout=1")
    try:
        await wait_for(lambda: gw.connectors["default"].is_up, 10)
        esme = await Esme.bind(*gw.endpoints.smpp, await ready_account(gw))
        started = asyncio.get_running_loop().time()
        (resp,) = await esme.submit_many([submit_pdu("33612345678", "nobody answers")])
        await wait_for(lambda: resp.message_id in esme.receipts, 15, "the EXPIRED receipt")
        took = asyncio.get_running_loop().time() - started
        await esme.close()
        row = await gw.messages.get(int(resp.message_id))
    finally:
        await gw.stop()
        sim.stop()
    receipt = esme.receipts[resp.message_id][0]
    assert parse_receipt(receipt.short_message).stat == "EXPIRED"
    assert as_int(receipt.get_tlv(Tag.MESSAGE_STATE)) == 3
    assert row["status"] == "EXPIRED"
    assert 3.5 <= took < 8, f"expired after {took:.1f}s, the default validity is 4s"


async def _congestion(gateway, interface_version: int) -> list[int | None]:
    account = await ready_account(gateway)
    esme = await Esme.bind(*gateway.endpoints.smpp, account,
                           bind_cls=lambda **kw: BindTransceiver(
                               interface_version=interface_version, **kw))
    seen = []
    (alone,) = await esme.submit_many([submit_pdu("33612345678", "alone")])
    burst = await esme.submit_many([submit_pdu("33612345678", f"n{i}") for i in range(40)],
                                   window=10)
    await esme.close()
    for resp in [alone, *burst]:
        raw = resp.get_tlv(Tag.CONGESTION_STATE)
        seen.append(None if raw is None else as_int(raw))
    return seen


async def test_smpp50_session_reports_congestion_rising_under_load(gateway):
    seen = await _congestion(gateway, 0x50)
    assert None not in seen
    assert all(0 <= c <= 100 for c in seen)
    assert max(seen[1:]) > seen[0], f"congestion did not rise under load: {seen}"


async def test_smpp34_session_never_sees_congestion_state(gateway):
    assert set(await _congestion(gateway, 0x34)) == {None}


async def test_smpp50_bind_resp_carries_sc_interface_version(gateway):
    from smpp_client import RawClient

    account = await ready_account(gateway)
    for version, expected in ((0x50, 0x50), (0x34, None)):
        client = await RawClient.connect(*gateway.endpoints.smpp)
        resp = await client.request(BindTransceiver(
            system_id=account["system_id"], password=account["password"],
            interface_version=version))
        raw = resp.get_tlv(Tag.SC_INTERFACE_VERSION)
        assert (None if raw is None else as_int(raw)) == expected
        await client.close()
        await asyncio.sleep(0.1)

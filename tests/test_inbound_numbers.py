"""Inbound numbers end to end (gateway/admin/ops/numbers, the MO path): an operator
assigns a number, prefix or range over the real admin socket, the standalone SMSC
simulator (`python -m gateway.upstream.smsc_sim`, over TCP) sends MOs to it as
deliver_sm, and they reach the owning account's bound receiver.

An MO to a number nobody owns is refused upstream (ESME_RINVDSTADR) and not recorded;
the simulator, like an SMSC, offers it again later, so it arrives once someone owns it.
"""

from __future__ import annotations

import asyncio

import pytest
from delivery_helpers import Esme, SimProcess, ready_account, wait_for
from gw_helpers import AdminFailed, admin

from gateway.app import Gateway
from pdu.codec import BindReceiver

NO_OWNER = 'smppgw_mo_refused_total{reason="no_owner"}'


async def _refused_no_owner(gw: Gateway) -> float:
    """The gateway's count of MOs refused for want of an owner, scraped over HTTP."""
    reader, writer = await asyncio.open_connection(*gw.endpoints.metrics)
    writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    for line in data.decode().splitlines():
        if line.startswith(NO_OWNER + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _until_refused_beyond(gw: Gateway, count: float, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await _refused_no_owner(gw) <= count:
        assert loop.time() < deadline, f"no MO refused for want of an owner past {count}"
        await asyncio.sleep(0.05)


async def _stored_mos(gw: Gateway, system_id: str | None = None) -> list[dict]:
    args = {"system_id": system_id} if system_id else {}
    return await admin(gw, "history.query", direction="MO", limit=1000, **args)


async def _receiver(gw: Gateway, account: dict) -> Esme:
    return await Esme.bind(*gw.endpoints.smpp, account, bind_cls=BindReceiver)


async def test_an_mo_to_an_assigned_number_reaches_the_owners_receiver(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--mo-rate", "20", "--mo-to", "33700000001").start()
    receivers: list[Esme] = []
    gw = await make_gateway(upstream_url=sim.url)
    try:
        owner, other = await ready_account(gw), await ready_account(gw)
        added = await admin(gw, "number.add", system_id=owner["system_id"],
                            number="+33 7 00 00 00 01")
        assert added == {"system_id": owner["system_id"], "number": "33700000001",
                         "kind": "exact"}
        receivers = [await _receiver(gw, owner), await _receiver(gw, other)]
        owner_rx, other_rx = receivers
        await wait_for(lambda: len(owner_rx.mos) >= 3, 30, "three MOs at the owner")
        assert {mo.destination_addr for mo in owner_rx.mos} == {"33700000001"}
        assert all(mo.esm_class == 0 for mo in owner_rx.mos)  # MOs, not receipts
        assert other_rx.mos == []
        stored = await _stored_mos(gw, owner["system_id"])
        assert stored and {m["dest_addr"] for m in stored} == {"33700000001"}
        audit = await admin(gw, "audit.list", action="number.")
        assert [(e["action"], e["target"], e["after"]) for e in audit] == [
            ("number.add", owner["system_id"], added)]
    finally:
        for esme in receivers:
            await esme.close()
        await gw.stop()
        sim.stop()


async def test_prefixes_and_ranges_route_mos_and_never_overlap_between_accounts(
    make_gateway, tmp_path
):
    owned = {"33612000001", "33612999999", "33700000500"}
    unowned = {"33700001500", "44700000001"}
    sim = SimProcess(tmp_path, "--mo-rate", "40", "--mo-to", ",".join(sorted(owned | unowned)),
                     ).start()
    receivers: list[Esme] = []
    gw = await make_gateway(upstream_url=sim.url)
    try:
        prefix_acct, range_acct, late = [await ready_account(gw) for _ in range(3)]
        assert (await admin(gw, "number.add", system_id=prefix_acct["system_id"],
                            number="33612*"))["kind"] == "prefix"
        assert (await admin(gw, "number.add", system_id=range_acct["system_id"],
                            number="33700000000-33700000999"))["kind"] == "range"
        receivers = [await _receiver(gw, a) for a in (prefix_acct, range_acct, late)]
        prefix_rx, range_rx, late_rx = receivers

        def dests(esme: Esme) -> set[str]:
            return {mo.destination_addr for mo in esme.mos}

        await wait_for(lambda: dests(prefix_rx) == {"33612000001", "33612999999"}
                       and dests(range_rx) == {"33700000500"}, 30, "MOs by prefix and range")
        # The unowned ones were refused upstream, again and again, and never recorded.
        await _until_refused_beyond(gw, 2)
        assert unowned.isdisjoint({m["dest_addr"] for m in await _stored_mos(gw)})
        assert late_rx.mos == []

        # Overlaps with another account's entry are refused, naming it.
        for number, theirs, owner in [
            ("336129*", "33612*", prefix_acct), ("33612999999", "33612*", prefix_acct),
            ("3361*", "33612*", prefix_acct),
            ("33700000900-33700001999", "33700000000-33700000999", range_acct),
            ("337000005*", "33700000000-33700000999", range_acct),
        ]:
            with pytest.raises(AdminFailed,
                               match=rf"overlaps {theirs.replace('*', '[*]')}, which account "
                                     rf"'{owner['system_id']}' holds"):
                await admin(gw, "number.add", system_id=late["system_id"], number=number)
        # Next to them is free; the MO the simulator kept offering now has an owner.
        await admin(gw, "number.add", system_id=late["system_id"],
                    number="33700001000-33700001999")
        await wait_for(lambda: "33700001500" in dests(late_rx), 30, "the waiting MO")
        assert dests(late_rx) == {"33700001500"}

        everything = await admin(gw, "number.list")
        assert sorted((e["system_id"], e["number"], e["kind"]) for e in everything) == sorted([
            (prefix_acct["system_id"], "33612*", "prefix"),
            (range_acct["system_id"], "33700000000-33700000999", "range"),
            (late["system_id"], "33700001000-33700001999", "range"),
        ])
        assert await admin(gw, "number.list", system_id=prefix_acct["system_id"]) == [
            {"system_id": prefix_acct["system_id"], "number": "33612*", "kind": "prefix"}]
    finally:
        for esme in receivers:
            await esme.close()
        await gw.stop()
        sim.stop()


async def test_a_removed_number_no_longer_gets_mos(make_gateway, tmp_path):
    sim = SimProcess(tmp_path, "--mo-rate", "20", "--mo-to", "33700000001").start()
    receivers: list[Esme] = []
    gw = await make_gateway(upstream_url=sim.url)
    try:
        owner = await ready_account(gw)
        sid = owner["system_id"]
        await admin(gw, "number.add", system_id=sid, number="33700000001")
        receivers = [await _receiver(gw, owner)]
        owner_rx = receivers[0]
        await wait_for(lambda: len(owner_rx.mos) >= 2, 30, "MOs before the removal")

        removed = await admin(gw, "number.remove", system_id=sid, number="+33700000001")
        assert removed == {"system_id": sid, "number": "33700000001", "kind": "exact"}
        # Once an MO is refused, every batch looked up before the removal is committed
        # (the MO path takes one batch at a time): what is stored now is all there is.
        await _until_refused_beyond(gw, await _refused_no_owner(gw))
        stored = len(await _stored_mos(gw, sid))
        await wait_for(lambda: len(owner_rx.mos) == stored, 30, "the MOs stored before")
        await _until_refused_beyond(gw, await _refused_no_owner(gw) + 2)
        assert len(await _stored_mos(gw, sid)) == stored
        assert len(owner_rx.mos) == stored
        assert await admin(gw, "number.list", system_id=sid) == []

        with pytest.raises(AdminFailed, match="holds no inbound number"):
            await admin(gw, "number.remove", system_id=sid, number="33700000001")
        audit = await admin(gw, "audit.list", action="number.remove")
        assert [(e["target"], e["before"], e["after"]) for e in audit] == [
            (sid, removed, None)]
    finally:
        for esme in receivers:
            await esme.close()
        await gw.stop()
        sim.stop()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ({"number": "33a612"}, "must be digits"),
        ({"number": ""}, "missing argument 'number'"),
        ({"number": "   "}, "empty"),
        ({"number": "1" * 21}, "1 to 20 digits"),
        ({"number": "33612349999-33612340000"}, "must not be above"),
        ({"number": "336-3361"}, "same number of digits"),
        ({"number": "1-2-3"}, "one '-'"),
        ({"number": "33612*", "system_id": "nobody"}, "unknown account 'nobody'"),
        ({"number": "33612*", "system_id": ""}, "missing argument 'system_id'"),
    ],
)
async def test_bad_number_arguments_are_refused_saying_why(gateway, args, complaint):
    account = await ready_account(gateway)
    with pytest.raises(AdminFailed, match=complaint):
        await admin(gateway, "number.add", **{"system_id": account["system_id"], **args})
    assert await admin(gateway, "number.list") == []
    assert await admin(gateway, "audit.list", action="number.") == []

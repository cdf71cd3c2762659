"""Upstreams and routes changed at run time (gateway/upstream/control, admin ops
upstream.* and route.*): added, stopped, started, removed while customers stay bound;
link state in `upstream list`, in a scrape, and in an ERROR line when a link dies.

The gateway runs in this process on a real SQLite file; the upstream SMSC is
`python -m gateway.upstream.smsc_sim` in a child process, killed for real.
"""

from __future__ import annotations

import logging
import re
import signal

import httpx
import pytest
from delivery_helpers import Esme, SimProcess, ready_account, submit_pdu, wait_for
from gw_helpers import AdminFailed, admin

from gateway.app import Gateway

SIM_LOGIN = {"system_id": "gw", "password": "secret"}


async def _up_in_scrape(gw: Gateway, name: str) -> float | None:
    host, port = gw.endpoints.metrics
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://{host}:{port}/metrics", timeout=10)).text
    match = re.search(rf'^smppgw_upstream_up{{upstream="{re.escape(name)}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def _state(gw: Gateway, name: str) -> dict:
    rows = await admin(gw, "upstream.list")
    return next(r for r in rows if r["name"] == name)


async def test_an_upstream_added_at_run_time_carries_traffic_and_stop_drains_it(
    make_gateway, tmp_path
):
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    gw = await make_gateway()
    try:
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        # The default: every destination goes to the built-in simulator.
        assert [r["name"] for r in await admin(gw, "upstream.list")] == ["simulator"]

        added = await admin(gw, "upstream.add", name="smsc-b", type="smpp", host="127.0.0.1",
                            port=sim.port, window=20, **SIM_LOGIN)
        assert added["name"] == "smsc-b" and "secret" not in str(added)
        await wait_for(lambda: gw.connectors["smsc-b"].is_up, 20, "smsc-b bound")
        await admin(gw, "route.set", prefix="337", connectors=["smsc-b"])

        resps = await esme.submit_many([submit_pdu(f"337{i:08d}") for i in range(20)])
        assert [r.command_status for r in resps] == [0] * 20
        await wait_for(lambda: len(sim.accepted()) == 20, 30, "20 messages at smsc-b")
        assert {m["dest"] for m in sim.accepted()} == {
            f"337{i:08d}" for i in range(20)}
        # Other destinations still go to the simulator, not to smsc-b.
        resps = await esme.submit_many([submit_pdu("33612345678")])
        assert resps[0].command_status == 0
        row = await _state(gw, "smsc-b")
        assert row["state"] == "up" and row["enabled"] is True and row["window"] == 20

        stopped = await admin(gw, "upstream.stop", name="smsc-b")
        assert stopped["state"] == "stopped" and stopped["enabled"] is False
        assert await _up_in_scrape(gw, "smsc-b") == 0.0
        # The customer is still bound on the same session: it submits and is answered;
        # the message waits in the outbox, since its route's only upstream is stopped.
        assert not esme.gone
        resps = await esme.submit_many([submit_pdu("33799999999")])
        assert resps[0].command_status == 0
        assert len(sim.accepted()) == 20

        await admin(gw, "upstream.start", name="smsc-b")
        await wait_for(lambda: len(sim.accepted()) == 21, 30, "the waiting message sent")
        assert not esme.gone
        await esme.close()
    finally:
        await gw.stop()
        sim.stop()


async def test_a_killed_upstream_shows_up_zero_in_a_scrape_and_an_error_line(
    make_gateway, tmp_path, caplog
):
    sim = SimProcess(tmp_path).start()
    gw = await make_gateway(upstream_url=sim.url + "?name=smsc-k&reconnect_min=0.2"
                            "&reconnect_max=0.5")
    try:
        await wait_for(lambda: gw.connectors["smsc-k"].is_up, 20, "smsc-k bound")
        assert await _up_in_scrape(gw, "smsc-k") == 1.0
        caplog.set_level(logging.ERROR, logger="gateway.upstream")
        sim.stop(signal.SIGKILL)
        await wait_for(lambda: not gw.connectors["smsc-k"].is_up, 20, "smsc-k down")
        assert await _up_in_scrape(gw, "smsc-k") == 0.0
        errors = [r for r in caplog.records
                  if r.levelno == logging.ERROR and "smsc-k" in r.getMessage()]
        assert errors, "no ERROR line for the lost link"
        assert "lost" in errors[0].getMessage()
        row = await _state(gw, "smsc-k")
        assert row["state"] == "down" and row["last_error"]
        assert row["reconnects"] >= 1
    finally:
        await gw.stop()


async def test_changing_an_upstream_reconnects_it_and_only_it(make_gateway, tmp_path):
    sim = SimProcess(tmp_path).start()
    upstreams = (
        {"name": "a", "type": "smpp", "host": "127.0.0.1", "port": sim.port, **SIM_LOGIN},
        {"name": "b", "type": "smpp", "host": "127.0.0.1", "port": sim.port, **SIM_LOGIN},
    )
    gw = await make_gateway(upstreams=upstreams)
    try:
        await wait_for(lambda: all(gw.connectors[n].is_up for n in "ab"), 20, "a and b bound")
        a_before, b_before = gw.connectors["a"], gw.connectors["b"]
        changed = await admin(gw, "upstream.set", name="a", window=5, password="other")
        assert changed["window"] == 5 and "other" not in str(changed)
        assert gw.connectors["a"] is not a_before  # rebuilt with the new settings
        assert gw.connectors["b"] is b_before and b_before.is_up  # untouched
        # The audit says what changed, never the password itself.
        entries = await admin(gw, "audit.list", action="upstream.set")
        assert entries and "other" not in str(entries)
        assert entries[0]["after"]["window"] == 5
    finally:
        await gw.stop()
        sim.stop()


async def test_bad_upstreams_and_routes_are_refused_with_every_mistake(make_gateway):
    gw = await make_gateway()
    try:
        with pytest.raises(AdminFailed) as bad:
            await admin(gw, "upstream.add", name="x", type="smpp", host=10, port="abc",
                        windw=3)
        message = str(bad.value)
        assert "host" in message and "port" in message and "windw" in message
        assert "window" in message  # the close match is suggested
        with pytest.raises(AdminFailed, match="unknown upstreams"):
            await admin(gw, "route.set", prefix="33", connectors=["nope"])
        with pytest.raises(AdminFailed, match="named by routes"):
            await admin(gw, "upstream.remove", name="simulator")
        with pytest.raises(AdminFailed, match="exists already"):
            await admin(gw, "upstream.add", name="simulator", type="simulator")
        with pytest.raises(AdminFailed, match="unknown upstream"):
            await admin(gw, "upstream.stop", name="nope")
        assert [r["name"] for r in await admin(gw, "upstream.list")] == ["simulator"]
    finally:
        await gw.stop()


async def test_routes_and_upstreams_survive_a_restart_and_the_config_only_seeds(
    make_gateway, tmp_path
):
    state = tmp_path / "state"
    gw = await make_gateway(state_dir=state)
    await admin(gw, "upstream.add", name="sim-2", type="simulator", latency_ms=5)
    await admin(gw, "route.set", prefix="44", connectors=["sim-2", "simulator"])
    await admin(gw, "upstream.stop", name="sim-2")
    await gw.stop()

    gw = await make_gateway(state_dir=state)
    try:
        names = {r["name"]: r for r in await admin(gw, "upstream.list")}
        assert set(names) == {"simulator", "sim-2"}
        assert names["sim-2"]["state"] == "stopped"
        routes = await admin(gw, "route.list")
        assert {"prefix": "44", "account": "", "connectors": ["sim-2", "simulator"]} in routes
        removed = await admin(gw, "route.remove", prefix="44")
        assert removed["removed"] is True
        assert gw.router.route_for("any", "4412345") is not None  # the "" route remains
        await admin(gw, "upstream.remove", name="sim-2")
        assert "sim-2" not in gw.connectors
    finally:
        await gw.stop()


async def test_stopping_an_upstream_mid_burst_loses_and_doubles_nothing(make_gateway, tmp_path):
    """A stop while a burst is on its way: what was written is answered before the
    unbind (drained), what was only queued goes back to the outbox, and after a start
    every message reaches the SMSC exactly once."""
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    upstreams = ({"name": "slow", "type": "smpp", "host": "127.0.0.1", "port": sim.port,
                  "throughput": 100, "window": 5, **SIM_LOGIN},)
    gw = await make_gateway(upstreams=upstreams)
    try:
        await wait_for(lambda: gw.connectors["slow"].is_up, 20, "slow bound")
        account = await ready_account(gw)
        esme = await Esme.bind(*gw.endpoints.smpp, account)
        burst = [f"336{i:08d}" for i in range(150)]
        resps = await esme.submit_many([submit_pdu(d) for d in burst])
        assert [r.command_status for r in resps] == [0] * 150
        await wait_for(lambda: len(sim.accepted()) >= 10, 20, "the burst under way")
        await admin(gw, "upstream.stop", name="slow")
        taken_while_stopping = len(sim.accepted())
        assert taken_while_stopping < 150, "the burst ended before the stop: no test"
        assert (await _state(gw, "slow"))["state"] == "stopped"
        await admin(gw, "upstream.start", name="slow")
        await wait_for(lambda: len(sim.accepted()) >= 150, 60, "the rest after the start")
        await wait_for(lambda: len(esme.receipts) == 150, 30, "a receipt for each")
        # Each exactly once: a submit cut before its answer would have been sent again.
        dests = [m["dest"] for m in sim.accepted()]
        assert sorted(dests) == sorted(burst)
        assert not esme.gone
        await esme.close()
    finally:
        await gw.stop()
        sim.stop()

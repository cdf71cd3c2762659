"""The SMPP client connector against the standalone simulator, and its configuration.

No gateway here: a connector, a real SMSC process on loopback, and the callbacks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from delivery_helpers import SimProcess, wait_for
from store_fixtures import new_message

from config.errors import ConfigError
from config.settings import Settings
from config.upstreams import RouteConfig, UpstreamConfig, resolve, upstream_from_url
from gateway.upstream.base import NOT_SENT, HandOvers
from gateway.upstream.router import Router
from gateway.upstream.smpp import SmppConnector, submits_for


def _connector(port: int, deliveries: list, **cfg) -> SmppConnector:
    config = UpstreamConfig(name="up", host="127.0.0.1", port=port, system_id="gw",
                            password="secret", **cfg)
    return SmppConnector(config, lambda name, pdu, ack: (deliveries.append(pdu), ack(0)), HandOvers())


async def test_window_and_throughput_are_kept_and_receipts_come_back(tmp_path):
    sim = SimProcess(tmp_path, "--latency-ms", "20").start()
    deliveries: list = []
    connector = _connector(sim.port, deliveries, window=5, throughput=100.0)
    await connector.start()
    try:
        await wait_for(lambda: connector.is_up, 10, "bind")
        most_in_flight = 0

        def watch() -> None:
            nonlocal most_in_flight
            most_in_flight = max(most_in_flight, connector.in_flight)

        loop = asyncio.get_running_loop()
        started = loop.time()
        futures = []
        for i in range(150):
            futures.append(connector.send(new_message(i + 1, 1, dest_addr=f"336{i:08d}")))
            watch()
        while not all(f.done() for f in futures):
            watch()
            await asyncio.sleep(0.001)
        elapsed = loop.time() - started
        results = [f.result() for f in futures]
        assert all(r.ok and r.upstream_id for r in results)
        assert len({r.upstream_id for r in results}) == 150
        assert most_in_flight <= 5
        assert elapsed >= 1.2  # 150 at 100/s, after a burst of at most one window
        await wait_for(lambda: len(deliveries) == 150, 10, "150 receipts")
        assert {d.get_tlv(0x001E)[:-1].decode() for d in deliveries} == {
            r.upstream_id for r in results}
    finally:
        await connector.stop()
        sim.stop()


async def test_refused_bind_keeps_retrying_with_back_off_and_sends_nothing(tmp_path):
    sim = SimProcess(tmp_path, "--password", "other").start()
    connector = _connector(sim.port, [], reconnect_min=0.1, reconnect_max=0.2)
    await connector.start()
    try:
        await asyncio.sleep(0.6)
        assert not connector.is_up and connector.connects == 0
        result = await connector.send(new_message(1, 1))
        assert result.status == NOT_SENT and result.temporary and not result.reached_upstream
    finally:
        await connector.stop()
        sim.stop()


def test_submit_sm_asks_for_a_receipt_and_carries_validity_and_long_bodies():
    expires = datetime(2026, 12, 1, 10, 30, 5, tzinfo=UTC)
    (pdu,) = submits_for(new_message(1, 1, registered_delivery=0, expires_at=expires,
                                     body=b"x" * 300), long_messages="payload")
    assert pdu.registered_delivery == 1
    assert pdu.validity_period == "261201103005000+"
    assert pdu.short_message == b"" and pdu.get_tlv(0x0424) == b"x" * 300


def test_longest_prefix_wins_and_account_rules_beat_general_ones():
    router = Router([
        RouteConfig(connectors=("default",)),
        RouteConfig(prefix="33", connectors=("fr",)),
        RouteConfig(prefix="336", connectors=("fr-mobile", "fr")),
        RouteConfig(prefix="33", account="vip", connectors=("premium",)),
    ])
    assert router.route_for("x", "33612").connectors == ("fr-mobile", "fr")
    assert router.route_for("x", "33112").connectors == ("fr",)
    assert router.route_for("vip", "33112").connectors == ("premium",)
    assert router.route_for("vip", "33612").connectors == ("fr-mobile", "fr")
    assert router.route_for("x", "4471").connectors == ("default",)
    assert Router([RouteConfig(prefix="33", connectors=("fr",))]).route_for("x", "44") is None


def test_no_configuration_means_one_simulator_for_everything():
    delivery = resolve((), ())
    assert [(u.name, u.type) for u in delivery.upstreams] == [("simulator", "simulator")]
    assert delivery.routes[0].prefix == "" and delivery.routes[0].connectors == ("simulator",)


def test_upstream_url_is_the_one_connector_shortcut():
    cfg = upstream_from_url("smpps://acme:p%40ss@smsc.example:3550?window=20&throughput=50")
    assert (cfg.host, cfg.port, cfg.system_id, cfg.password, cfg.tls) == (
        "smsc.example", 3550, "acme", "p@ss", True)
    assert (cfg.window, cfg.throughput) == (20, 50.0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"routes": [{"prefix": "33", "connectors": ["nowhere"]}]}, "unknown connectors"),
        ({"upstreams": [{"name": "a", "host": "h"}]}, "system_id is required"),
        ({"upstreams": [{"name": "a", "system_id": "x", "bind": "both"}]}, "bind"),
        ({"upstreams": [{"name": "s", "type": "simulator", "mix": "lost=1"}]}, "outcome mix"),
        ({"upstreams": [{"name": "a", "system_id": "x", "colour": "red"}]}, "unknown upstream"),
        ({"routes": [{"prefix": "+33", "connectors": ["simulator"]}]}, "digits"),
    ],
)
def test_configuration_mistakes_are_refused_at_load(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        Settings(**kwargs)


def test_toml_tables_load(tmp_path):
    from config.loader import load_settings

    path = tmp_path / "gw.toml"
    path.write_text(
        'vendor_tlvs = true\n'
        '[[upstreams]]\nname = "a"\nsystem_id = "acme"\nport = 2775\nwindow = 20\n'
        '[[upstreams]]\nname = "sim"\ntype = "simulator"\nmix = "delivered=0.9,expired=0.1"\n'
        '[[routes]]\nprefix = "33"\nconnectors = ["a", "sim"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, env={})
    assert settings.vendor_tlvs is True
    delivery = resolve(settings.upstreams, settings.routes)
    assert [u.name for u in delivery.upstreams] == ["a", "sim"]
    assert delivery.routes[0].connectors == ("a", "sim")

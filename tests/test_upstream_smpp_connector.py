"""The SMPP client connector (gateway/upstream/smpp) against the standalone simulator,
and the submit_sm it builds for a stored message.

No gateway here: a connector, a real SMSC process on loopback, and the callbacks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from delivery_helpers import SimProcess, wait_for
from store_fixtures import new_message

from config.upstreams import UpstreamConfig
from gateway.upstream.base import NOT_SENT, HandOvers
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

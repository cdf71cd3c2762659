"""Connectors and the router, built from the settings."""

from __future__ import annotations

from config.settings import Settings
from config.upstreams import resolve
from gateway.upstream.base import Connector, DeliverCallback, HandOvers, ReceiptCallback
from gateway.upstream.router import Router


def build_delivery(
    settings: Settings, on_deliver: DeliverCallback, report: ReceiptCallback,
    handovers: HandOvers,
) -> tuple[dict[str, Connector], Router]:
    """Connectors by name, and the router. SMPP upstreams hand what they receive to
    `on_deliver`; in-process simulators report outcomes structured, to `report`."""
    from gateway.upstream.simulator import SimulatorConnector
    from gateway.upstream.smpp import SmppConnector

    delivery = resolve(
        settings.upstreams, settings.routes, settings.upstream_url, settings.simulator_delay_ms
    )
    connectors: dict[str, Connector] = {}
    for cfg in delivery.upstreams:
        if cfg.type == "simulator":
            connectors[cfg.name] = SimulatorConnector(cfg, on_deliver, handovers, report)
        else:
            connectors[cfg.name] = SmppConnector(cfg, on_deliver, handovers)
    return connectors, Router(delivery.routes)

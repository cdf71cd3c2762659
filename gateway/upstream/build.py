"""Connectors and the router, built from the settings."""

from __future__ import annotations

from config.settings import Settings
from config.upstreams import resolve
from gateway.upstream.base import Connector, DeliverCallback, HandOvers
from gateway.upstream.router import Router


def build_delivery(
    settings: Settings, on_deliver: DeliverCallback, handovers: HandOvers
) -> tuple[dict[str, Connector], Router]:
    from gateway.upstream.simulator import SimulatorConnector
    from gateway.upstream.smpp import SmppConnector

    delivery = resolve(
        settings.upstreams, settings.routes, settings.upstream_url, settings.simulator_delay_ms
    )
    connectors: dict[str, Connector] = {}
    for cfg in delivery.upstreams:
        cls = SimulatorConnector if cfg.type == "simulator" else SmppConnector
        connectors[cfg.name] = cls(cfg, on_deliver, handovers)
    return connectors, Router(delivery.routes)

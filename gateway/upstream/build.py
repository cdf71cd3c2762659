"""Connectors built from their settings, and the set a node starts with."""

from __future__ import annotations

from config.settings import Settings
from config.upstreams import Delivery, UpstreamConfig, resolve
from gateway.upstream.base import Connector, DeliverCallback, HandOvers, ReceiptCallback
from gateway.upstream.control import ConnectorFactory


def initial_delivery(settings: Settings) -> Delivery:
    """The configuration's upstreams and routes ([[upstreams]], upstream_url, or the
    built-in simulator): what fills an empty store."""
    return resolve(
        settings.upstreams, settings.routes, settings.upstream_url, settings.simulator_delay_ms
    )


def connector_factory(
    on_deliver: DeliverCallback, report: ReceiptCallback, handovers: HandOvers,
) -> ConnectorFactory:
    """How a connector is made from its settings. SMPP upstreams hand what they receive
    to `on_deliver`; in-process simulators report outcomes structured, to `report`."""
    from gateway.upstream.simulator import SimulatorConnector
    from gateway.upstream.smpp import SmppConnector

    def build(cfg: UpstreamConfig) -> Connector:
        if cfg.type == "simulator":
            return SimulatorConnector(cfg, on_deliver, handovers, report)
        return SmppConnector(cfg, on_deliver, handovers)

    return build

"""The router (gateway/upstream/router): which connectors, in order, serve an account's
destination."""

from __future__ import annotations

from config.upstreams import RouteConfig
from gateway.upstream.router import Router


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

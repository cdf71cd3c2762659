"""Routing: which connectors, in failover order, carry a message to a destination.

Rules match by destination prefix, the longest winning; a rule bound to an account beats
a general rule of the same length. `route_for` is pure memory work, cheap enough for the
submit path, which refuses a message no rule covers instead of accepting and dropping it.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.upstreams import RouteConfig


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    account: str | None
    connectors: tuple[str, ...]


class Router:
    def __init__(self, routes: tuple[RouteConfig, ...] | list[RouteConfig]) -> None:
        self.replace(routes)

    def replace(self, routes: tuple[RouteConfig, ...] | list[RouteConfig]) -> None:
        """A new table, all at once (an operator changed the routes)."""
        # Longest prefix first, account-specific before general: the first match wins.
        self._routes = sorted(
            (Route(r.prefix, r.account, tuple(r.connectors)) for r in routes),
            key=lambda r: (-len(r.prefix), r.account is None),
        )

    def route_for(self, account: str, destination: str) -> Route | None:
        """The route for a customer (system_id) and a destination_addr, or None."""
        for route in self._routes:
            if route.account is not None and route.account != account:
                continue
            if destination.startswith(route.prefix):
                return route
        return None

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

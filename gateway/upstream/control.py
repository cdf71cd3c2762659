"""Upstreams and routes at run time: what this node runs, kept in step with the store.

The store holds the upstreams (settings, and whether an operator stopped one) and the
routes; the config file's [[upstreams]] / [[routes]] (or upstream_url, or the built-in
simulator) fill it on the first start that finds it empty. `UpstreamControl` runs a
connector per upstream (the same dict the outbox reads) and keeps the router's table;
a change — made here through the admin socket, or on another node and heard as a
ROUTING_CHANGED notice — is applied by comparing the store with what runs: a changed
connector is stopped (draining what it has in flight) and started anew, a stopped one
drains, the others keep their links, and no customer session notices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from config.upstreams import Delivery, RouteConfig, UpstreamConfig, parse_route, parse_upstream
from gateway.upstream.base import Connector
from gateway.upstream.router import Router
from gateway.upstream.stats import ELSEWHERE
from store.changes import RELOAD_ALL, ChangeFeed
from store.errors import StoreError
from store.upstreams import StoredRoute, StoredUpstream, UpstreamStore

log = logging.getLogger(__name__)

# The notice every node hears when an upstream or a route changed.
ROUTING_CHANGED = "routing"

ConnectorFactory = Callable[[UpstreamConfig], Connector]


def config_dict(cfg: UpstreamConfig) -> dict[str, Any]:
    """An upstream's settings as stored (JSON): every key, tuples as lists."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(cfg).items()}


class UpstreamControl:
    def __init__(
        self,
        store: UpstreamStore,
        initial: Delivery,
        build: ConnectorFactory,
        connectors: dict[str, Connector],
        router: Router,
        changes: ChangeFeed,
        *,
        on_started: Callable[[Connector], Awaitable[None]],
        drain: float,
        node_id: int = 0,
    ) -> None:
        self._store = store
        self._initial = initial
        self._build = build
        # Shared with the outbox, which picks from it: changed in place, never replaced.
        self.connectors = connectors
        self.router = router
        self._changes = changes
        self._on_started = on_started
        self._drain = drain
        self._node_id = node_id
        self._configs: dict[str, UpstreamConfig] = {}
        # What the store says (an operator's start/stop), and what runs on this node.
        self._enabled: dict[str, bool] = {}
        self._running: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Fill an empty store with the initial set, start what it holds, and follow
        the changes other nodes make."""
        seeded = await self._store.seed(
            [(u.name, config_dict(u)) for u in self._initial.upstreams],
            [StoredRoute(r.prefix, r.account or "", tuple(r.connectors))
             for r in self._initial.routes])
        if seeded:
            log.info("upstreams: the store had none; took the configured ones (%s)",
                     ", ".join(u.name for u in self._initial.upstreams))
        await self.refresh()
        if not seeded:
            self._warn_if_config_differs()
        self._changes.listen(self._heard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._lock:
            for name, connector in self.connectors.items():
                if self._running.get(name):
                    await connector.stop()

    def _warn_if_config_differs(self) -> None:
        configured = {u.name: config_dict(u) for u in self._initial.upstreams}
        stored = {name: config_dict(cfg) for name, cfg in self._configs.items()}
        if configured != stored:
            log.warning(
                "upstreams: the configuration's upstreams (%s) differ from the store's (%s);"
                " the store's run (the configuration only fills an empty store). Change them"
                " with `smppgw admin upstream ...`",
                ", ".join(sorted(configured)) or "none", ", ".join(sorted(stored)) or "none")

    def _heard(self, payload: str) -> None:
        if payload in (ROUTING_CHANGED, RELOAD_ALL):
            task = asyncio.get_running_loop().create_task(self._refresh_logged())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("upstreams: could not apply a change made on another node")

    # --- applying the store ----------------------------------------------------------

    async def refresh(self) -> None:
        """Make what runs match the store: connectors started, stopped, rebuilt; routes."""
        stored_ups, stored_routes = await self._store.load()
        async with self._lock:
            wanted: dict[str, StoredUpstream] = {u.name: u for u in stored_ups}
            for name in [n for n in self.connectors if n not in wanted]:
                await self._retire(name, "removed")
            for name, stored in wanted.items():
                try:
                    cfg = parse_upstream(stored.config, where=f"upstream {name!r}")
                except ValueError as exc:
                    # A row written by an older or newer version: say so, keep the rest.
                    log.error("upstreams: %s cannot run: %s", name, exc)
                    continue
                running = self.connectors.get(name)
                if running is not None and self._configs.get(name) != cfg:
                    await self._retire(name, "changed")
                    running = None
                if running is None:
                    running = self.connectors[name] = self._build(cfg)
                    self._configs[name] = cfg
                    self._running[name] = False
                self._enabled[name] = stored.enabled
                here = not cfg.nodes or self._node_id in cfg.nodes
                if stored.enabled and here and not self._running[name]:
                    await running.start()
                    self._running[name] = True
                    await self._on_started(running)
                    log.info("upstreams: %s started", name)
                elif not (stored.enabled and here) and self._running[name]:
                    await self._halt(running)
                    self._running[name] = False
                    log.warning("upstreams: %s stopped %s", name, "by an operator"
                                if not stored.enabled else "here: it runs on other nodes")
                if not here:
                    running.stats.set_state(ELSEWHERE)
            self.router.replace([
                RouteConfig(connectors=r.connectors, prefix=r.prefix, account=r.account or None)
                for r in stored_routes])

    async def _retire(self, name: str, why: str) -> None:
        connector = self.connectors.pop(name)
        if self._running.pop(name, False):
            await self._halt(connector)
        self._configs.pop(name, None)
        self._enabled.pop(name, None)
        log.info("upstreams: %s %s", name, why)

    async def _halt(self, connector: Connector) -> None:
        await connector.stop(drain=self._drain)

    async def _changed(self) -> None:
        await self.refresh()
        await self._changes.publish(ROUTING_CHANGED)

    # --- what the admin operations call ----------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(self._configs):
            cfg, connector = self._configs[name], self.connectors[name]
            row: dict[str, Any] = {"name": name, "type": cfg.type,
                                   "enabled": self._enabled.get(name, False)}
            row.update(connector.describe())
            if not row["enabled"]:
                row["state"] = "stopped"
            elif cfg.nodes and self._node_id not in cfg.nodes:
                row["state"] = ELSEWHERE
            row["nodes"] = list(cfg.nodes) or "all"
            # A network link's settings; an in-process simulator has none of them.
            smpp = cfg.type == "smpp"
            for key in ("window", "throughput", "host", "port", "system_id", "bind"):
                row[key] = getattr(cfg, key) if smpp and getattr(cfg, key) != "" else None
            rows.append(row)
        return rows

    def config_of(self, name: str) -> UpstreamConfig:
        cfg = self._configs.get(name)
        if cfg is None:
            raise StoreError(f"unknown upstream {name!r}; known: {', '.join(sorted(self._configs))}"
                             if self._configs else f"unknown upstream {name!r}; none is configured")
        return cfg

    async def add(self, values: dict[str, Any]) -> UpstreamConfig:
        cfg = parse_upstream(values, where="upstream")
        await self._store.add(cfg.name, config_dict(cfg))
        await self._changed()
        return cfg

    async def change(self, name: str, values: dict[str, Any]) -> tuple[UpstreamConfig,
                                                                      UpstreamConfig]:
        """Change some settings of an upstream; its connector reconnects with them."""
        old = self.config_of(name)
        if "name" in values and values["name"] != name:
            raise StoreError("an upstream cannot be renamed; add a new one and move the routes")
        cfg = parse_upstream({**config_dict(old), **values}, where=f"upstream {name!r}")
        await self._store.replace(name, config_dict(cfg))
        await self._changed()
        return old, cfg

    async def remove(self, name: str) -> None:
        self.config_of(name)
        await self._store.remove(name)
        await self._changed()

    async def set_enabled(self, name: str, enabled: bool) -> None:
        self.config_of(name)
        await self._store.set_enabled(name, enabled)
        await self._changed()

    def routes(self) -> list[dict[str, Any]]:
        return [{"prefix": r.prefix, "account": r.account or "", "connectors": list(r.connectors)}
                for r in self.router.routes]

    async def set_route(self, values: dict[str, Any]) -> tuple[StoredRoute | None, StoredRoute]:
        """Create or replace a route; (the one it replaced, the one now stored)."""
        route = parse_route(values, where="route")
        new = StoredRoute(route.prefix, route.account or "", tuple(route.connectors))
        old = await self._store.set_route(new)
        await self._changed()
        return old, new

    async def remove_route(self, prefix: str, account: str | None) -> StoredRoute:
        old = await self._store.remove_route(prefix, account or "")
        await self._changed()
        return old

"""Upstreams and routes as data: the repository behind `smppgw admin upstream|route`.

An upstream is its name, its settings as a JSON object (config.upstreams checks them
before they get here) and whether an operator stopped it; a route is a destination
prefix, an optional account and the connectors in failover order. `seed` writes the
config file's set on the first start that finds both tables empty. Every method is one
short transaction; the gateway keeps what it runs in memory and re-reads on change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.errors import StoreError
from store.tables import routes, upstreams, utcnow


class UpstreamNotFound(StoreError):
    """No upstream of that name."""


class RouteNotFound(StoreError):
    """No route for that prefix (and account)."""


@dataclass(frozen=True, slots=True)
class StoredUpstream:
    name: str
    config: dict[str, Any]
    enabled: bool


@dataclass(frozen=True, slots=True)
class StoredRoute:
    prefix: str
    account: str  # "" = every account
    connectors: tuple[str, ...]


class UpstreamStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # --- reading ---------------------------------------------------------------------

    async def load(self) -> tuple[list[StoredUpstream], list[StoredRoute]]:
        """Every upstream (by name) and every route, in one read."""
        async with self._engine.connect() as conn:
            ups = (await conn.execute(sa.select(upstreams).order_by(upstreams.c.name))).all()
            rts = (await conn.execute(
                sa.select(routes).order_by(routes.c.prefix, routes.c.account))).all()
        return [_upstream(r) for r in ups], [_route(r) for r in rts]

    # --- upstreams -------------------------------------------------------------------

    async def seed(self, ups: list[tuple[str, dict[str, Any]]],
                   rts: list[StoredRoute]) -> bool:
        """Write the initial set when both tables are empty; False if they were not
        (another node, or an earlier start, got there first)."""
        now = utcnow()
        async with self._writer.begin() as conn:
            has_up = (await conn.execute(sa.select(upstreams.c.name).limit(1))).first()
            has_route = (await conn.execute(sa.select(routes.c.id).limit(1))).first()
            if has_up or has_route:
                return False
            for name, config in ups:
                await conn.execute(upstreams.insert().values(
                    name=name, config=json.dumps(config, sort_keys=True), enabled=True,
                    updated_at=now))
            for r in rts:
                await conn.execute(routes.insert().values(
                    prefix=r.prefix, account=r.account, connectors=",".join(r.connectors),
                    updated_at=now))
        return True

    async def add(self, name: str, config: dict[str, Any]) -> None:
        try:
            async with self._writer.begin() as conn:
                await conn.execute(upstreams.insert().values(
                    name=name, config=json.dumps(config, sort_keys=True), enabled=True,
                    updated_at=utcnow()))
        except sa.exc.IntegrityError:
            raise StoreError(f"an upstream named {name!r} exists already; "
                             "change it with `upstream set`") from None

    async def replace(self, name: str, config: dict[str, Any]) -> None:
        async with self._writer.begin() as conn:
            result = await conn.execute(upstreams.update().where(upstreams.c.name == name)
                                        .values(config=json.dumps(config, sort_keys=True),
                                                updated_at=utcnow()))
        if result.rowcount == 0:
            raise UpstreamNotFound(f"unknown upstream {name!r}")

    async def set_enabled(self, name: str, enabled: bool) -> None:
        async with self._writer.begin() as conn:
            result = await conn.execute(upstreams.update().where(upstreams.c.name == name)
                                        .values(enabled=enabled, updated_at=utcnow()))
        if result.rowcount == 0:
            raise UpstreamNotFound(f"unknown upstream {name!r}")

    async def remove(self, name: str) -> None:
        """Remove an upstream no route names (StoreError naming the routes otherwise)."""
        async with self._writer.begin() as conn:
            using = [_route(r) for r in (await conn.execute(sa.select(routes))).all()
                     if name in r.connectors.split(",")]
            if using:
                shown = ", ".join(_route_name(r) for r in using)
                raise StoreError(f"upstream {name!r} is named by routes {shown}; "
                                 "change or remove them first")
            result = await conn.execute(upstreams.delete().where(upstreams.c.name == name))
        if result.rowcount == 0:
            raise UpstreamNotFound(f"unknown upstream {name!r}")

    # --- routes ----------------------------------------------------------------------

    async def set_route(self, route: StoredRoute) -> StoredRoute | None:
        """Create or replace the route of (prefix, account); returns the one replaced.
        Every connector it names must exist (StoreError otherwise)."""
        async with self._writer.begin() as conn:
            known = {n for (n,) in await conn.execute(sa.select(upstreams.c.name))}
            missing = [c for c in route.connectors if c not in known]
            if missing:
                raise StoreError(f"unknown upstreams {missing}; known: {sorted(known)}")
            where = (routes.c.prefix == route.prefix, routes.c.account == route.account)
            old = (await conn.execute(sa.select(routes).where(*where))).first()
            values = {"connectors": ",".join(route.connectors), "updated_at": utcnow()}
            if old is None:
                await conn.execute(routes.insert().values(
                    prefix=route.prefix, account=route.account, **values))
                return None
            await conn.execute(routes.update().where(*where).values(**values))
            return _route(old)

    async def remove_route(self, prefix: str, account: str = "") -> StoredRoute:
        async with self._writer.begin() as conn:
            where = (routes.c.prefix == prefix, routes.c.account == account)
            old = (await conn.execute(sa.select(routes).where(*where))).first()
            if old is None:
                raise RouteNotFound(f"no route {_route_name(StoredRoute(prefix, account, ()))}")
            await conn.execute(routes.delete().where(*where))
        return _route(old)


def _upstream(row: Any) -> StoredUpstream:
    return StoredUpstream(row.name, json.loads(row.config), bool(row.enabled))


def _route(row: Any) -> StoredRoute:
    return StoredRoute(row.prefix, row.account,
                       tuple(c for c in row.connectors.split(",") if c))


def _route_name(route: StoredRoute) -> str:
    name = repr(route.prefix) if route.prefix else "'' (every destination)"
    return name + (f" for {route.account}" if route.account else "")

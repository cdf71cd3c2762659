"""Upstream and route operations: list the links with their state, add, change, remove,
start and stop a connector, set and remove routes — applied at once on every node,
without a restart (gateway.upstream.control). Settings are checked by the same rules
as the config file's [[upstreams]] (every mistake listed); an upstream's password is
never shown nor audited.
"""

from __future__ import annotations

from typing import Any

from config.errors import ConfigError
from config.redaction import MASK
from config.upstreams import UpstreamConfig
from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminUsageError, required, shown
from gateway.upstream.control import config_dict
from store.upstreams import StoredRoute


def _public(cfg: UpstreamConfig | dict[str, Any]) -> dict[str, Any]:
    values = config_dict(cfg) if isinstance(cfg, UpstreamConfig) else dict(cfg)
    if values.get("password"):  # set or not; what it is never leaves the gateway
        values["password"] = MASK
    return values


def _values(args: dict) -> dict[str, Any]:
    values = {k: v for k, v in args.items() if v is not None}
    if not values:
        raise AdminUsageError("nothing to set: give at least one upstream setting")
    return values


def _name(args: dict) -> str:
    name = required(args, "name")
    if len(name) > 64:
        raise AdminUsageError(f"an upstream name is at most 64 characters, got {shown(name)}")
    return name


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return ctx.upstreams.describe()


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    _name(args)
    try:
        cfg = await ctx.upstreams.add(_values(args))
    except ConfigError as exc:
        raise AdminUsageError(str(exc)) from None
    await ctx.audit.record(actor, "upstream.add", cfg.name, None, _public(cfg))
    return _shown(ctx, cfg.name)


async def set_settings(ctx: AdminContext, args: dict, actor: str) -> dict:
    name = _name(args)
    changes = _values({k: v for k, v in args.items() if k != "name"})
    try:
        old, new = await ctx.upstreams.change(name, changes)
    except ConfigError as exc:
        raise AdminUsageError(str(exc)) from None
    before, after = _public(old), _public(new)
    changed = sorted(k for k in after if before.get(k) != after.get(k)
                     or (k == "password" and "password" in changes))
    await ctx.audit.record(actor, "upstream.set", name, {k: before[k] for k in changed},
                           {k: after[k] for k in changed})
    return _shown(ctx, name)


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    name = _name(args)
    before = _public(ctx.upstreams.config_of(name))
    await ctx.upstreams.remove(name)
    await ctx.audit.record(actor, "upstream.remove", name, before, None)
    return {"name": name, "removed": True}


async def start(ctx: AdminContext, args: dict, actor: str) -> dict:
    return await _enable(ctx, args, actor, True)


async def stop(ctx: AdminContext, args: dict, actor: str) -> dict:
    """Stop taking messages and unbind once what is in flight is answered; the routes
    fail over to their next connector (or messages wait). Customers stay bound."""
    return await _enable(ctx, args, actor, False)


async def _enable(ctx: AdminContext, args: dict, actor: str, enabled: bool) -> dict:
    name = _name(args)
    await ctx.upstreams.set_enabled(name, enabled)
    action = "upstream.start" if enabled else "upstream.stop"
    await ctx.audit.record(actor, action, name, None, {"enabled": enabled})
    return _shown(ctx, name)


def _shown(ctx: AdminContext, name: str) -> dict:
    for row in ctx.upstreams.describe():
        if row["name"] == name:
            return row
    return {"name": name}


# --- routes --------------------------------------------------------------------------


async def routes(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return ctx.upstreams.routes()


async def set_route(ctx: AdminContext, args: dict, actor: str) -> dict:
    values = {"prefix": args.get("prefix", ""), "connectors": args.get("connectors")}
    if args.get("account"):
        values["account"] = args["account"]
    if values["connectors"] in (None, "", []):
        raise AdminUsageError("connectors: give the upstream names in failover order")
    try:
        old, new = await ctx.upstreams.set_route(values)
    except ConfigError as exc:
        raise AdminUsageError(str(exc)) from None
    route = _route_view(new)
    await ctx.audit.record(
        actor, "route.set", route["prefix"] or "*",
        {"connectors": list(old.connectors)} if old else None, route)
    return route


async def remove_route(ctx: AdminContext, args: dict, actor: str) -> dict:
    prefix = args.get("prefix", "")
    if not isinstance(prefix, str):
        raise AdminUsageError(f"prefix must be text, got {shown(prefix)}")
    account = args.get("account") or None
    old = await ctx.upstreams.remove_route(prefix, account)
    removed = _route_view(old)
    await ctx.audit.record(actor, "route.remove", old.prefix or "*", removed, None)
    return {**removed, "removed": True}


def _route_view(route: StoredRoute) -> dict[str, Any]:
    return {"prefix": route.prefix, "account": route.account,
            "connectors": list(route.connectors)}

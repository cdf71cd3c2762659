"""Bound sessions and nodes, as the operator lists them: every session of the cluster
(all, or one account's), with its node, from where, as what, and whether over TLS
(known for this node's); every node with its state, heartbeat and sessions; and
kicking an account's sessions off every node (the account and password operations
can also --unbind as they change it)."""

from __future__ import annotations

from typing import Any

from gateway.admin.context import AdminContext


async def list_bound(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.sessions(args.get("system_id"))


async def list_nodes(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.nodes()


async def kick(ctx: AdminContext, args: dict, actor: str) -> dict[str, Any]:
    """Unbind the account's sessions on every node; it may bind again at once."""
    system_id = (await ctx.account(args))["system_id"]
    unbound = await ctx.sessions.kick(system_id)
    await ctx.audit.record(actor, "sessions.kick", system_id, None,
                           {"sessions_unbound": unbound})
    return {"system_id": system_id, "sessions_unbound": unbound}

"""Bound sessions and nodes, as the operator lists them: every session of the cluster
(all, or one account's), with its node, from where, as what, and whether over TLS
(known for this node's); every node with its state, heartbeat and sessions. Kicking is
done by the account and password operations (--unbind)."""

from __future__ import annotations

from gateway.admin.context import AdminContext


async def list_bound(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.sessions(args.get("system_id"))


async def list_nodes(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.nodes()

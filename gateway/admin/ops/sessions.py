"""Bound sessions, as the operator lists them (all, or one account's): who, from where,
as what, and whether over TLS. Kicking is done by the account and password operations."""

from __future__ import annotations

from gateway.admin.context import AdminContext


async def list_bound(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return [
        {"system_id": s.system_id, "peer": s.peer, "bind_type": s.bind_type, "tls": s.tls}
        for s in ctx.sessions.bound(args.get("system_id"))
    ]

"""STOP list operations: add (idempotent), remove and list an account's destinations.

Destinations are international digits; the next submit to one sees the change."""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.parsing import destination, required
from gateway.admin.views import iso


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    number = destination(required(args, "destination"))
    added = await ctx.stop_list.add(row["system_id"], number, args.get("note"))
    if added:
        await ctx.changed(actor, "stop.add", row["system_id"], None, {"destination": number})
    return {"system_id": row["system_id"], "destination": number, "added": added}


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    number = destination(required(args, "destination"))
    await ctx.stop_list.remove(row["system_id"], number)
    await ctx.changed(actor, "stop.remove", row["system_id"], {"destination": number}, None)
    return {"system_id": row["system_id"], "destination": number, "removed": True}


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    row = await ctx.account(args)
    return [
        {"destination": e["destination"], "note": e["note"], "since": iso(e["created_at"])}
        for e in await ctx.stop_list.list(row["system_id"])
    ]

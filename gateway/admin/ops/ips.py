"""Allowed IP operations: add and remove a network (up to `max_allowed_ips`), list them.

Addresses are canonical CIDR text (auth.ipacl); the next bind sees a change at once."""

from __future__ import annotations

from auth.ipacl import canonical
from gateway.admin.context import AdminContext
from gateway.admin.parsing import required
from gateway.admin.views import account_view


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    network = canonical(required(args, "ip"))
    await ctx.accounts.add_allowed_ip(
        row["system_id"], network, max_count=ctx.settings.max_allowed_ips
    )
    return await _changed(ctx, row, actor, "ip.add")


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    network = canonical(required(args, "ip"))
    await ctx.accounts.remove_allowed_ip(row["system_id"], network)
    return await _changed(ctx, row, actor, "ip.remove")


async def _changed(ctx: AdminContext, row: dict, actor: str, action: str) -> dict:
    after = await ctx.accounts.get(row["system_id"])
    assert after is not None
    await ctx.changed(
        actor, action, row["system_id"],
        {"allowed_ips": row["allowed_ips"]}, {"allowed_ips": after["allowed_ips"]},
    )
    return account_view(after, bound=await ctx.bound_count(row["system_id"]))


async def list_all(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    return account_view(row)

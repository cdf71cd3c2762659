"""Rate operations: set, remove and list prices per destination prefix (global, or one
account's overrides), and quote what one segment costs an account."""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, required
from gateway.admin.views import iso
from store.money import format_credits, parse_credits
from store.rates import validate_prefix


async def _scope(ctx: AdminContext, args: dict) -> str | None:
    """The account whose overrides are meant, or None for the global table."""
    if not args.get("system_id"):
        return None
    return (await ctx.account(args))["system_id"]


async def set_rate(ctx: AdminContext, args: dict, actor: str) -> dict:
    scope = await _scope(ctx, args)
    prefix = validate_prefix(required(args, "prefix"))
    price = parse_credits(required(args, "price"))
    old = await ctx.rates.set_rate(prefix, price, scope)
    await ctx.audit.record(
        actor, "rate.set", scope or "*",
        None if old is None else {"prefix": prefix, "price": format_credits(old)},
        {"prefix": prefix, "price": format_credits(price)},
    )
    await ctx.directory.rates_changed()
    return {"scope": scope or "global", "prefix": prefix, "price": format_credits(price),
            "previous": None if old is None else format_credits(old)}


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    scope = await _scope(ctx, args)
    prefix = validate_prefix(required(args, "prefix"))
    old = await ctx.rates.remove_rate(prefix, scope)
    await ctx.audit.record(
        actor, "rate.remove", scope or "*",
        {"prefix": prefix, "price": format_credits(old)}, None,
    )
    await ctx.directory.rates_changed()
    return {"scope": scope or "global", "prefix": prefix, "removed": format_credits(old)}


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    scope = await _scope(ctx, args)
    rows = await ctx.rates.list_rates(scope)
    return [
        {"scope": scope or "global", "prefix": r["prefix"], "price": format_credits(r["price"]),
         "updated_at": iso(r["updated_at"])}
        for r in rows
    ]


async def quote(ctx: AdminContext, args: dict, actor: str) -> dict:
    """What one segment to `destination` costs this account, as the submit path sees it."""
    row = await ctx.account(args)
    # Created through another node a moment ago, its notice still on the way: read now.
    account = ctx.directory.get(row["system_id"]) or await ctx.directory.refresh(
        row["system_id"])
    if account is None:
        raise AdminError(f"unknown account {row['system_id']!r}")
    destination = required(args, "destination")
    price = ctx.directory.price(account, destination)
    return {"system_id": row["system_id"], "destination": destination,
            "price": format_credits(price)}

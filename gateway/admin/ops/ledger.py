"""Reading the books: an account's balance, its newest ledger rows, and the check that
every balance equals its ledger."""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.parsing import as_limit
from gateway.admin.views import iso
from store.ledger import MAX_PAGE
from store.money import format_credits


async def balance(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    return {"system_id": row["system_id"], "balance": format_credits(row["balance"])}


async def entries(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    row = await ctx.account(args)
    limit = as_limit(args.get("limit", 50), "limit", MAX_PAGE)
    rows = await ctx.ledger.entries(row["id"], limit)
    return [
        {"id": e["id"], "at": iso(e["created_at"]), "kind": e["kind"],
         "amount": format_credits(e["amount"]), "message_id": e["message_id"],
         "note": e["note"]}
        for e in rows
    ]


async def check(ctx: AdminContext, args: dict, actor: str) -> dict:
    problems = await ctx.ledger.violations()
    return {"ok": not problems, "problems": problems}

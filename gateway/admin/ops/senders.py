"""Sender operations: add (pending unless said otherwise), list, change state, remove.

Addresses and kinds are checked by auth.senders; only enabled senders may submit."""

from __future__ import annotations

from typing import Any

from auth.senders import validate_state
from gateway.admin.context import AdminContext
from gateway.admin.parsing import required, sender_arg
from gateway.admin.views import iso


def sender_view(row: dict) -> dict[str, Any]:
    return {
        "address": row["address"], "kind": row["kind"], "state": row["state"],
        "comment": row.get("comment"),
        "updated_at": iso(row.get("updated_at")),
    }


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    entry = sender_arg(
        {"address": required(args, "sender"), "kind": args.get("kind"),
         "state": args.get("state") or "pending", "comment": args.get("comment")}
    )
    added = await ctx.senders.add(
        row["system_id"], entry["address"], entry["kind"],
        state=entry["state"], comment=entry["comment"],
    )
    await ctx.changed(actor, "sender.add", row["system_id"], None, sender_view(added))
    return sender_view(added)


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    row = await ctx.account(args)
    return [sender_view(s) for s in await ctx.senders.list(row["system_id"])]


async def set_state(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    address = required(args, "sender")
    state = validate_state(required(args, "state"))
    before = await ctx.senders.get(row["system_id"], address)
    after = await ctx.senders.set_state(row["system_id"], address, state, args.get("comment"))
    await ctx.changed(
        actor, "sender.set_state", row["system_id"], sender_view(before), sender_view(after),
    )
    return sender_view(after)


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    address = required(args, "sender")
    before = await ctx.senders.get(row["system_id"], address)
    await ctx.senders.remove(row["system_id"], address)
    await ctx.changed(actor, "sender.remove", row["system_id"], sender_view(before), None)
    return {"system_id": row["system_id"], "removed": address}


async def pending(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    """The approval queue: every account's pending senders, the oldest request first."""
    queue = [
        {"system_id": row["system_id"], **sender_view(s), "requested_at": iso(s["created_at"])}
        for row in await ctx.accounts.load_all()
        for s in row["senders"]
        if s["state"] == "pending"
    ]
    return sorted(queue, key=lambda s: (s["requested_at"] or "", s["system_id"], s["address"]))

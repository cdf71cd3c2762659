"""Inbound number operations: give an account a number, prefix or range for its MOs,
take it back, list them.

The rules (how entries are written, which one an MO matches, no overlap between two
accounts) are store.inbound's; the MO path reads the store, so a change applies to the
next MO on every node.
"""

from __future__ import annotations

from typing import Any

from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, AdminUsageError, required
from store.inbound import InboundEntry, InboundNumberNotFound, InvalidInboundNumber


def _view(system_id: str, entry: InboundEntry) -> dict[str, Any]:
    return {"system_id": system_id, "number": entry.text, "kind": entry.kind}


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    try:
        entry = await ctx.inbound_numbers.add(row["id"], required(args, "number"))
    except InvalidInboundNumber as exc:  # malformed: a usage error (exit 2)
        raise AdminUsageError(str(exc)) from None
    view = _view(row["system_id"], entry)
    # Audit only: no account setting changed, and nothing in memory holds numbers.
    await ctx.audit.record(actor, "number.add", row["system_id"], None, view)
    return view


async def remove(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    try:
        entry = await ctx.inbound_numbers.remove(row["id"], required(args, "number"))
    except InvalidInboundNumber as exc:  # malformed: a usage error (exit 2)
        raise AdminUsageError(str(exc)) from None
    except InboundNumberNotFound:
        raise AdminError(
            f"account {row['system_id']!r} holds no inbound number {args['number']!r} "
            "(write it as it was added: see number.list)"
        ) from None
    view = _view(row["system_id"], entry)
    await ctx.audit.record(actor, "number.remove", row["system_id"], view, None)
    return view


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    """One account's entries when system_id is given, else every account's."""
    account_id = (await ctx.account(args))["id"] if args.get("system_id") else None
    return [_view(sid, entry) for sid, entry in await ctx.inbound_numbers.list(account_id)]

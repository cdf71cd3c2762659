"""Reading the audit log, newest first, optionally for one target or action (prefix).

The log itself is written by the operations that change something (AdminContext.changed)."""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.parsing import as_int
from gateway.admin.views import iso


async def list_entries(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    limit = as_int(args.get("limit", 100))
    target, action = args.get("target"), args.get("action")
    # Filtering after the fetch keeps the store API small; ask for more to fill it.
    fetch = limit if not (target or action) else max(limit * 20, 1000)
    rows = await ctx.audit.newest(fetch)
    if target:
        rows = [r for r in rows if r["target"] == target]
    if action:
        rows = [r for r in rows if r["action"] == action or r["action"].startswith(action)]
    rows = rows[:limit]
    for row in rows:
        row["at"] = iso(row.get("at"))
    return rows

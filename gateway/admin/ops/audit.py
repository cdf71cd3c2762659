"""Reading the audit log, newest first, optionally for one target or action (prefix).

The log itself is written by the operations that change something (AdminContext.changed)."""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, as_limit, shown
from gateway.admin.views import iso
from store.audit import MAX_PAGE

# The most entries one answer carries; a filtered listing reads up to MAX_PAGE to fill it.
MAX_LIMIT = 10_000


async def list_entries(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    limit = as_limit(args.get("limit", 100), "limit", MAX_LIMIT)
    target, action = args.get("target"), args.get("action")
    for name, value in (("target", target), ("action", action)):
        if value is not None and not isinstance(value, str):
            raise AdminError(f"{name} must be text, got {shown(value)}")
    # Filtering after the fetch keeps the store API small; ask for more to fill it.
    fetch = limit if not (target or action) else min(max(limit * 20, 1000), MAX_PAGE)
    rows = await ctx.audit.newest(fetch)
    if target:
        rows = [r for r in rows if r["target"] == target]
    if action:
        rows = [r for r in rows if r["action"] == action or r["action"].startswith(action)]
    rows = rows[:limit]
    for row in rows:
        row["at"] = iso(row.get("at"))
    return rows

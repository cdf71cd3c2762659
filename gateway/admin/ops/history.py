"""Message history: query a page, delete entries, and export everything that matches as
a stream of pages (history.export), so a large export never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, as_id, as_limit, as_time, raw_list
from pdu.text import display_text
from store.errors import StoreError
from store.history import EXPORT_COLUMNS, MAX_DELETE, MAX_PAGE, HistoryFilter
from store.money import format_credits

EXPORT_PAGE = 1000


async def _filter(ctx: AdminContext, args: dict) -> HistoryFilter:
    account_id = None
    if args.get("system_id"):
        account_id = (await ctx.account(args))["id"]
    message_id = args.get("message_id")
    return HistoryFilter(
        account_id=account_id,
        since=as_time(args.get("since"), "since"),
        until=as_time(args.get("until"), "until"),
        sender=args.get("sender") or None,
        receiver=args.get("receiver") or None,
        status=(args.get("status") or "").upper() or None,
        message_id=None if message_id in (None, "") else as_id(message_id, "message_id"),
        direction=(args.get("direction") or "").upper() or None,
    )


def _export_row(row: dict[str, Any]) -> list[Any]:
    out = []
    for column in EXPORT_COLUMNS:
        value = row.get(column)
        if column == "cost" and value is not None:
            value = format_credits(int(value))
        elif column == "body" and value is not None:
            value = display_text(bytes(value), row.get("data_coding") or 0)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out.append(value)
    return out


async def query(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    flt = await _filter(ctx, args)
    after = args.get("after_id")
    rows = await ctx.history.query(
        flt, limit=as_limit(args.get("limit", 100), "limit", MAX_PAGE),
        after_id=None if after in (None, "") else as_id(after, "after_id", least=0),
    )
    return [dict(zip(EXPORT_COLUMNS, _export_row(r), strict=True)) for r in rows]


async def delete(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    given = raw_list(args, "message_ids")
    if len(given) > MAX_DELETE:
        raise AdminError(f"at most {MAX_DELETE} message ids at once, got {len(given)}")
    ids = [as_id(i, "message id") for i in given]
    if not ids:
        raise AdminError("missing argument 'message_ids'")
    deleted = await ctx.history.delete(row["id"], ids)
    await ctx.audit.record(
        actor, "history.delete", row["system_id"], {"message_ids": ids}, {"deleted": deleted}
    )
    return {"system_id": row["system_id"], "deleted": deleted, "asked": len(ids)}


async def export(ctx: AdminContext, args: dict) -> AsyncIterator[dict[str, Any]]:
    """The stream's messages: a header, pages of rows, then an end (with an error if the
    store failed part-way). The server writes each before the next page is read."""
    flt = await _filter(ctx, args)
    total = await ctx.history.count(flt)
    yield {"ok": True, "result": {
        "stream": "history", "columns": list(EXPORT_COLUMNS), "total": total}}
    count = 0
    try:
        async for page in ctx.history.pages(flt, EXPORT_PAGE):
            yield {"rows": [_export_row(r) for r in page]}
            count += len(page)
    except (StoreError, OSError) as exc:
        yield {"end": True, "error": str(exc), "count": count}
        return
    yield {"end": True, "count": count}

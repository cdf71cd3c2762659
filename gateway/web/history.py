"""An account's message history: outgoing (MT) and incoming (MO) messages, filtered by
a GET form so the URL keeps the filters, paged forward by message id (history.query's
after_id), downloaded as a CSV streamed page by page from the history.export stream,
and deleted one message at a time after a confirmation (history.delete).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.admin.ops import STREAMS
from gateway.admin.parsing import AdminError
from gateway.web.accounts import shown_account
from gateway.web.panel import NO_STORE, Me, Panel
from store.errors import StoreError
from store.tables import MESSAGE_STATUSES

log = logging.getLogger(__name__)

TAB = "history"
PAGE = 50
# Earlier pages a "Previous" link can walk back through (the op pages forward only, so
# the URL carries where each earlier page started); older ones fall back to the first.
MAX_TRAIL = 100
DIRECTIONS = {"MT": "Outgoing", "MO": "Incoming"}
# A message is deletable once final; the store keeps in-flight ones for the outbox.
IN_FLIGHT = ("ACCEPTED", "ENROUTE")
_REFUSED = (AdminError, StoreError, ValueError, TypeError)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class BadFilter(Exception):
    """A filter the customer typed that cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class HistoryView:
    """The filters and the page, as the URL carries them."""

    since: str = ""      # a day, YYYY-MM-DD, in the browser's time zone (inclusive)
    until: str = ""      # a day, inclusive
    status: str = ""
    sender: str = ""
    receiver: str = ""
    direction: str = ""  # "", "MT" or "MO"
    tz: int = 0          # the browser's offset from UTC, in minutes east
    after: int | None = None          # this page starts after this message id
    trail: tuple[int, ...] = ()       # where the earlier pages started

    @classmethod
    def read(cls, params: Mapping[str, str]) -> HistoryView:
        def text(key: str, most: int = 40) -> str:
            return str(params.get(key, "")).strip()[:most]

        direction = text("direction").upper()
        if direction not in ("", *DIRECTIONS):
            raise BadFilter("Direction must be outgoing or incoming.")
        status = text("status").upper()
        if status and status not in MESSAGE_STATUSES:
            raise BadFilter(f"Status must be one of {', '.join(MESSAGE_STATUSES)}.")
        try:
            tz = int(text("tz") or 0)
            after = int(text("after")) if text("after") else None
            trail = tuple(int(t) for t in text("trail", 2200).split(",") if t)
        except ValueError:
            raise BadFilter("This page link is not valid; start again from the first "
                            "page.") from None
        if not -840 <= tz <= 840:
            raise BadFilter("The time zone offset must be between -14 and +14 hours.")
        if (after is not None and after < 0) or any(t < 0 for t in trail):
            raise BadFilter("This page link is not valid; start again from the first page.")
        view = cls(since=text("from"), until=text("to"), status=status,
                   sender=text("sender"), receiver=text("receiver"), direction=direction,
                   tz=tz, after=after, trail=trail[-MAX_TRAIL:])
        first, last = view.days()
        if first and last and last < first:
            raise BadFilter("The 'to' date is before the 'from' date.")
        return view

    def days(self) -> tuple[date | None, date | None]:
        return _day(self.since, "from"), _day(self.until, "to")

    def op_args(self, system_id: str) -> dict[str, Any]:
        """history.query / history.export arguments for this account (never another)."""
        zone = timezone(timedelta(minutes=self.tz))
        first, last = self.days()
        return {
            "system_id": system_id,
            "since": datetime.combine(first, time(), zone).isoformat() if first else "",
            # The 'to' day is included: the op's 'until' is exclusive.
            "until": (datetime.combine(last + timedelta(days=1), time(), zone).isoformat()
                      if last else ""),
            "status": self.status,
            "sender": self.sender,
            "receiver": self.receiver,
            "direction": self.direction,
        }

    def filters(self) -> dict[str, str]:
        """The filters alone, as query parameters (no page)."""
        given = {"from": self.since, "to": self.until, "status": self.status,
                 "sender": self.sender, "receiver": self.receiver,
                 "direction": self.direction}
        shown = {k: v for k, v in given.items() if v}
        if shown and self.tz:
            shown["tz"] = str(self.tz)
        return shown

    def query(self) -> str:
        """The whole view (filters and page) as a query string."""
        params = self.filters()
        if self.after is not None:
            params["after"] = str(self.after)
        if self.trail:
            params["trail"] = ",".join(map(str, self.trail))
        return urlencode(params)

    def next_page(self, last_id: int) -> HistoryView:
        trail = self.trail if self.after is None else (*self.trail, self.after)
        return replace(self, after=last_id, trail=trail[-MAX_TRAIL:])

    def previous_page(self) -> HistoryView | None:
        if self.after is None:
            return None
        if not self.trail:
            return replace(self, after=None)
        return replace(self, after=self.trail[-1], trail=self.trail[:-1])


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"The '{name}' date must be a date such as 2026-11-25.") from None
    if not 1970 <= day.year <= 9998:
        raise BadFilter(f"The '{name}' date must be between 1970 and 9998.")
    return day


def routes(panel: Panel) -> list[Route]:
    panel.tab("History", TAB)

    def listing(request: Request, account: dict[str, Any], view: HistoryView,
                rows: list[dict[str, Any]], *, more: bool = False, status: int = 200,
                error: str = "") -> Response:
        prev = view.previous_page()
        return panel.render(
            request, "history.html", status, account=account, nav="accounts", tab=TAB,
            view=view, rows=rows, error=error, statuses=MESSAGE_STATUSES,
            directions=DIRECTIONS, in_flight=IN_FLIGHT,
            next_query=view.next_page(rows[-1]["id"]).query() if more and rows else None,
            prev_query=prev.query() if prev else None,
            filters_query=urlencode(view.filters()),
            done=request.query_params.get("done", ""))

    async def show(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        try:
            view = HistoryView.read(request.query_params)
        except BadFilter as exc:
            return listing(request, account, _typed(request.query_params), [], status=400,
                           error=str(exc))
        args = {**view.op_args(account["system_id"]), "limit": PAGE + 1,
                "after_id": "" if view.after is None else view.after}
        try:
            rows = await panel.op(me, "history.query", args)
        except _REFUSED as exc:
            return listing(request, account, view, [], status=400, error=_sentence(exc))
        return listing(request, account, view, [_shown(r) for r in rows[:PAGE]],
                       more=len(rows) > PAGE)

    async def export(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        try:
            view = HistoryView.read(request.query_params)
        except BadFilter as exc:
            return listing(request, account, _typed(request.query_params), [], status=400,
                           error=str(exc))
        stream = STREAMS["history.export"](panel.ctx.admin,
                                          view.op_args(account["system_id"]))
        try:  # the header: the op has read the filters, so a refusal is still a page
            header = await anext(stream)
        except _REFUSED as exc:
            await stream.aclose()
            return listing(request, account, view, [], status=400, error=_sentence(exc))
        columns = header["result"]["columns"]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", account["system_id"])
        return StreamingResponse(
            _csv_chunks(columns, stream), media_type="text/csv; charset=utf-8",
            headers={**NO_STORE,
                     "Content-Disposition": f'attachment; filename="history-{name}.csv"'})

    async def confirm_delete(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        message = await _message(panel, me, account, request.path_params["message_id"])
        return _confirm(request, account, message,
                        _back(request.query_params.get("back", "")))

    def _confirm(request: Request, account: dict[str, Any], message: dict[str, Any],
                 back: str, status: int = 200, error: str = "") -> Response:
        return panel.render(request, "history_delete.html", status, account=account,
                            nav="accounts", tab=TAB, message=message, back=back,
                            error=error, directions=DIRECTIONS, in_flight=IN_FLIGHT)

    async def delete(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        form = await panel.checked_form(request, me)
        message = await _message(panel, me, account, request.path_params["message_id"])
        back = _back(form.get("back", ""))
        try:
            done = await panel.op(me, "history.delete", {
                "system_id": account["system_id"], "message_ids": [message["id"]]})
        except _REFUSED as exc:
            return _confirm(request, account, message, back, 400, _sentence(exc))
        if not done["deleted"]:  # still in flight: the store keeps it
            return _confirm(request, account, message, back, 400,
                            "This message is still on its way; it can be deleted once "
                            "it is delivered or has failed.")
        query = f"{back}&done=deleted" if back else "done=deleted"
        return RedirectResponse(f"/accounts/{account['system_id']}/history?{query}",
                                status_code=303)

    base = "/accounts/{system_id}/history"
    return [
        Route(base, panel.page(show), methods=["GET"]),
        Route(f"{base}/export", panel.page(export), methods=["GET"]),
        Route(base + "/{message_id:int}/delete", panel.page(confirm_delete),
              methods=["GET"]),
        Route(base + "/{message_id:int}/delete", panel.page(delete), methods=["POST"]),
    ]


async def _message(panel: Panel, me: Me, account: dict[str, Any], message_id: int
                   ) -> dict[str, Any]:
    """One message of this account, as history.query shows it; else 404."""
    try:
        found = await panel.op(me, "history.query", {
            "system_id": account["system_id"], "message_id": message_id, "limit": 1})
    except _REFUSED:
        found = []
    if not found:
        raise HTTPException(404, f"{account['system_id']} has no message {message_id}.")
    return _shown(found[0])


async def _csv_chunks(columns: list[str], stream: AsyncIterator[dict[str, Any]]
                      ) -> AsyncIterator[str]:
    """The CSV, one chunk per page of the stream: the response is written while the
    next page is read, so the export never sits in memory whole."""
    async with contextlib.aclosing(stream):
        # A byte-order mark, so spreadsheets read the text as UTF-8.
        yield "\ufeff" + _csv_text([columns])
        async for message in stream:
            if "rows" in message:
                yield _csv_text([[_cell(v) for v in row] for row in message["rows"]])
            elif message.get("error"):
                # Headers are gone: cutting the connection tells the browser the file
                # is incomplete, where a clean end would pass a short file as whole.
                log.error("history export failed after %s rows: %s",
                          message.get("count"), message["error"])
                raise OSError(f"history export failed: {message['error']}")


def _csv_text(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text opening like a formula gets a quote
    (incoming messages are written by anybody). Numbers such as +33... stay as they are."""
    if (isinstance(value, str) and value.startswith(_FORMULA_START)
            and not _NUMBER.fullmatch(value)):
        return "'" + value
    return value


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "final": row["status"] not in IN_FLIGHT}


def _typed(params: Mapping[str, str]) -> HistoryView:
    """What was typed, shown back in the form with the error (nothing parsed)."""
    def text(key: str) -> str:
        return str(params.get(key, "")).strip()[:40]
    return HistoryView(since=text("from"), until=text("to"), status=text("status"),
                       sender=text("sender"), receiver=text("receiver"),
                       direction=text("direction").upper())


def _back(query: str) -> str:
    """The history view to return to after a delete, rebuilt from what it may hold."""
    try:
        return HistoryView.read(dict(parse_qsl(query[:3000]))).query()
    except BadFilter:
        return ""


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

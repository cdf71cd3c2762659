"""An account's STOP list: the destinations that asked for no more messages (a STOP
reply puts them there), paged and searchable, and removing one after a confirmation
(stop.remove). Account holders may view and remove, not add: a number is listed by its
owner's STOP, and removing it needs that person's renewed consent."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.admin.parsing import AdminError
from gateway.web.accounts import shown_account
from gateway.web.panel import Me, Panel
from store.errors import StoreError

TAB = "stop"
PAGE = 100
_REFUSED = (AdminError, StoreError, ValueError, TypeError)


def routes(panel: Panel) -> list[Route]:
    panel.tab("STOP list", TAB)

    async def entries(me: Me, system_id: str) -> list[dict[str, Any]]:
        return await panel.op(me, "stop.list", {"system_id": system_id})

    async def show(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        search = request.query_params.get("q", "").strip()[:21]
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        every = await entries(me, account["system_id"])
        found = [e for e in every if search.removeprefix("+") in e["destination"]]
        pages = max(1, -(-len(found) // PAGE))
        page = min(page, pages)
        return panel.render(
            request, "stop.html", account=account, nav="accounts", tab=TAB,
            entries=found[(page - 1) * PAGE:page * PAGE], total=len(every),
            matching=len(found), search=search, page=page, pages=pages,
            done=request.query_params.get("done", ""))

    async def confirm_remove(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        entry = await listed(me, account, request.query_params.get("destination", ""))
        return panel.render(request, "stop_remove.html", account=account, nav="accounts",
                            tab=TAB, entry=entry, error="")

    async def remove(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        form = await panel.checked_form(request, me)
        entry = await listed(me, account, form.get("destination", ""))
        try:
            await panel.op(me, "stop.remove", {"system_id": account["system_id"],
                                               "destination": entry["destination"]})
        except _REFUSED as exc:  # removed meanwhile, or a number the op cannot take
            return panel.render(request, "stop_remove.html", 400, account=account,
                                nav="accounts", tab=TAB, entry=entry,
                                error=_sentence(exc))
        return RedirectResponse(f"/accounts/{account['system_id']}/stop?done=removed",
                                status_code=303)

    async def listed(me: Me, account: dict[str, Any], destination: str) -> dict[str, Any]:
        """The entry as the account lists it; 404 for anything else."""
        for entry in await entries(me, account["system_id"]):
            if entry["destination"] == destination:
                return entry
        raise HTTPException(404, f"{account['system_id']} has no STOP entry "
                                 f"{destination[:30]!r}.")

    return [
        Route("/accounts/{system_id}/stop", panel.page(show), methods=["GET"]),
        Route("/accounts/{system_id}/stop/remove", panel.page(confirm_remove),
              methods=["GET"]),
        Route("/accounts/{system_id}/stop/remove", panel.page(remove), methods=["POST"]),
    ]


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

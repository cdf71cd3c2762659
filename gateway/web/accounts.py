"""The customer's accounts, and one account's general information (the tabs of the
other account pages are added by their modules)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.parsing import AdminError
from gateway.web.panel import Me, Panel


def routes(panel: Panel) -> list[Route]:
    async def accounts(request: Request, me: Me) -> Response:
        if me["role"] == "operator":
            rows = await panel.op(me, "account.list", {})
        else:
            owned = await panel.ctx.customers.accounts(me["customer_id"])
            rows = [await panel.op(me, "account.show", {"system_id": a["system_id"]})
                    for a in owned]
        return panel.render(request, "accounts.html", accounts=rows, nav="accounts")

    async def account(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        account = await shown_account(panel, me, system_id)
        return panel.render(request, "account.html", account=account, nav="accounts",
                            tab="", listening=panel.ctx.listening)

    return [
        Route("/", panel.page(accounts)),
        Route("/accounts/{system_id}", panel.page(account)),
    ]


async def shown_account(panel: Panel, me: Me, system_id: str) -> dict:
    """The account as account.show gives it, if this customer may see it; else 404."""
    await panel.owned(me, system_id)
    try:
        return await panel.op(me, "account.show", {"system_id": system_id})
    except AdminError as exc:
        raise HTTPException(404, str(exc)) from exc

"""The networks allowed to bind an account: the list (n of the maximum), adding an
address or CIDR block, and removing one after a confirmation. The ip.add / ip.remove
operations validate and count, so the page only shows what they say."""

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

TAB = "ips"
# What the operations refuse with a message meant for the person who typed the input.
_REFUSED = (AdminError, StoreError, ValueError, TypeError)


def routes(panel: Panel) -> list[Route]:
    panel.tab("IPs", TAB)
    most = panel.ctx.admin.settings.max_allowed_ips

    def listing(request: Request, account: dict[str, Any], status: int = 200,
                error: str = "", typed: str = "") -> Response:
        return panel.render(request, "ips.html", status, account=account, nav="accounts",
                            tab=TAB, most=most, error=error, typed=typed,
                            done=request.query_params.get("done", ""))

    async def show(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        return listing(request, account)

    async def add(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        typed = (await panel.checked_form(request, me)).get("ip", "").strip()[:100]
        if not typed:
            return listing(request, account, 400, "Enter an IPv4 or IPv6 address or a "
                                                  "CIDR block, such as 203.0.113.0/24.")
        try:
            await panel.op(me, "ip.add", {"system_id": account["system_id"], "ip": typed})
        except _REFUSED as exc:
            return listing(request, account, 400, _sentence(exc), typed)
        return RedirectResponse(f"/accounts/{account['system_id']}/ips?done=added",
                                status_code=303)

    async def confirm_remove(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        network = _listed(account, request.query_params.get("ip", ""))
        return panel.render(request, "ips_remove.html", account=account, nav="accounts",
                            tab=TAB, network=network)

    async def remove(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        form = await panel.checked_form(request, me)
        network = _listed(account, form.get("ip", ""))
        try:
            await panel.op(me, "ip.remove", {"system_id": account["system_id"],
                                             "ip": network})
        except _REFUSED as exc:  # removed meanwhile (another tab, an operator)
            raise HTTPException(404, _sentence(exc)) from exc
        return RedirectResponse(f"/accounts/{account['system_id']}/ips?done=removed",
                                status_code=303)

    return [
        Route("/accounts/{system_id}/ips", panel.page(show), methods=["GET"]),
        Route("/accounts/{system_id}/ips", panel.page(add), methods=["POST"]),
        Route("/accounts/{system_id}/ips/remove", panel.page(confirm_remove),
              methods=["GET"]),
        Route("/accounts/{system_id}/ips/remove", panel.page(remove), methods=["POST"]),
    ]


def _listed(account: dict[str, Any], network: str) -> str:
    """The entry as the account lists it; 404 for anything else."""
    if network not in account["allowed_ips"]:
        raise HTTPException(404, f"{account['system_id']} has no allowed IP "
                                 f"{network[:60]!r}.")
    return network


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

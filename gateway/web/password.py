"""Generating a new SMPP password for an account: a confirmation page, then the new
password shown once on the answer to the POST (never in a URL, never stored, never
cached) and e-mailed to the account's contact by the password.rotate operation."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.parsing import AdminError
from gateway.web.accounts import shown_account
from gateway.web.panel import Me, Panel

TAB = "password"


def routes(panel: Panel) -> list[Route]:
    panel.tab("Password", TAB)

    async def confirm(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        return panel.render(request, "password.html", account=account, nav="accounts",
                            tab=TAB, mail_enabled=panel.ctx.admin.mailer.enabled)

    async def rotate(request: Request, me: Me) -> Response:
        account = await shown_account(panel, me, request.path_params["system_id"])
        form = await panel.checked_form(request, me)
        try:
            rotated = await panel.op(me, "password.rotate", {
                "system_id": account["system_id"], "unbind": form.get("unbind") == "on"})
        except AdminError as exc:  # the account went away between the two calls
            raise HTTPException(404, str(exc)) from exc
        # Rendered here, not redirected to: the password exists only in this answer.
        return panel.render(request, "password_done.html", account=account,
                            nav="accounts", tab=TAB, password=rotated["password"],
                            mail=_mail_outcome(rotated["emailed_to"]),
                            unbound=rotated["sessions_unbound"])

    return [
        Route("/accounts/{system_id}/password", panel.page(confirm), methods=["GET"]),
        Route("/accounts/{system_id}/password", panel.page(rotate), methods=["POST"]),
    ]


def _mail_outcome(emailed_to: str | None) -> tuple[bool, str]:
    """(sent?, what to tell the customer) from password.rotate's `emailed_to`."""
    if emailed_to is None:
        return False, "It was not e-mailed: this gateway sends no mail."
    if emailed_to.startswith("not sent"):
        return False, f"It was not e-mailed ({emailed_to.removeprefix('not sent: ')})."
    return True, f"It was also e-mailed to {emailed_to}."

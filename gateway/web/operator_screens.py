"""The operator's screens: customers and accounts (create, give an account, suspend,
resume), rates, credits (add, transfer), the live sessions of the cluster (kick) and
the audit log. Operators only: for anybody else these pages do not exist (404).

Every change is an admin operation with the operator as actor; a destructive one is
asked for on a confirmation page first. A one-time password is shown on the answer to
the POST that made it (no redirect, so it is never in a URL or a history entry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.admin.ops.audit import MAX_LIMIT as AUDIT_MAX
from gateway.admin.server import REFUSALS
from gateway.web.panel import Me, Panel

PAGE_SIZE = 50
# What an operation refuses as bad input: shown on the page, with the form kept.
# The notices a redirect may ask for (by code, so a link cannot make the page say more).
_DONE = {
    "account-added": "The account was given to the customer.",
    "suspended": "The account is suspended: new binds are refused.",
    "resumed": "The account is active again.",
    "rate-set": "The rate is set.",
    "rate-removed": "The rate is removed.",
    "credits-added": "The credits are added.",
    "transferred": "The credits are transferred.",
    "kicked": "The account's sessions are unbound.",
}


class Refused(Exception):
    """An operation refused the input: the message is for the operator."""


def _split(text: str) -> list[str]:
    """Values typed one per line, or separated by commas or spaces."""
    return [v for v in text.replace(",", " ").split() if v]


def _page_number(params: QueryParams) -> int:
    raw = params.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise HTTPException(400, f"page must be a whole number from 1, got {raw[:20]!r}.")
    return int(raw)


def _paged(rows: Sequence[Any], params: QueryParams) -> dict[str, Any]:
    """One page of rows, with what the pager shows."""
    page = _page_number(params)
    start = (page - 1) * PAGE_SIZE
    return {"rows": rows[start:start + PAGE_SIZE], "page": page,
            "more": len(rows) > start + PAGE_SIZE, "total": len(rows),
            "pages": max(1, -(-len(rows) // PAGE_SIZE))}


def _link(path: str, params: dict[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def routes(panel: Panel) -> list[Route]:
    async def act(me: Me, name: str, args: dict[str, Any]) -> Any:
        try:
            return await panel.op(me, name, args)
        except REFUSALS as exc:
            raise Refused(str(exc)) from exc

    def show(request: Request, name: str, section: str, status: int = 200,
             **values: Any) -> Response:
        values.setdefault("done", _DONE.get(request.query_params.get("done", ""), ""))
        return panel.render(request, name, status, nav="operator", section=section,
                            **values)

    def done(path: str, code: str) -> Response:
        return RedirectResponse(f"{path}?done={code}", status_code=303)

    async def known_account(me: Me, system_id: str) -> dict[str, Any]:
        await panel.owned(me, system_id)  # every account, for an operator
        try:
            return await panel.op(me, "account.show", {"system_id": system_id})
        except REFUSALS as exc:
            raise HTTPException(404, f"No account {system_id}.") from exc

    # --- customers ---------------------------------------------------------------------

    async def customers_page(request: Request, me: Me, *, status: int = 200,
                             **values: Any) -> Response:
        customers = await panel.op(me, "customer.list", {})
        accounts = await panel.op(me, "account.list", {})
        values.setdefault("form", {})
        return show(request, "operator_customers.html", "customers", status,
                    listing=_paged(customers, request.query_params),
                    customers=customers, accounts=accounts, **values)

    async def customers(request: Request, me: Me) -> Response:
        return await customers_page(request, me)

    async def create_customer(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        args = {"email": form.get("email", ""),
                "contact_email": form.get("contact_email", "").strip() or None,
                "operator": form.get("operator") == "on",
                "accounts": _split(form.get("accounts", ""))}
        try:
            made = await act(me, "customer.create", args)
        except Refused as exc:
            return await customers_page(request, me, status=400, error=str(exc), form=form)
        return await customers_page(request, me, created=made)

    async def add_account(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        args = {"email": form.get("email", ""), "system_id": form.get("system_id", "").strip()}
        try:
            await act(me, "customer.add_account", args)
        except Refused as exc:
            return await customers_page(request, me, status=400, add_error=str(exc),
                                        add_form=form)
        return done("/operator/customers", "account-added")

    # --- accounts ----------------------------------------------------------------------

    async def accounts_page(request: Request, me: Me, *, status: int = 200,
                            **values: Any) -> Response:
        accounts = await panel.op(me, "account.list", {})
        values.setdefault("form", {})
        return show(request, "operator_accounts.html", "accounts", status,
                    listing=_paged(accounts, request.query_params), **values)

    async def accounts(request: Request, me: Me) -> Response:
        return await accounts_page(request, me)

    async def create_account(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        args: dict[str, Any] = {"allowed_ips": _split(form.get("allowed_ips", ""))}
        for key in ("system_id", "credits", "contact_email"):
            if form.get(key, "").strip():
                args[key] = form[key].strip()
        try:
            made = await act(me, "account.create", args)
        except Refused as exc:
            return await accounts_page(request, me, status=400, error=str(exc), form=form)
        return await accounts_page(request, me, created=made)

    def status_path(request: Request) -> tuple[str, str]:
        system_id, change = request.path_params["system_id"], request.path_params["change"]
        if change not in ("suspend", "resume"):
            raise HTTPException(404, "No such page.")
        return system_id, change

    async def status_confirm(request: Request, me: Me) -> Response:
        system_id, change = status_path(request)
        account = await known_account(me, system_id)
        return show(request, "operator_confirm.html", "accounts", account=account,
                    change=change, action=f"/operator/accounts/{system_id}/{change}",
                    back="/operator/accounts")

    async def status_change(request: Request, me: Me) -> Response:
        system_id, change = status_path(request)
        form = await panel.checked_form(request, me)
        await known_account(me, system_id)
        args: dict[str, Any] = {"system_id": system_id}
        if change == "suspend":
            args["unbind"] = form.get("unbind") == "on"
        await panel.op(me, f"account.{change}", args)
        return done("/operator/accounts", "suspended" if change == "suspend" else "resumed")

    # --- rates -------------------------------------------------------------------------

    async def rates_page(request: Request, me: Me, *, status: int = 200,
                         **values: Any) -> Response:
        scope = request.query_params.get("account", "").strip()
        try:
            rates = await act(me, "rate.list", {"system_id": scope} if scope else {})
        except Refused as exc:
            raise HTTPException(404, str(exc)) from exc
        values.setdefault("form", {"account": scope})
        return show(request, "operator_rates.html", "rates", status, scope=scope,
                    listing=_paged(rates, request.query_params), **values)

    async def rates(request: Request, me: Me) -> Response:
        return await rates_page(request, me)

    def rate_args(form: dict[str, str]) -> dict[str, Any]:
        args = {"prefix": form.get("prefix", "").strip()}
        if form.get("account", "").strip():
            args["system_id"] = form["account"].strip()
        return args

    async def set_rate(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        try:
            await act(me, "rate.set", {**rate_args(form), "price": form.get("price", "")})
        except Refused as exc:
            return await rates_page(request, me, status=400, error=str(exc), form=form)
        return RedirectResponse(_link("/operator/rates", {"account": form.get("account", ""),
                                                          "done": "rate-set"}), 303)

    async def remove_rate_confirm(request: Request, me: Me) -> Response:
        params = request.query_params
        rate = {"prefix": params.get("prefix", ""), "account": params.get("account", "")}
        return show(request, "operator_confirm.html", "rates", change="remove-rate",
                    rate=rate, action="/operator/rates/remove",
                    back=_link("/operator/rates", {"account": rate["account"]}))

    async def remove_rate(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        try:
            await act(me, "rate.remove", rate_args(form))
        except Refused as exc:
            return await rates_page(request, me, status=400, error=str(exc))
        return RedirectResponse(_link("/operator/rates", {"account": form.get("account", ""),
                                                          "done": "rate-removed"}), 303)

    # --- credits -----------------------------------------------------------------------

    async def credits_page(request: Request, me: Me, *, status: int = 200,
                           **values: Any) -> Response:
        accounts = await panel.op(me, "account.list", {})
        values.setdefault("add_form", {})
        values.setdefault("move_form", {})
        return show(request, "operator_credits.html", "credits", status,
                    accounts=accounts, listing=_paged(accounts, request.query_params),
                    **values)

    async def credits(request: Request, me: Me) -> Response:
        return await credits_page(request, me)

    async def add_credits(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        args = {"system_id": form.get("system_id", "").strip(),
                "amount": form.get("amount", ""), "note": form.get("note", "").strip() or None}
        try:
            await act(me, "credits.add", args)
        except Refused as exc:
            return await credits_page(request, me, status=400, add_error=str(exc),
                                      add_form=form)
        return done("/operator/credits", "credits-added")

    async def transfer_credits(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        args = {"from": form.get("from", "").strip(), "to": form.get("to", "").strip(),
                "amount": form.get("amount", "")}
        try:
            await act(me, "credits.transfer", args)
        except Refused as exc:
            return await credits_page(request, me, status=400, move_error=str(exc),
                                      move_form=form)
        return done("/operator/credits", "transferred")

    # --- live sessions -----------------------------------------------------------------

    async def sessions(request: Request, me: Me) -> Response:
        bound = await panel.op(me, "sessions.list", {})
        bound.sort(key=lambda s: (s["system_id"], s["node"], s["peer"] or ""))
        return show(request, "operator_sessions.html", "sessions",
                    listing=_paged(bound, request.query_params))

    async def kick_confirm(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        account = await known_account(me, system_id)
        return show(request, "operator_confirm.html", "sessions", account=account,
                    change="kick", action=f"/operator/sessions/{system_id}/kick",
                    back="/operator/sessions")

    async def kick(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await panel.checked_form(request, me)
        await known_account(me, system_id)
        await panel.op(me, "sessions.kick", {"system_id": system_id})
        return done("/operator/sessions", "kicked")

    # --- audit log ---------------------------------------------------------------------

    async def audit(request: Request, me: Me) -> Response:
        params = request.query_params
        filters = {"target": params.get("target", "").strip(),
                   "action": params.get("action", "").strip()}
        page = _page_number(params)
        start = (page - 1) * PAGE_SIZE
        if start + PAGE_SIZE > AUDIT_MAX:
            raise HTTPException(400, f"The audit log pages only through its newest "
                                     f"{AUDIT_MAX} entries.")
        args: dict[str, Any] = {k: v for k, v in filters.items() if v}
        # One more than the page, to know whether a next page exists.
        args["limit"] = min(start + PAGE_SIZE + 1, AUDIT_MAX)
        entries = await panel.op(me, "audit.list", args)
        return show(request, "operator_audit.html", "audit", filters=filters,
                    entries=entries[start:start + PAGE_SIZE], page=page,
                    more=len(entries) > start + PAGE_SIZE,
                    previous=_link("/operator/audit", {**filters, "page": page - 1}),
                    next=_link("/operator/audit", {**filters, "page": page + 1}))

    only = panel.operator_page
    return [
        Route("/operator/customers", only(customers)),
        Route("/operator/customers", only(create_customer), methods=["POST"]),
        Route("/operator/customers/add-account", only(add_account), methods=["POST"]),
        Route("/operator/accounts", only(accounts)),
        Route("/operator/accounts", only(create_account), methods=["POST"]),
        Route("/operator/accounts/{system_id}/{change}", only(status_confirm)),
        Route("/operator/accounts/{system_id}/{change}", only(status_change),
              methods=["POST"]),
        Route("/operator/rates", only(rates)),
        Route("/operator/rates", only(set_rate), methods=["POST"]),
        Route("/operator/rates/remove", only(remove_rate_confirm)),
        Route("/operator/rates/remove", only(remove_rate), methods=["POST"]),
        Route("/operator/credits", only(credits)),
        Route("/operator/credits/add", only(add_credits), methods=["POST"]),
        Route("/operator/credits/transfer", only(transfer_credits), methods=["POST"]),
        Route("/operator/sessions", only(sessions)),
        Route("/operator/sessions/{system_id}/kick", only(kick_confirm)),
        Route("/operator/sessions/{system_id}/kick", only(kick), methods=["POST"]),
        Route("/operator/audit", only(audit)),
    ]

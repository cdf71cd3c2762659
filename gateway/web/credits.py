"""The credits page of an account: its balance and ledger, a transfer to another account
of the same customer, automatic top-up and the low-balance alert threshold.

Account holders act here on their own accounts only (both ends of a transfer are
checked); adding credits out of nothing is an operator's screen, not this one. Every
rule on amounts lives in the credit operations (gateway.admin.ops.credits); this page
only turns their refusals into an error above the form it kept.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.admin.server import REFUSALS
from gateway.web.accounts import shown_account
from gateway.web.panel import Me, Panel
from store.errors import InsufficientCredit

LEDGER_PAGE = 25  # ledger rows per page
# ledger.list gives the newest rows up to a limit (at most 10,000): a page is a slice of
# them, so the page shows the newest LAST_PAGE * LEDGER_PAGE entries.
LAST_PAGE = 10_000 // LEDGER_PAGE

# What the operations refuse as bad input; anything else is a bug and a 500.

# Ledger kinds as the customer reads them.
_KINDS = {"topup": "Top-up", "auto_topup": "Automatic top-up", "transfer_in": "Transfer in",
          "transfer_out": "Transfer out", "debit": "Messages sent", "refund": "Refund",
          "adjust": "Adjustment", "reprice": "Price correction"}


def routes(panel: Panel) -> list[BaseRoute]:
    panel.tab("Credits", "credits")

    async def show(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await shown_account(panel, me, system_id)
        page = _page_number(request.query_params.get("page", "1"))
        return await _render(panel, request, me, system_id, page=page)

    async def transfer(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await panel.owned(me, system_id)
        form = await panel.checked_form(request, me)
        target, amount = form.get("to", "").strip(), form.get("amount", "").strip()
        if not target:
            return await _refused(panel, request, me, system_id, "transfer", form,
                                  "Choose the account that receives the credits.")
        await panel.owned(me, target)  # the target is this customer's too, or "not found"
        if not amount:
            return await _refused(panel, request, me, system_id, "transfer", form,
                                  "Enter the number of credits to transfer, e.g. 12.50.")
        try:
            await panel.op(me, "credits.transfer",
                           {"from": system_id, "to": target, "amount": amount})
        except InsufficientCredit:
            left = await panel.op(me, "balance.show", {"system_id": system_id})
            return await _refused(
                panel, request, me, system_id, "transfer", form,
                f"Not enough credits: {system_id} has {left['balance']}, fewer than {amount}.")
        except REFUSALS as exc:
            return await _refused(panel, request, me, system_id, "transfer", form,
                                  f"Transfer refused: {exc}")
        return _done(system_id, "transferred")

    async def auto_topup(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await panel.owned(me, system_id)
        form = await panel.checked_form(request, me)
        if form.get("off"):
            args: dict[str, Any] = {"system_id": system_id, "off": True}
        else:
            missing = [label for key, label in (("threshold", "a threshold"),
                                                ("amount", "an amount"))
                       if not form.get(key, "").strip()]
            if missing:
                return await _refused(
                    panel, request, me, system_id, "auto_topup", form,
                    f"Enter {' and '.join(missing)} for the automatic top-up, or turn it off.")
            args = {"system_id": system_id, "threshold": form["threshold"].strip(),
                    "amount": form["amount"].strip(),
                    "monthly_cap": form.get("monthly_cap", "").strip() or None}
        try:
            await panel.op(me, "credits.auto_topup", args)
        except REFUSALS as exc:
            return await _refused(panel, request, me, system_id, "auto_topup", form,
                                  f"Automatic top-up not saved: {exc}")
        return _done(system_id, "auto_topup")

    async def alert(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await panel.owned(me, system_id)
        form = await panel.checked_form(request, me)
        threshold = form.get("threshold", "").strip()
        if not form.get("off") and not threshold:
            return await _refused(panel, request, me, system_id, "alert", form,
                                  "Enter a threshold for the alert, or turn it off.")
        args = ({"system_id": system_id, "off": True} if form.get("off")
                else {"system_id": system_id, "threshold": threshold})
        try:
            await panel.op(me, "credits.alert", args)
        except REFUSALS as exc:
            return await _refused(panel, request, me, system_id, "alert", form,
                                  f"Alert not saved: {exc}")
        return _done(system_id, "alert")

    base = "/accounts/{system_id}/credits"
    return [
        Route(base, panel.page(show), methods=["GET"]),
        Route(f"{base}/transfer", panel.page(transfer), methods=["POST"]),
        Route(f"{base}/auto-topup", panel.page(auto_topup), methods=["POST"]),
        Route(f"{base}/alert", panel.page(alert), methods=["POST"]),
    ]


def _page_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= LAST_PAGE:
        raise HTTPException(400, f"The ledger page must be a number from 1 to {LAST_PAGE}.")
    return int(text)


def _done(system_id: str, what: str) -> Response:
    return RedirectResponse(f"/accounts/{system_id}/credits?done={what}", status_code=303)


async def _refused(panel: Panel, request: Request, me: Me, system_id: str, form_name: str,
                   form: dict[str, str], error: str) -> Response:
    """The page again, status 400, with the error above the form and what was typed."""
    return await _render(panel, request, me, system_id, status=400,
                         errors={form_name: error}, kept={form_name: form})


async def _render(panel: Panel, request: Request, me: Me, system_id: str, *, page: int = 1,
                  status: int = 200, errors: dict[str, str] | None = None,
                  kept: dict[str, dict[str, str]] | None = None) -> Response:
    account = await shown_account(panel, me, system_id)
    # One row more than the page shows tells whether an older page exists.
    rows = await panel.op(me, "ledger.list", {"system_id": system_id,
                                              "limit": page * LEDGER_PAGE + 1})
    entries = rows[(page - 1) * LEDGER_PAGE: page * LEDGER_PAGE]
    for entry in entries:
        entry["label"] = _KINDS.get(entry["kind"], entry["kind"].replace("_", " "))
    return panel.render(
        request, "credits.html", status, account=account, nav="accounts", tab="credits",
        entries=entries, page=page, older=len(rows) > page * LEDGER_PAGE and page < LAST_PAGE,
        targets=await _other_accounts(panel, me, system_id),
        errors=errors or {}, kept=kept or {}, done=request.query_params.get("done", ""),
    )


async def _other_accounts(panel: Panel, me: Me, system_id: str) -> list[str]:
    """The accounts a transfer from `system_id` may go to: the others of its customer (for
    an operator, of the customers holding it)."""
    customers = panel.ctx.customers
    if me["role"] == "operator":
        found = {sid for c in await customers.owners(system_id) for sid in c["accounts"]}
    else:
        found = {a["system_id"] for a in await customers.accounts(me["customer_id"])}
    return sorted(found - {system_id})

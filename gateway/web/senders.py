"""The Senders tab of an account: its senders with their states and comments, and the
form to request a new one. A request is always created pending (sender.add with the
state given explicitly): only an operator, in the approval queue (gateway.web.operator),
enables or refuses it."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from auth.senders import SENDER_KINDS
from gateway.admin.server import REFUSALS
from gateway.web.accounts import shown_account
from gateway.web.panel import Me, Panel

PER_PAGE = 50
REQUESTED_STATE = "pending"


def routes(panel: Panel) -> list[BaseRoute]:
    panel.tab("Senders", "senders")

    async def show(request: Request, me: Me, *, error: str = "", status: int = 200,
                   form: dict[str, str] | None = None) -> Response:
        system_id = request.path_params["system_id"]
        account = await shown_account(panel, me, system_id)
        senders = await panel.op(me, "sender.list", {"system_id": system_id})
        asked = request.query_params.get("requested", "")
        requested = next((s for s in senders if s["address"] == asked), None)
        page = page_number(request.query_params.get("page"))
        pages = max(1, -(-len(senders) // PER_PAGE))
        page = min(page, pages)
        return panel.render(
            request, "senders.html", status, account=account, nav="accounts", tab="senders",
            senders=senders[(page - 1) * PER_PAGE: page * PER_PAGE], total=len(senders),
            page=page, pages=pages, kinds=SENDER_KINDS, error=error,
            form=form or {"kind": SENDER_KINDS[0]}, requested=requested,
            pending=await pending_count(panel, me),
        )

    async def senders_tab(request: Request, me: Me) -> Response:
        return await show(request, me)

    async def request_sender(request: Request, me: Me) -> Response:
        system_id = request.path_params["system_id"]
        await panel.owned(me, system_id)
        form = await panel.checked_form(request, me)
        kept = {k: form.get(k, "").strip() for k in ("sender", "kind", "comment")}
        # A customer only ever asks; the state is the operator's to change.
        if form.get("state", REQUESTED_STATE) != REQUESTED_STATE:
            return await show(request, me, status=400, form=kept,
                              error="A new sender is always pending until an operator "
                                    "enables it.")
        if not kept["sender"]:
            return await show(request, me, status=400, form=kept,
                              error="Give the sender address you want to use.")
        if kept["kind"] not in SENDER_KINDS:
            return await show(request, me, status=400, form=kept,
                              error=f"Choose the kind of sender: {', '.join(SENDER_KINDS)}.")
        try:
            added = await panel.op(me, "sender.add", {
                "system_id": system_id, "sender": kept["sender"], "kind": kept["kind"],
                "state": REQUESTED_STATE, "comment": kept["comment"] or None,
            })
        except REFUSALS as exc:
            return await show(request, me, status=400, form=kept, error=sentence(exc))
        return RedirectResponse(
            f"/accounts/{quote(system_id)}/senders?{urlencode({'requested': added['address']})}",
            status_code=303)

    return [
        Route("/accounts/{system_id}/senders", panel.page(senders_tab), methods=["GET"]),
        Route("/accounts/{system_id}/senders", panel.page(request_sender), methods=["POST"]),
    ]


async def pending_count(panel: Panel, me: Me) -> int | None:
    """For an operator, how many senders wait in the approval queue; else None."""
    if me["role"] != "operator":
        return None
    return len(await panel.op(me, "sender.pending", {}))


def page_number(text: str | None) -> int:
    """The page asked for in ?page=, 1 when absent or not a positive number."""
    if text is None or not text.isdigit():
        return 1
    return max(1, min(int(text), 1_000_000))


def sentence(exc: Exception) -> str:
    """An operation's refusal as a sentence for the page."""
    text = str(exc).strip() or "This request was not accepted."
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")

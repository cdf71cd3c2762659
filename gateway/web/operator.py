"""The operator area of the panel. This module holds the sender approval queue
(/operator/senders): every pending sender of every account, enabled or refused through
sender.set_state. The other operator screens live in gateway.web.operator_screens."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.admin.server import REFUSALS
from gateway.web.panel import Me, Panel
from gateway.web.senders import PER_PAGE, page_number, sentence

# What the queue may decide for a pending sender.
DECISIONS = ("enabled", "refused")


def routes(panel: Panel) -> list[BaseRoute]:
    return sender_queue_routes(panel)


# --- the sender approval queue ----------------------------------------------------------


def sender_queue_routes(panel: Panel) -> list[BaseRoute]:
    async def show(request: Request, me: Me, *, error: str = "", status: int = 200) -> Response:
        queue = await panel.op(me, "sender.pending", {})
        pages = max(1, -(-len(queue) // PER_PAGE))
        page = min(page_number(request.query_params.get("page")), pages)
        done = request.query_params
        decided = None
        if done.get("state") in DECISIONS and done.get("sender") and done.get("system_id"):
            decided = {k: done[k] for k in ("state", "sender", "system_id")}
        return panel.render(
            request, "operator_senders.html", status, nav="operator", section="senders",
            queue=queue[(page - 1) * PER_PAGE: page * PER_PAGE], total=len(queue),
            page=page, pages=pages, error=error, decided=decided,
        )

    async def queue(request: Request, me: Me) -> Response:
        return await show(request, me)

    async def decide(request: Request, me: Me) -> Response:
        form = await panel.checked_form(request, me)
        system_id, address = form.get("system_id", ""), form.get("sender", "")
        state, comment = form.get("state", ""), form.get("comment", "").strip()
        if state not in DECISIONS:
            return await show(request, me, status=400,
                              error="Choose Enable or Refuse for a pending sender.")
        waiting = await panel.op(me, "sender.pending", {})
        if not any(s["system_id"] == system_id and s["address"] == address for s in waiting):
            return await show(request, me, status=400,
                              error=f"Sender {address!r} of account {system_id!r} is not "
                                    "pending any more (or does not exist).")
        # Refusing is final for the customer: ask once more, with room for the reason.
        if state == "refused" and form.get("confirmed") != "yes":
            return panel.render(request, "operator_senders_confirm.html", nav="operator",
                                section="senders", system_id=system_id, sender=address,
                                comment=comment)
        args = {"system_id": system_id, "sender": address, "state": state}
        if comment:
            args["comment"] = comment
        try:
            await panel.op(me, "sender.set_state", args)
        except REFUSALS as exc:
            return await show(request, me, status=400, error=sentence(exc))
        done = urlencode({"state": state, "sender": address, "system_id": system_id})
        return RedirectResponse(f"/operator/senders?{done}", status_code=303)

    return [
        Route("/operator/senders", panel.operator_page(queue), methods=["GET"]),
        Route("/operator/senders", panel.operator_page(decide), methods=["POST"]),
    ]

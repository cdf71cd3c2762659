"""The customer area: pages rendered on the server (Starlette + Jinja2) over the same
operations as the admin socket (gateway.admin.ops), so a rule is written once.

A customer logs in with e-mail and password (Argon2id, throttled like SMPP binds by
auth.throttle); the session is a random cookie whose hash the store keeps
(store.customers), HttpOnly, SameSite=Strict, Secure over HTTPS. Every form carries
the session's CSRF token (the login form a cookie-bound one) and a POST without it is
refused. A customer sees only the accounts it owns: any other system_id is "not found",
so the panel tells nobody which accounts exist; an operator sees them all. Every change
is made by an admin operation with the customer as actor, so it is in the audit log.
Each area is a module that gives its routes (gateway.web.panel says what they share).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from gateway.web import (
    accounts,
    api,
    credits,
    history,
    ips,
    login,
    operator,
    operator_screens,
    password,
    senders,
    stop_list,
)
from gateway.web.panel import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Listening,
    Panel,
    WebContext,
)

__all__ = ["LOGIN_CSRF_COOKIE", "SESSION_COOKIE", "Listening", "WebContext", "build_app"]

# The areas of the panel, in the order of their tabs.
AREAS = (login, accounts, password, ips, senders, credits, history, stop_list, operator,
         operator_screens, api)


def build_app(ctx: WebContext) -> Starlette:
    panel = Panel(ctx)
    routes = [route for area in AREAS for route in area.routes(panel)]
    return Starlette(
        debug=False, routes=routes,
        exception_handlers={HTTPException: panel.error, Exception: panel.crash},
    )

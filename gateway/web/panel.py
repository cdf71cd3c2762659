"""What every page of the panel shares: who is asking, what they may see, how a page
is rendered, how a form is checked, and the admin operations pages act through.

A page module (gateway.web.login, .accounts, ...) gives its routes for a `Panel`; the
account pages also name their tab (`Panel.tab`), and the account page shows the tabs
that exist.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from auth.tokens import same, token_hash
from gateway.admin.ops import OPS

if TYPE_CHECKING:
    from auth.throttle import BindGuard
    from gateway.admin.context import AdminContext
    from store.customers import CustomerStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "smppgw_session"
LOGIN_CSRF_COOKIE = "smppgw_login_csrf"
TEMPLATES = Path(__file__).parent / "templates"
NO_STORE = {"Cache-Control": "no-store"}
_TITLES = {400: "Not accepted", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
           429: "Too many requests"}


@dataclass(frozen=True, slots=True)
class Listening:
    """Where customers connect over SMPP, as the panel shows it."""

    host: str
    port: int | None
    tls_port: int | None


@dataclass(frozen=True, slots=True)
class WebContext:
    customers: CustomerStore
    admin: AdminContext
    guard: BindGuard
    listening: Listening
    secure: bool  # served over HTTPS: cookies get the Secure flag
    session_ttl: timedelta = timedelta(hours=12)


Me = dict[str, Any]
Handler = Callable[[Request, Me], Awaitable[Response]]


@dataclass
class Panel:
    ctx: WebContext
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES)))  # autoescapes
    # (label, path under /accounts/{system_id}/) of the account pages that exist.
    tabs: list[tuple[str, str]] = field(default_factory=list)

    def tab(self, label: str, path: str) -> None:
        self.tabs.append((label, path))

    # --- rendering ----------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        values.setdefault("me", request.scope.get("smppgw.customer"))
        values.setdefault("nav", "")
        values.setdefault("tabs", self.tabs)
        return self.templates.TemplateResponse(request, name, values, status_code=status,
                                               headers=NO_STORE)

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.render(request, "error.html", exc.status_code,
                           title=_TITLES.get(exc.status_code, "Error"), detail=exc.detail)

    async def crash(self, request: Request, exc: Exception) -> Response:
        log.exception("web panel: %s %s failed", request.method, request.url.path)
        return self.render(request, "error.html", 500, title="Something went wrong",
                           detail="The error is logged; please try again.")

    def cookie(self, response: Response, name: str, value: str, *, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="strict", secure=self.ctx.secure)

    # --- who is asking, and what they may see ------------------------------------------------

    async def customer(self, request: Request) -> Me | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        found = await self.ctx.customers.session(token_hash(token), datetime.now(UTC))
        if found is not None:
            request.scope["smppgw.customer"] = found
        return found

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page for logged-in customers only; the others go to the login page."""
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            me = await self.customer(request)
            if me is None:
                return RedirectResponse("/login", status_code=303)
            return await handler(request, me)
        return guarded

    def operator_page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page for operators only; for anybody else it does not exist."""
        async def only_operators(request: Request, me: Me) -> Response:
            if me["role"] != "operator":
                raise HTTPException(404, "No such page.")
            return await handler(request, me)
        return self.page(functools.wraps(handler)(only_operators))

    async def owned(self, me: Me, system_id: str) -> None:
        """The customer may see this account; else it is 'not found', whether or not it
        exists."""
        if me["role"] == "operator":
            return
        if not await self.ctx.customers.owns(me["customer_id"], system_id):
            raise HTTPException(404, f"No account {system_id} among yours.")

    async def checked_form(self, request: Request, me: Me) -> dict[str, str]:
        """The posted form, if it carries the session's CSRF token; else 403."""
        form = await request.form()
        if not same(str(form.get("csrf", "")), me["csrf_token"]):
            raise HTTPException(403, "This form has expired or was not sent by this site; "
                                     "reload the page and try again.")
        return {k: str(v) for k, v in form.items() if k != "csrf"}

    # --- acting -------------------------------------------------------------------------------

    @staticmethod
    def actor(me: Me) -> str:
        return f"customer:{me['email']}"

    async def op(self, me: Me, name: str, args: dict[str, Any]) -> Any:
        """An admin operation with the customer as actor (audited as such)."""
        return await OPS[name](self.ctx.admin, args, self.actor(me))

"""The customer area: pages rendered on the server (Starlette + Jinja2) over the same
operations as the admin socket (gateway.admin.ops), so a rule is written once.

A customer logs in with e-mail and password (Argon2id, throttled like SMPP binds by
auth.throttle); the session is a random cookie whose hash the store keeps
(store.customers), HttpOnly, SameSite=Strict, Secure over HTTPS. Every form carries
the session's CSRF token (the login form a cookie-bound one) and a POST without it is
refused. A customer sees only the accounts it owns: any other system_id is "not found",
so the panel tells nobody which accounts exist; an operator sees them all. Every change
is made by an admin operation with the customer as actor, so it is in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from auth.passwords import verify_password
from auth.throttle import BindGuard
from auth.tokens import new_token, same, token_hash
from gateway.admin.ops import OPS
from gateway.admin.parsing import AdminError

if TYPE_CHECKING:
    from gateway.admin.context import AdminContext
    from store.customers import CustomerStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "smppgw_session"
LOGIN_CSRF_COOKIE = "smppgw_login_csrf"
TEMPLATES = Path(__file__).parent / "templates"


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


def build_app(ctx: WebContext) -> Starlette:
    templates = Jinja2Templates(directory=str(TEMPLATES))  # autoescapes HTML
    pages = _Pages(ctx, templates)
    app = Starlette(
        debug=False,
        routes=[
            Route("/", pages.accounts),
            Route("/login", pages.login_form, methods=["GET"]),
            Route("/login", pages.login, methods=["POST"]),
            Route("/logout", pages.logout, methods=["POST"]),
            Route("/accounts/{system_id}", pages.account),
        ],
        exception_handlers={HTTPException: pages.error, Exception: pages.crash},
    )
    return app


class _Pages:
    def __init__(self, ctx: WebContext, templates: Jinja2Templates) -> None:
        self.ctx = ctx
        self.templates = templates

    # --- rendering ----------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        values.setdefault("me", request.scope.get("smppgw.customer"))
        values.setdefault("nav", "")
        return self.templates.TemplateResponse(request, name, values, status_code=status,
                                               headers=_NO_STORE)

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.render(request, "error.html", exc.status_code, title=_TITLES.get(
            exc.status_code, "Error"), detail=exc.detail)

    async def crash(self, request: Request, exc: Exception) -> Response:
        log.exception("web panel: %s %s failed", request.method, request.url.path)
        return self.render(request, "error.html", 500, title="Something went wrong",
                           detail="The error is logged; please try again.")

    # --- who is asking --------------------------------------------------------------------

    async def customer(self, request: Request) -> dict[str, Any] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        found = await self.ctx.customers.session(token_hash(token), datetime.now(UTC))
        if found is not None:
            request.scope["smppgw.customer"] = found
        return found

    async def logged_in(self, request: Request) -> dict[str, Any]:
        found = await self.customer(request)
        if found is None:
            raise _Redirect("/login")
        return found

    async def owned(self, me: dict[str, Any], system_id: str) -> None:
        """The customer may see this account; else it is 'not found', whether or not it
        exists."""
        if me["role"] == "operator":
            return
        if not await self.ctx.customers.owns(me["customer_id"], system_id):
            raise HTTPException(404, f"No account {system_id} among yours.")

    @staticmethod
    def actor(me: dict[str, Any]) -> str:
        return f"customer:{me['email']}"

    async def checked_form(self, request: Request, me: dict[str, Any]) -> dict[str, str]:
        form = await request.form()
        if not same(str(form.get("csrf", "")), me["csrf_token"]):
            raise HTTPException(403, "This form has expired or was not sent by this site; "
                                     "reload the page and try again.")
        return {k: str(v) for k, v in form.items()}

    async def op(self, me: dict[str, Any], name: str, args: dict[str, Any]) -> Any:
        return await OPS[name](self.ctx.admin, args, self.actor(me))

    # --- login ----------------------------------------------------------------------------

    async def login_form(self, request: Request, error: str = "", status: int = 200,
                         email: str = "") -> Response:
        csrf = new_token()
        response = self.render(request, "login.html", status, csrf=csrf, error=error,
                               email=email, me=None)
        self._cookie(response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()[:254]
        password = str(form.get("password", ""))
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not same(str(form.get("csrf", "")), cookie):
            return await self.login_form(
                request, "The login form expired; please try again.", 403, email)
        peer = request.client.host if request.client else "unknown"
        found = await self.ctx.customers.by_email(email) if email else None
        attempt = self.ctx.guard.admit(email, peer, listed=found is not None)
        if attempt is None:
            return await self.login_form(
                request, "Too many failed attempts; wait a minute and try again.", 429, email)
        try:
            ok = found is not None and await asyncio.to_thread(
                verify_password, found["password_hash"], password)
        except BaseException:
            attempt.abandoned()
            raise
        if not ok:
            attempt.failed()
            return await self.login_form(request, "Wrong e-mail or password.", 401, email)
        attempt.succeeded()
        assert found is not None
        token, csrf = new_token(), new_token()
        await self.ctx.customers.open_session(found["id"], token_hash(token), csrf,
                                              datetime.now(UTC), self.ctx.session_ttl)
        log.info("web panel: %s logged in from %s", found["email"], peer)
        response = RedirectResponse("/", status_code=303)
        self._cookie(response, SESSION_COOKIE, token,
                     max_age=int(self.ctx.session_ttl.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        me = await self.customer(request)
        if me is not None:
            await self.checked_form(request, me)
            await self.ctx.customers.close_session(token_hash(request.cookies[SESSION_COOKIE]))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def _cookie(self, response: Response, name: str, value: str, *, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="strict", secure=self.ctx.secure)

    # --- accounts -------------------------------------------------------------------------

    async def accounts(self, request: Request) -> Response:
        try:
            me = await self.logged_in(request)
        except _Redirect as go:
            return go.response()
        if me["role"] == "operator":
            rows = await self.op(me, "account.list", {})
        else:
            owned = await self.ctx.customers.accounts(me["customer_id"])
            rows = [await self.op(me, "account.show", {"system_id": a["system_id"]})
                    for a in owned]
        return self.render(request, "accounts.html", accounts=rows, nav="accounts")

    async def account(self, request: Request) -> Response:
        try:
            me = await self.logged_in(request)
        except _Redirect as go:
            return go.response()
        system_id = request.path_params["system_id"]
        await self.owned(me, system_id)
        try:
            account = await self.op(me, "account.show", {"system_id": system_id})
        except AdminError as exc:
            raise HTTPException(404, str(exc)) from exc
        return self.render(request, "account.html", account=account, nav="accounts",
                           listening=self.ctx.listening)


class _Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to

    def response(self) -> Response:
        return RedirectResponse(self.to, status_code=303)


_NO_STORE = {"Cache-Control": "no-store"}
_TITLES = {403: "Not allowed", 404: "Not found", 405: "Not allowed", 429: "Too many requests"}

"""Logging in and out: e-mail and password, throttled like SMPP binds; the session is a
random cookie whose hash the store keeps."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from auth.passwords import verify_password
from auth.tokens import new_token, same, token_hash
from gateway.web.panel import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Panel

log = logging.getLogger(__name__)


def routes(panel: Panel) -> list[Route]:
    async def login_form(request: Request, error: str = "", status: int = 200,
                         email: str = "") -> Response:
        csrf = new_token()
        response = panel.render(request, "login.html", status, csrf=csrf, error=error,
                                email=email, me=None)
        panel.cookie(response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
        return response

    async def login(request: Request) -> Response:
        ctx = panel.ctx
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()[:254]
        password = str(form.get("password", ""))
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not same(str(form.get("csrf", "")), cookie):
            return await login_form(request, "The login form expired; please try again.",
                                    403, email)
        peer = request.client.host if request.client else "unknown"
        found = await ctx.customers.by_email(email) if email else None
        attempt = ctx.guard.admit(email, peer, listed=found is not None)
        if attempt is None:
            return await login_form(
                request, "Too many failed attempts; wait a minute and try again.", 429, email)
        try:
            ok = found is not None and await asyncio.to_thread(
                verify_password, found["password_hash"], password)
        except BaseException:
            attempt.abandoned()
            raise
        if not ok:
            attempt.failed()
            log.warning("web panel: failed login for %r from %s", email, peer)
            return await login_form(request, "Wrong e-mail or password.", 401, email)
        attempt.succeeded()
        assert found is not None
        token, csrf = new_token(), new_token()
        await ctx.customers.open_session(found["id"], token_hash(token), csrf,
                                         datetime.now(UTC), ctx.session_ttl)
        log.info("web panel: %s logged in from %s", found["email"], peer)
        response = RedirectResponse("/", status_code=303)
        panel.cookie(response, SESSION_COOKIE, token,
                     max_age=int(ctx.session_ttl.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    async def logout(request: Request) -> Response:
        me = await panel.customer(request)
        if me is not None:
            await panel.checked_form(request, me)
            await panel.ctx.customers.close_session(
                token_hash(request.cookies[SESSION_COOKIE]))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]

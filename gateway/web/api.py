"""The JSON API under /api/v1: the account holder's operations for programs, and the
pages where a customer creates and revokes the tokens they use.

A request carries `Authorization: Bearer <token>`; the store keeps only the token's
SHA-256 (store.customers), so a token is shown once, when it is made. The API acts
through the same admin operations as the pages and the admin socket, with the customer
as actor, and with the same ownership rule: an account the customer does not own is
404, whether or not it exists. Every refusal is JSON {"error": ...} with a 4xx status;
the OpenAPI document at /api/v1/openapi.json describes every route (the tests check
the API against it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from auth.tokens import new_token, token_hash
from gateway.admin.server import REFUSALS
from gateway.web.panel import Me, Panel

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 16 * 1024  # bytes of a JSON request body

ApiHandler = Callable[[Request, Me], Awaitable[Any]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def routes(panel: Panel) -> list[BaseRoute]:
    api = _Api(panel)
    account = PREFIX + "/accounts/{system_id}"
    return [
        # The pages where tokens are made and revoked.
        Route("/tokens", panel.page(api.tokens_page), methods=["GET"]),
        Route("/tokens", panel.page(api.create_token), methods=["POST"]),
        Route("/tokens/{token_id:int}/revoke", panel.page(api.revoke_token), methods=["POST"]),
        # The API.
        Route(PREFIX + "/openapi.json", api.openapi, methods=["GET"]),
        Route(PREFIX + "/accounts", api.endpoint(api.accounts), methods=["GET"]),
        Route(account, api.endpoint(api.account), methods=["GET"]),
        Route(account + "/password", api.endpoint(api.password), methods=["POST"]),
        Route(account + "/ips", api.endpoint(api.ips), methods=["GET"]),
        Route(account + "/ips", api.endpoint(api.add_ip), methods=["POST"]),
        Route(account + "/ips", api.endpoint(api.remove_ip), methods=["DELETE"]),
        Route(account + "/senders", api.endpoint(api.senders), methods=["GET"]),
        Route(account + "/senders", api.endpoint(api.request_sender), methods=["POST"]),
        Route(account + "/ledger", api.endpoint(api.ledger), methods=["GET"]),
        Route(account + "/transfers", api.endpoint(api.transfer), methods=["POST"]),
        Route(account + "/history", api.endpoint(api.history), methods=["GET"]),
        Route(account + "/stop", api.endpoint(api.stop_list), methods=["GET"]),
        Route(account + "/stop", api.endpoint(api.stop_remove), methods=["DELETE"]),
    ]


class _Api:
    def __init__(self, panel: Panel) -> None:
        self.panel = panel

    # --- tokens, on pages ---------------------------------------------------------------

    async def tokens_page(self, request: Request, me: Me, created: str = "",
                          error: str = "", status: int = 200) -> Response:
        tokens = await self.panel.ctx.customers.tokens(me["customer_id"])
        return self.panel.render(request, "api_tokens.html", status, tokens=tokens,
                                 created=created, error=error, nav="api")

    async def create_token(self, request: Request, me: Me) -> Response:
        form = await self.panel.checked_form(request, me)
        name = form.get("name", "").strip()
        if not name or len(name) > 64:
            return await self.tokens_page(request, me, error="Give the token a name of 1 "
                                          "to 64 characters.", status=400)
        token = new_token()
        await self.panel.ctx.customers.add_token(me["customer_id"], name, token_hash(token),
                                                 datetime.now(UTC))
        await self.panel.ctx.admin.audit.record(self.panel.actor(me), "api_token.create",
                                                me["email"], None, {"name": name})
        # Shown now, never again: the store keeps its hash.
        return await self.tokens_page(request, me, created=token)

    async def revoke_token(self, request: Request, me: Me) -> Response:
        await self.panel.checked_form(request, me)
        token_id = request.path_params["token_id"]
        if not await self.panel.ctx.customers.revoke_token(me["customer_id"], token_id,
                                                           datetime.now(UTC)):
            raise HTTPException(404, "No such token among yours.")
        await self.panel.ctx.admin.audit.record(self.panel.actor(me), "api_token.revoke",
                                                me["email"], None, {"token_id": token_id})
        return RedirectResponse("/tokens", status_code=303)

    # --- the API's frame ---------------------------------------------------------------------

    def endpoint(self, handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                me = await self._bearer(request)
                if "system_id" in request.path_params:
                    await self._owned(me, request.path_params["system_id"])
                result = await handler(request, me)
            except ApiError as exc:
                return JSONResponse({"error": str(exc)}, exc.status)
            except REFUSALS as exc:
                return JSONResponse({"error": str(exc)}, _status_of(exc))
            return JSONResponse(result, headers={"Cache-Control": "no-store"})
        return run

    async def _bearer(self, request: Request) -> Me:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "send Authorization: Bearer <token> (make one at /tokens)")
        found = await self.panel.ctx.customers.customer_for_token(
            token_hash(token.strip()), datetime.now(UTC))
        if found is None:
            raise ApiError(401, "unknown or revoked token")
        return {"customer_id": found["id"], "email": found["email"], "role": found["role"]}

    async def _owned(self, me: Me, system_id: str) -> None:
        if me["role"] != "operator" and not await self.panel.ctx.customers.owns(
                me["customer_id"], system_id):
            raise ApiError(404, f"no account {system_id} among yours")

    async def op(self, me: Me, name: str, args: dict[str, Any]) -> Any:
        return await self.panel.op(me, name, args)

    @staticmethod
    async def body(request: Request, *required: str) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is over {MAX_BODY} bytes")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        for key in required:
            if not isinstance(data.get(key), str) or not data[key]:
                raise ApiError(400, f"{key!r} is required, as a non-empty string")
        return data

    @staticmethod
    def query(request: Request, name: str) -> str:
        value = request.query_params.get(name, "")
        if not value:
            raise ApiError(400, f"the query parameter {name!r} is required")
        return value

    # --- the operations ---------------------------------------------------------------

    async def accounts(self, request: Request, me: Me) -> Any:
        if me["role"] == "operator":
            return await self.op(me, "account.list", {})
        owned = await self.panel.ctx.customers.accounts(me["customer_id"])
        return [await self.op(me, "account.show", {"system_id": a["system_id"]})
                for a in owned]

    async def account(self, request: Request, me: Me) -> Any:
        return await self.op(me, "account.show", _sid(request))

    async def password(self, request: Request, me: Me) -> Any:
        data = await self.body(request)
        unbind = data.get("unbind", False)
        if not isinstance(unbind, bool):
            raise ApiError(400, "'unbind' must be true or false")
        return await self.op(me, "password.rotate", {**_sid(request), "unbind": unbind})

    async def ips(self, request: Request, me: Me) -> Any:
        return (await self.op(me, "ip.list", _sid(request)))["allowed_ips"]

    async def add_ip(self, request: Request, me: Me) -> Any:
        data = await self.body(request, "ip")
        result = await self.op(me, "ip.add", {**_sid(request), "ip": data["ip"]})
        return result["allowed_ips"]

    async def remove_ip(self, request: Request, me: Me) -> Any:
        result = await self.op(me, "ip.remove", {**_sid(request),
                                                 "ip": self.query(request, "ip")})
        return result["allowed_ips"]

    async def senders(self, request: Request, me: Me) -> Any:
        return await self.op(me, "sender.list", _sid(request))

    async def request_sender(self, request: Request, me: Me) -> Any:
        data = await self.body(request, "sender")
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ApiError(400, "'comment' must be a string")
        # Requested: pending until an operator enables it, whatever the caller says.
        return await self.op(me, "sender.add", {**_sid(request), "sender": data["sender"],
                                                "state": "pending", "comment": comment})

    async def ledger(self, request: Request, me: Me) -> Any:
        return await self.op(me, "ledger.list", {**_sid(request), "limit": _int_param(
            request, "limit", 50)})

    async def transfer(self, request: Request, me: Me) -> Any:
        data = await self.body(request, "to", "amount")
        await self._owned(me, data["to"])  # only between the customer's own accounts
        return await self.op(me, "credits.transfer", {
            "from": request.path_params["system_id"], "to": data["to"],
            "amount": data["amount"]})

    async def history(self, request: Request, me: Me) -> Any:
        args: dict[str, Any] = _sid(request)
        for name in ("since", "until", "status", "sender", "receiver", "direction"):
            if request.query_params.get(name):
                args[name] = request.query_params[name]
        args["limit"] = _int_param(request, "limit", 100)
        if request.query_params.get("after_id"):
            args["after_id"] = request.query_params["after_id"]
        return await self.op(me, "history.query", args)

    async def stop_list(self, request: Request, me: Me) -> Any:
        return await self.op(me, "stop.list", _sid(request))

    async def stop_remove(self, request: Request, me: Me) -> Any:
        return await self.op(me, "stop.remove", {**_sid(request),
                                                 "destination": self.query(request, "number")})

    # --- the document ----------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)


def _sid(request: Request) -> dict[str, Any]:
    return {"system_id": request.path_params["system_id"]}


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise ApiError(400, f"{name!r} must be an integer") from exc


def _status_of(exc: Exception) -> int:
    """A refusal's status: 404 for what does not exist, 400 for the rest."""
    text = str(exc)
    return 404 if text.startswith(("unknown account", "unknown customer")) or \
        exc.__class__.__name__.endswith("NotFound") else 400


# --- OpenAPI 3.0 -----------------------------------------------------------------------------

_ERROR = {"description": "refused", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
_ANY_JSON = {"description": "done", "content": {"application/json": {"schema": {}}}}
_SID = {"name": "system_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _operation(summary: str, *, params: tuple = (), body: dict | None = None) -> dict:
    op: dict[str, Any] = {
        "summary": summary, "parameters": [_SID, *params],
        "responses": {"200": _ANY_JSON, "400": _ERROR, "401": _ERROR, "404": _ERROR,
                      "413": _ERROR},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": body}}}
    return op


def _object(**properties: dict) -> dict:
    required = [k for k, v in properties.items() if not v.pop("optional", False)]
    return {"type": "object", "properties": properties, "required": required}


def _query(name: str, required: bool = False, kind: str = "string") -> dict:
    return {"name": name, "in": "query", "required": required, "schema": {"type": kind}}


_ACCOUNT = PREFIX + "/accounts/{system_id}"
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "smppgw customer API", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        PREFIX + "/accounts": {"get": {
            "summary": "Your SMPP accounts", "responses": {"200": _ANY_JSON, "401": _ERROR}}},
        _ACCOUNT: {"get": _operation("One account: status, balance, IPs, senders")},
        _ACCOUNT + "/password": {"post": _operation(
            "Generate a new SMPP password (returned once)",
            body=_object(unbind={"type": "boolean", "optional": True}))},
        _ACCOUNT + "/ips": {
            "get": _operation("Authorised IPs"),
            "post": _operation("Authorise an IP or CIDR (at most 10)",
                               body=_object(ip={"type": "string"})),
            "delete": _operation("Remove an authorised IP", params=(_query("ip", True),)),
        },
        _ACCOUNT + "/senders": {
            "get": _operation("Senders and their states"),
            "post": _operation("Request a sender (pending until an operator enables it)",
                               body=_object(sender={"type": "string"},
                                            comment={"type": "string", "optional": True})),
        },
        _ACCOUNT + "/ledger": {"get": _operation(
            "Newest ledger entries", params=(_query("limit", kind="integer"),))},
        _ACCOUNT + "/transfers": {"post": _operation(
            "Transfer credits to another of your accounts",
            body=_object(to={"type": "string"}, amount={"type": "string"}))},
        _ACCOUNT + "/history": {"get": _operation("Message history, newest first", params=(
            _query("since"), _query("until"), _query("status"), _query("sender"),
            _query("receiver"), _query("direction"), _query("limit", kind="integer"),
            _query("after_id", kind="integer")))},
        _ACCOUNT + "/stop": {
            "get": _operation("The STOP list"),
            "delete": _operation("Remove a number from the STOP list",
                                 params=(_query("number", True),)),
        },
    },
}

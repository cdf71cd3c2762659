"""The JSON API under /api/v1, over real HTTP: tokens made and revoked in the panel
(only their hash stored), the account holder's operations, the ownership rule on every
route, JSON errors for bad input; and the API checked against its own OpenAPI document
by schemathesis (generated requests, none may get a 5xx)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest
import schemathesis
from delivery_helpers import GatewayProcess
from gw_helpers import admin, new_account
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from web_helpers import csrf as _csrf

from gateway.web.api import OPENAPI


async def _token(base: str, email: str, password: str, name: str = "script") -> str:
    """Log in and make a token on the tokens page; the token shown once."""
    async with httpx.AsyncClient(base_url=base) as client:
        form = await client.get("/login")
        await client.post("/login", data={"email": email, "password": password,
                                          "csrf": _csrf(form.text)})
        page = await client.get("/tokens")
        made = await client.post("/tokens", data={"name": name, "csrf": _csrf(page.text)})
        assert made.status_code == 200
        found = re.search(r'<code id="new-token">([^<]+)</code>', made.text)
        assert found, "the new token is not shown"
        return found.group(1)


@pytest.fixture
async def api(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


async def test_a_token_reaches_the_customers_accounts_and_only_them(api):
    gw, base = api
    first, second = await new_account(gw, credits="20"), await new_account(gw, credits="5")
    theirs = await new_account(gw)
    me = await admin(gw, "customer.create", email="api@example.test",
                     accounts=[first["system_id"], second["system_id"]])
    await admin(gw, "customer.create", email="other@example.test",
                accounts=[theirs["system_id"]])
    token = await _token(base, "api@example.test", me["password"])
    # Only the hash is stored.
    stored = await gw.admin_context.customers.tokens(
        (await gw.admin_context.customers.by_email("api@example.test"))["id"])
    assert [t["name"] for t in stored] == ["script"] and token not in str(stored)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base + "/api/v1", headers=auth) as client:
        listed = (await client.get("/accounts")).json()
        assert sorted(a["system_id"] for a in listed) == sorted(
            [first["system_id"], second["system_id"]])
        sid = first["system_id"]
        ips = await client.post(f"/accounts/{sid}/ips", json={"ip": "198.51.100.0/24"})
        assert ips.status_code == 200 and "198.51.100.0/24" in ips.json()
        bad = await client.post(f"/accounts/{sid}/ips", json={"ip": "300.1.2.3"})
        assert bad.status_code == 400 and "error" in bad.json()
        gone = await client.delete(f"/accounts/{sid}/ips", params={"ip": "198.51.100.0/24"})
        assert "198.51.100.0/24" not in gone.json()
        asked = await client.post(f"/accounts/{sid}/senders",
                                  json={"sender": "NEWSLTR", "comment": "weekly"})
        assert asked.status_code == 200 and asked.json()["state"] == "pending"
        moved = await client.post(f"/accounts/{sid}/transfers",
                                  json={"to": second["system_id"], "amount": "7.50"})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["from_balance"], moved.json()["to_balance"]) == ("12.50", "12.50")
        assert (await client.get(f"/accounts/{sid}/ledger")).status_code == 200
        assert (await client.get(f"/accounts/{sid}/history")).json() == []
        # Someone else's account, or none, on every route: 404, and nothing done.
        for other in (theirs["system_id"], "smpp-nosuchone"):
            for method, path, kwargs in (
                ("GET", "", {}), ("POST", "/password", {"json": {}}),
                ("GET", "/ips", {}), ("POST", "/ips", {"json": {"ip": "10.0.0.1"}}),
                ("DELETE", "/ips", {"params": {"ip": "127.0.0.1"}}),
                ("GET", "/senders", {}), ("POST", "/senders", {"json": {"sender": "X1"}}),
                ("GET", "/ledger", {}), ("GET", "/history", {}), ("GET", "/stop", {}),
                ("POST", "/transfers", {"json": {"to": sid, "amount": "1"}}),
                ("DELETE", "/stop", {"params": {"number": "33600000000"}}),
            ):
                answer = await client.request(method, f"/accounts/{other}{path}", **kwargs)
                assert answer.status_code == 404, (method, path, answer.text)
        # Nor may credit leave towards another customer's account.
        refused = await client.post(f"/accounts/{sid}/transfers",
                                    json={"to": theirs["system_id"], "amount": "1"})
        assert refused.status_code == 404
    assert (await admin(gw, "ledger.check"))["ok"]
    theirs_now = await admin(gw, "account.show", system_id=theirs["system_id"])
    assert theirs_now["allowed_ips"] == ["127.0.0.1/32"]


async def test_without_a_live_token_the_api_says_401(api):
    gw, base = api
    me = await admin(gw, "customer.create", email="t@example.test")
    token = await _token(base, "t@example.test", me["password"])
    async with httpx.AsyncClient(base_url=base + "/api/v1") as client:
        assert (await client.get("/accounts")).status_code == 401
        wrong = await client.get("/accounts", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "error" in wrong.json()
        ok = await client.get("/accounts", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == []
    # Revoked in the panel: refused from then on.
    async with httpx.AsyncClient(base_url=base) as page_client:
        form = await page_client.get("/login")
        await page_client.post("/login", data={"email": "t@example.test",
                                               "password": me["password"],
                                               "csrf": _csrf(form.text)})
        page = await page_client.get("/tokens")
        token_id = re.search(r'action="/tokens/(\d+)/revoke"', page.text).group(1)
        revoked = await page_client.post(f"/tokens/{token_id}/revoke",
                                         data={"csrf": _csrf(page.text)})
        assert revoked.status_code == 303
    async with httpx.AsyncClient(base_url=base + "/api/v1") as client:
        again = await client.get("/accounts", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401


async def test_bad_bodies_get_json_errors(api):
    gw, base = api
    account = await new_account(gw)
    me = await admin(gw, "customer.create", email="b@example.test",
                     accounts=[account["system_id"]])
    token = await _token(base, "b@example.test", me["password"])
    sid = account["system_id"]
    async with httpx.AsyncClient(base_url=base + "/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        for body in (b"not json", b"[1, 2]", b'{"ip": 5}', b"{}", b"\xff\xfe"):
            answer = await client.post(f"/accounts/{sid}/ips", content=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"]
        huge = await client.post(f"/accounts/{sid}/ips", content=b"{" + b" " * 20_000 + b"}")
        assert huge.status_code == 413
        assert (await client.get(f"/accounts/{sid}/ledger?limit=x")).status_code == 400
        assert (await client.post(f"/accounts/{sid}/transfers",
                                  json={"to": sid, "amount": "-3"})).status_code == 400


# --- the API against its own OpenAPI document ---------------------------------------------


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    """A gateway in its own process (schemathesis' requests block), a customer who owns
    one account, and a token of theirs."""
    process = GatewayProcess(tmp_path_factory.mktemp("api-gw"), {
        "SMPPGW_CREATE_DEMO_ACCOUNT": "false"}).start()
    try:
        base = process.info["web"]
        socket = str(process.state_dir / "admin.sock")

        def cli(*args: str) -> dict:
            import json
            import subprocess
            done = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "admin", "--socket", socket, *args,
                 "--json"], capture_output=True, text=True, check=True)
            return json.loads(done.stdout)

        account = cli("account", "create", "--credits", "100", "--allow-ip", "127.0.0.1")
        me = cli("customer", "create", "fuzz@example.test", "--account", account["system_id"])
        token = asyncio.run(_token(base, "fuzz@example.test", me["password"]))
        yield {"base": base, "token": token, "system_id": account["system_id"]}
    finally:
        process.stop()


def test_the_api_keeps_to_its_openapi_document(live_api):
    """Generated requests for every documented operation (valid and not), with the
    customer's token: no 5xx, and every answer as the document says (status, type,
    schema). Half the generated system_ids are replaced by the customer's own account,
    so the operations themselves run, not only the ownership check."""
    served = httpx.get(live_api["base"] + "/api/v1/openapi.json")
    assert served.json() == OPENAPI
    api = schemathesis.openapi.from_dict(served.json())
    headers = {"Authorization": f"Bearer {live_api['token']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 13
    statuses: dict[int, int] = {}

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def exercise(case) -> None:
            params = case.path_parameters or {}
            if params.get("system_id") is not None and len(params["system_id"]) % 2:
                params["system_id"] = live_api["system_id"]
            response = case.call(base_url=live_api["base"], headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=checks, headers=headers)

        exercise()
    print(f"\nstatuses of the generated requests: {dict(sorted(statuses.items()))}")
    assert not [s for s in statuses if s >= 500]
    assert statuses.get(200) and statuses.get(400)  # both kinds of input were tried


def test_the_document_names_every_api_route():
    from gateway.web import api as module

    documented = {(path, method.upper()) for path, ops in OPENAPI["paths"].items()
                  for method in ops}
    source = Path(module.__file__).read_text()
    assert source.count("api.endpoint(") == len(documented) == 13

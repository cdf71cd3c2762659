"""The web panel over real HTTP (httpx against the gateway's own port): customers made
with the admin operations log in, see their accounts and only theirs, forms without
their CSRF token are refused, cookies carry the flags, failed logins are throttled,
errors are pages, never tracebacks. (Browser tests drive the same pages in Chromium.)"""

from __future__ import annotations

import httpx
import pytest
from gw_helpers import admin, new_account
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login

from gateway.web.app import LOGIN_CSRF_COOKIE, SESSION_COOKIE


@pytest.fixture
async def panel(make_gateway):
    gw = await make_gateway(bind_fail_limit_pair=3)
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


async def test_a_customer_logs_in_and_sees_its_accounts_and_their_details(panel):
    gw, base = panel
    mine = await new_account(gw, credits="12.50")
    other = await new_account(gw)
    me = await _customer(gw, "Alice@Example.test", mine["system_id"])
    assert me["email"] == "alice@example.test" and me["password"]
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/")).headers["location"] == "/login"
        logged = await _login(client, "alice@example.test", me["password"])
        assert logged.status_code == 303 and logged.headers["location"] == "/"
        cookie = logged.headers["set-cookie"]
        assert SESSION_COOKIE in cookie
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain HTTP here
        home = await client.get("/")
        assert home.status_code == 200
        assert mine["system_id"] in home.text and other["system_id"] not in home.text
        page = await client.get(f"/accounts/{mine['system_id']}")
        assert page.status_code == 200
        assert f'data-copy="{mine["system_id"]}"' in page.text
        assert "12.50 credits" in page.text
        assert str(gw.endpoints.smpp[1]) in page.text


async def test_a_customer_cannot_see_another_customers_account(panel):
    gw, base = panel
    mine, theirs = await new_account(gw), await new_account(gw)
    me = await _customer(gw, "a@example.test", mine["system_id"])
    await _customer(gw, "b@example.test", theirs["system_id"])
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "a@example.test", me["password"])
        for path in (f"/accounts/{theirs['system_id']}", "/accounts/no-such-account"):
            page = await client.get(path)
            assert page.status_code == 404
            # The same answer whether the account exists or not, and never a traceback.
            assert "among yours" in page.text and "Traceback" not in page.text
            assert theirs["password"] not in page.text


async def test_an_operator_sees_every_account(panel):
    gw, base = panel
    accounts = [await new_account(gw) for _ in range(2)]
    op = await _customer(gw, "ops@example.test", operator=True)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "ops@example.test", op["password"])
        home = await client.get("/")
        assert all(a["system_id"] in home.text for a in accounts)
        assert (await client.get(f"/accounts/{accounts[1]['system_id']}")).status_code == 200


async def test_forms_without_their_csrf_token_are_refused(panel):
    gw, base = panel
    me = await _customer(gw, "c@example.test")
    async with httpx.AsyncClient(base_url=base) as client:
        # Login without the token the login form set.
        refused = await client.post("/login", data={"email": "c@example.test",
                                                    "password": me["password"]})
        assert refused.status_code == 403 and SESSION_COOKIE not in refused.headers.get(
            "set-cookie", "")
        await _login(client, "c@example.test", me["password"])
        # Logout without the session's token: refused, and still logged in.
        assert (await client.post("/logout", data={})).status_code == 403
        assert (await client.get("/")).status_code == 200
        home = await client.get("/")
        out = await client.post("/logout", data={"csrf": _csrf(home.text)})
        assert out.status_code == 303
        assert (await client.get("/")).headers["location"] == "/login"


async def test_wrong_passwords_are_throttled_and_a_reset_logs_everyone_out(panel):
    gw, base = panel
    me = await _customer(gw, "d@example.test")
    async with httpx.AsyncClient(base_url=base) as guesser:
        for _ in range(3):  # bind_fail_limit_pair = 3
            assert (await _login(guesser, "d@example.test", "wrong")).status_code == 401
        blocked = await _login(guesser, "d@example.test", me["password"])
        assert blocked.status_code == 429 and "Too many" in blocked.text
    reset = await admin(gw, "customer.password_reset", email="D@example.test")
    assert reset["password"] != me["password"]
    audit = await admin(gw, "audit.list", limit=5)
    assert any(e["action"] == "customer.password_reset" for e in audit)
    assert all(me["password"] not in str(e) and reset["password"] not in str(e) for e in audit)


async def test_a_session_ends_with_a_password_reset(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    me = await _customer(gw, "e@example.test")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        await _login(client, "e@example.test", me["password"])
        assert (await client.get("/")).status_code == 200
        reset = await admin(gw, "customer.password_reset", email="e@example.test")
        assert reset["sessions_closed"] == 1
        assert (await client.get("/")).headers["location"] == "/login"
        # The new password works; the old one no longer does.
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await _login(client, "e@example.test", me["password"])).status_code == 401
        assert (await _login(client, "e@example.test", reset["password"])).status_code == 303
        assert LOGIN_CSRF_COOKIE not in client.cookies


async def test_customer_admin_operations_refuse_bad_input(panel):
    gw, _ = panel
    account = await new_account(gw)
    await _customer(gw, "f@example.test", account["system_id"])
    for args, message in (
        ({"email": "f@example.test"}, "already"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "g@example.test", "accounts": ["smpp-nosuchone"]}, "unknown account"),
    ):
        with pytest.raises(Exception, match=message):
            await admin(gw, "customer.create", **args)
    with pytest.raises(Exception, match="unknown customer"):
        await admin(gw, "customer.add_account", email="nobody@example.test",
                    system_id=account["system_id"])
    listed = await admin(gw, "customer.list")
    assert [(c["email"], c["accounts"]) for c in listed] == [
        ("f@example.test", [account["system_id"]])]


async def test_over_https_with_the_tls_listeners_certificate_the_cookie_is_secure(
    make_gateway, tmp_path
):
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    gw = await make_gateway(tls_port=0, tls_cert=cert_path, tls_key=key_path)
    host, port = gw.endpoints.web
    me = await _customer(gw, "tls@example.test")
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with httpx.AsyncClient(base_url=f"https://{host}:{port}", verify=trusted) as client:
        logged = await _login(client, "tls@example.test", me["password"])
        assert logged.status_code == 303
        cookie = logged.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert (await client.get("/")).status_code == 200
    # Plain HTTP to the HTTPS port gets nothing usable.
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get("/login")

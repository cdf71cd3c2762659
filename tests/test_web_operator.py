"""The operator's screens of the web panel over real HTTP (httpx against the gateway's
own port): customers and accounts made and changed from the pages, with a one-time
password shown once; suspend, resume and kick with a confirmation, felt by a real SMPP
client; rates, credits and the audit log with its filters and pages. For anybody but an
operator every one of these routes does not exist."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from gw_helpers import admin, new_account
from smpp_client import RawClient
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login

from pdu.codec import BindTransceiver, CommandId
from pdu.status import CommandStatus as S


@pytest.fixture
async def panel(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


@asynccontextmanager
async def _operator(gw, base: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client logged in as an operator, and the session's CSRF token."""
    me = await _customer(gw, "ops@example.test", operator=True)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await _login(client, "ops@example.test", me["password"])).status_code == 303
        yield client, _csrf((await client.get("/operator/accounts")).text)


async def _bind_status(gw, system_id: str, password: str) -> int:
    client = await RawClient.connect(*gw.endpoints.smpp)
    try:
        return (await client.bind(system_id, password, cls=BindTransceiver)).command_status
    finally:
        await client.close()


def _routes(sid: str) -> list[tuple[str, str, dict]]:
    """Every operator route, naming the account `sid` where a route names one."""
    return [
        ("GET", "/operator/customers", {}),
        ("POST", "/operator/customers", {"email": "x@example.test"}),
        ("POST", "/operator/customers/add-account", {"email": "x@example.test",
                                                     "system_id": sid}),
        ("GET", "/operator/accounts", {}),
        ("POST", "/operator/accounts", {}),
        ("GET", f"/operator/accounts/{sid}/suspend", {}),
        ("POST", f"/operator/accounts/{sid}/suspend", {"unbind": "on"}),
        ("GET", f"/operator/accounts/{sid}/resume", {}),
        ("POST", f"/operator/accounts/{sid}/resume", {}),
        ("GET", "/operator/rates", {}),
        ("POST", "/operator/rates", {"prefix": "33", "price": "9", "account": sid}),
        ("GET", f"/operator/rates/remove?prefix=33&account={sid}", {}),
        ("POST", "/operator/rates/remove", {"prefix": "33", "account": sid}),
        ("GET", "/operator/credits", {}),
        ("POST", "/operator/credits/add", {"system_id": sid, "amount": "5"}),
        ("POST", "/operator/credits/transfer", {"from": sid, "to": sid, "amount": "1"}),
        ("GET", "/operator/sessions", {}),
        ("GET", f"/operator/sessions/{sid}/kick", {}),
        ("POST", f"/operator/sessions/{sid}/kick", {}),
        ("GET", f"/operator/audit?target={sid}", {}),
    ]


async def test_operator_screens_do_not_exist_for_customers(panel):
    gw, base = panel
    theirs, mine = await new_account(gw, credits="10"), await new_account(gw, credits="10")
    await _customer(gw, "first@example.test", theirs["system_id"])
    second = await _customer(gw, "second@example.test", mine["system_id"])
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get("/operator/accounts")).headers["location"] == "/login"
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "second@example.test", second["password"])
        csrf = _csrf((await client.get("/")).text)
        for sid in (theirs["system_id"], mine["system_id"], "smpp-nosuchone"):
            for method, path, data in _routes(sid):
                answer = await client.request(method, path,
                                              data={**data, "csrf": csrf} if data or
                                              method == "POST" else None)
                assert answer.status_code == 404, (method, path, answer.status_code)
                assert "Traceback" not in answer.text
    # Nothing changed: no status, rate, credit or customer, and nothing in the audit log.
    for sid in (theirs["system_id"], mine["system_id"]):
        shown = await admin(gw, "account.show", system_id=sid)
        assert shown["status"] == "active" and shown["balance"] == "10.00"
    assert await admin(gw, "rate.list", system_id=theirs["system_id"]) == []
    assert not [e for e in await admin(gw, "audit.list", limit=100)
                if e["actor"] == "customer:second@example.test"]
    assert "x@example.test" not in str(await admin(gw, "customer.list"))


async def test_an_operator_creates_an_account_whose_password_is_shown_once(panel):
    gw, base = panel
    async with _operator(gw, base) as (client, csrf):
        made = await client.post("/operator/accounts", data={
            "csrf": csrf, "system_id": "web-made", "credits": "25.50",
            "contact_email": "holder@example.test", "allowed_ips": "127.0.0.1\n10.0.0.0/8"})
        assert made.status_code == 200  # no redirect: the password is in this answer only
        password = re.search(r'id="new-password">([^<]+)<', made.text).group(1)
        assert await _bind_status(gw, "web-made", password) == S.ESME_ROK
        again = await client.get("/operator/accounts")
        assert "web-made" in again.text and password not in again.text
        shown = await admin(gw, "account.show", system_id="web-made")
        assert shown["balance"] == "25.50" and sorted(shown["allowed_ips"]) == ["10.0.0.0/8",
                                                                               "127.0.0.1/32"]
        # Bad input: the page says why, keeps the form, and nothing is made.
        for data, message in (({"system_id": "web-made"}, "exists"),
                              ({"system_id": "way-too-long-system-id"}, "at most 15"),
                              ({"credits": "lots"}, "not a credit amount"),
                              ({"allowed_ips": "300.1.1.1"}, "300.1.1.1")):
            refused = await client.post("/operator/accounts", data={"csrf": csrf, **data})
            assert refused.status_code == 400, data
            assert message in refused.text and 'role="alert"' in refused.text
            assert all(f'value="{v}"' in refused.text for k, v in data.items()
                       if k != "allowed_ips")
        assert len(await admin(gw, "account.list")) == 1
        # A form without the session's token is refused.
        assert (await client.post("/operator/accounts", data={})).status_code == 403
    entry = (await admin(gw, "audit.list", target="web-made", action="account.create"))[0]
    assert entry["actor"] == "customer:ops@example.test"
    assert password not in str(entry)


async def test_an_operator_creates_a_customer_and_gives_it_accounts(panel):
    gw, base = panel
    first, second = await new_account(gw), await new_account(gw)
    async with _operator(gw, base) as (client, csrf):
        made = await client.post("/operator/customers", data={
            "csrf": csrf, "email": "Holder@Example.test", "accounts": first["system_id"]})
        assert made.status_code == 200
        password = re.search(r'id="new-password">([^<]+)<', made.text).group(1)
        listing = await client.get("/operator/customers")
        assert "holder@example.test" in listing.text and password not in listing.text
        refused = await client.post("/operator/customers", data={
            "csrf": csrf, "email": "holder@example.test"})
        assert refused.status_code == 400 and "already" in refused.text
        unknown = await client.post("/operator/customers/add-account", data={
            "csrf": csrf, "email": "holder@example.test", "system_id": "smpp-nosuchone"})
        assert unknown.status_code == 400 and "unknown account" in unknown.text
        given = await client.post("/operator/customers/add-account", data={
            "csrf": csrf, "email": "holder@example.test", "system_id": second["system_id"]})
        assert given.status_code == 303
        assert "given to the customer" in (await client.get(given.headers["location"])).text
    async with httpx.AsyncClient(base_url=base) as holder:
        assert (await _login(holder, "holder@example.test", password)).status_code == 303
        home = await holder.get("/")
        assert first["system_id"] in home.text and second["system_id"] in home.text
        assert (await holder.get("/operator/customers")).status_code == 404
    actions = [e["action"] for e in await admin(gw, "audit.list",
                                                target="holder@example.test")]
    assert actions == ["customer.add_account", "customer.create"]


async def test_suspend_and_resume_ask_first_and_reach_live_sessions(panel):
    gw, base = panel
    account = await new_account(gw)
    sid, password = account["system_id"], account["password"]
    bound = await RawClient.connect(*gw.endpoints.smpp)
    assert (await bound.bind(sid, password)).command_status == S.ESME_ROK
    async with _operator(gw, base) as (client, csrf):
        ask = await client.get(f"/operator/accounts/{sid}/suspend")
        assert ask.status_code == 200 and 'name="unbind"' in ask.text
        assert (await admin(gw, "account.show", system_id=sid))["status"] == "active"
        done = await client.post(f"/operator/accounts/{sid}/suspend",
                                 data={"csrf": csrf, "unbind": "on"})
        assert done.status_code == 303
        await bound.wait_received(CommandId.UNBIND)
        await bound.close()
        assert await _bind_status(gw, sid, password) == S.ESME_RBINDFAIL
        listing = await client.get(done.headers["location"])
        assert "suspended" in listing.text and f"/operator/accounts/{sid}/resume" in listing.text
        assert (await client.get(f"/operator/accounts/{sid}/resume")).status_code == 200
        resumed = await client.post(f"/operator/accounts/{sid}/resume", data={"csrf": csrf})
        assert resumed.status_code == 303
        assert await _bind_status(gw, sid, password) == S.ESME_ROK
        for path in (f"/operator/accounts/{sid}/delete", "/operator/accounts/smpp-nobody/suspend"):
            assert (await client.get(path)).status_code == 404
            assert (await client.post(path, data={"csrf": csrf})).status_code == 404
        assert (await client.post(f"/operator/accounts/{sid}/suspend")).status_code == 403
    entries = await admin(gw, "audit.list", target=sid, action="account.")
    assert [e["action"] for e in entries[:2]] == ["account.resume", "account.suspend"]
    assert {e["actor"] for e in entries[:2]} == {"customer:ops@example.test"}


async def test_an_operator_sets_and_removes_rates(panel):
    gw, base = panel
    account = await new_account(gw)
    sid = account["system_id"]
    async with _operator(gw, base) as (client, csrf):
        set_ = await client.post("/operator/rates", data={"csrf": csrf, "prefix": "+336",
                                                          "price": "0.75", "account": ""})
        assert set_.status_code == 303
        table = await client.get(set_.headers["location"])
        assert "+336" in table.text and "0.75" in table.text and "The rate is set" in table.text
        assert (await admin(gw, "rate.quote", system_id=sid,
                            destination="33612345678"))["price"] == "0.75"
        override = await client.post("/operator/rates", data={
            "csrf": csrf, "prefix": "336", "price": "0.50", "account": sid})
        assert override.headers["location"].startswith(f"/operator/rates?account={sid}")
        assert (await admin(gw, "rate.quote", system_id=sid,
                            destination="33612345678"))["price"] == "0.50"
        for data, message in (({"prefix": "3x", "price": "1"}, "1 to 15 digits"),
                              ({"prefix": "33", "price": "-1"}, "credit"),
                              ({"prefix": "33", "price": "1", "account": "nobody"},
                               "unknown account")):
            refused = await client.post("/operator/rates", data={"csrf": csrf, **data})
            assert refused.status_code == 400 and message in refused.text, data
            assert f'value="{data["prefix"]}"' in refused.text
        ask = await client.get(f"/operator/rates/remove?prefix=336&account={sid}")
        assert ask.status_code == 200 and "Remove the rate" in ask.text
        removed = await client.post("/operator/rates/remove", data={
            "csrf": csrf, "prefix": "336", "account": sid})
        assert removed.status_code == 303
        assert (await admin(gw, "rate.quote", system_id=sid,
                            destination="33612345678"))["price"] == "0.75"
        missing = await client.post("/operator/rates/remove", data={
            "csrf": csrf, "prefix": "336", "account": sid})
        assert missing.status_code == 400 and 'role="alert"' in missing.text
        assert (await client.get("/operator/rates?account=nobody")).status_code == 404
    assert await admin(gw, "rate.list") == [
        {"scope": "global", "prefix": "336", "price": "0.75",
         "updated_at": (await admin(gw, "rate.list"))[0]["updated_at"]}]


async def test_an_operator_adds_and_transfers_credits(panel):
    gw, base = panel
    a, b = await new_account(gw, credits="10"), await new_account(gw, credits="0")
    async with _operator(gw, base) as (client, csrf):
        added = await client.post("/operator/credits/add", data={
            "csrf": csrf, "system_id": a["system_id"], "amount": "5.25", "note": "invoice 7"})
        assert added.status_code == 303
        moved = await client.post("/operator/credits/transfer", data={
            "csrf": csrf, "from": a["system_id"], "to": b["system_id"], "amount": "3"})
        assert moved.status_code == 303
        page = await client.get(moved.headers["location"])
        assert "12.25" in page.text and "3.00" in page.text
        for path, data, message in (
            ("/operator/credits/add", {"system_id": a["system_id"], "amount": "0"}, "positive"),
            ("/operator/credits/add", {"system_id": "nobody", "amount": "1"}, "unknown account"),
            ("/operator/credits/transfer", {"from": b["system_id"], "to": a["system_id"],
                                            "amount": "999"}, "insufficient credit"),
            ("/operator/credits/transfer", {"from": a["system_id"], "to": a["system_id"],
                                            "amount": "1"}, "to itself"),
        ):
            refused = await client.post(path, data={"csrf": csrf, **data})
            assert refused.status_code == 400 and message in refused.text, data
            assert f'value="{data["amount"]}"' in refused.text
    assert (await admin(gw, "balance.show", system_id=a["system_id"]))["balance"] == "12.25"
    assert (await admin(gw, "balance.show", system_id=b["system_id"]))["balance"] == "3.00"
    assert (await admin(gw, "ledger.check"))["ok"]


async def test_an_operator_sees_live_sessions_and_kicks_an_account(panel):
    gw, base = panel
    account = await new_account(gw)
    sid = account["system_id"]
    bound = await RawClient.connect(*gw.endpoints.smpp)
    assert (await bound.bind(sid, account["password"])).command_status == S.ESME_ROK
    async with _operator(gw, base) as (client, csrf):
        listing = await client.get("/operator/sessions")
        assert sid in listing.text and "transceiver" in listing.text.lower()
        assert (await client.get(f"/operator/sessions/{sid}/kick")).status_code == 200
        kicked = await client.post(f"/operator/sessions/{sid}/kick", data={"csrf": csrf})
        assert kicked.status_code == 303
        await bound.wait_received(CommandId.UNBIND)
        await bound.close()
        # Kicked, not suspended: the account binds again.
        assert await _bind_status(gw, sid, account["password"]) == S.ESME_ROK
    entry = (await admin(gw, "audit.list", target=sid, action="sessions.kick"))[0]
    assert entry["actor"] == "customer:ops@example.test"
    assert entry["after"] == {"sessions_unbound": 1}


async def test_the_audit_log_filters_and_pages(panel):
    gw, base = panel
    account = await new_account(gw)
    sid = account["system_id"]
    for n in range(60):
        await admin(gw, "rate.set", prefix=str(100 + n), price="1")
    await admin(gw, "credits.add", system_id=sid, amount="1")
    async with _operator(gw, base) as (client, _):
        first = await client.get("/operator/audit")
        assert first.status_code == 200 and first.text.count("<time datetime=") == 50
        assert "credits.add" in first.text and "Older" in first.text
        second = await client.get("/operator/audit?page=2")
        assert second.text.count("<time datetime=") == 13  # account, 60 rates, credits, operator
        assert "account.create" in second.text and "Older" not in second.text
        only = await client.get(f"/operator/audit?target={sid}&action=credits.")
        assert only.text.count("<time datetime=") == 1 and "credits.add" in only.text
        prefix = await client.get("/operator/audit?action=rate.&page=2")
        assert prefix.text.count("<time datetime=") == 10
        assert "action=rate." in prefix.text  # the pager keeps the filters
        for bad in ("page=0", "page=abc", "page=100000"):
            refused = await client.get(f"/operator/audit?{bad}")
            assert refused.status_code == 400 and "Traceback" not in refused.text
        for path in ("/operator/accounts?page=x", "/operator/customers?page=-1"):
            assert (await client.get(path)).status_code == 400

"""The Senders tab and the operator's sender approval queue over real HTTP: a customer
requests a sender, which is always created pending (whatever the form says), bad
addresses get a clear error with the form kept, an operator enables or refuses from
/operator/senders (refusing asks for a confirmation), every change is audited with the
customer as actor, and nobody else reaches any of these routes."""

from __future__ import annotations

import re

import httpx
import pytest
from gw_helpers import admin, new_account
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login


@pytest.fixture
async def panel(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


async def _states(gw, system_id: str) -> dict[str, str]:
    return {s["address"]: s["state"]
            for s in await admin(gw, "sender.list", system_id=system_id)}


async def _request(client: httpx.AsyncClient, system_id: str, **fields) -> httpx.Response:
    page = await client.get(f"/accounts/{system_id}/senders")
    return await client.post(f"/accounts/{system_id}/senders",
                             data={"csrf": _csrf(page.text), **fields})


async def test_a_customer_requests_a_sender_which_stays_pending(panel):
    gw, base = panel
    account = await new_account(gw)
    sid = account["system_id"]
    me = await _customer(gw, "alice@example.test", sid)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "alice@example.test", me["password"])
        page = await client.get(f"/accounts/{sid}/senders")
        assert page.status_code == 200
        assert 'aria-current="page">Senders' in page.text
        assert "ovh123" in page.text and "enabled" in page.text
        assert "/operator/senders" not in page.text  # the queue link is for operators
        sent = await _request(client, sid, sender="MyShop", kind="alphanumeric",
                              comment="Our shop's name")
        assert sent.status_code == 303
        assert sent.headers["location"] == f"/accounts/{sid}/senders?requested=MyShop"
        shown = await client.get(sent.headers["location"])
        assert "Sender <code>MyShop</code> requested" in shown.text
        assert "Our shop&#39;s name" in shown.text
    assert (await _states(gw, sid))["MyShop"] == "pending"
    # A pending sender is not usable: the account still lists only its enabled ones.
    shown = await admin(gw, "account.show", system_id=sid)
    assert "MyShop" not in shown["senders_enabled"]
    audit = await admin(gw, "audit.list", limit=5)
    added = next(e for e in audit if e["action"] == "sender.add")
    assert added["actor"] == "customer:alice@example.test"


async def test_a_customer_can_never_choose_the_state_of_a_sender(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    me = await _customer(gw, "bob@example.test", sid)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "bob@example.test", me["password"])
        for state in ("enabled", "disabled", "refused", ""):
            refused = await _request(client, sid, sender="Sneaky", kind="alphanumeric",
                                     state=state)
            assert refused.status_code == 400, state
            assert "always pending" in refused.text
        # Asking for pending explicitly is what the page does anyway.
        ok = await _request(client, sid, sender="Honest", kind="alphanumeric", state="pending")
        assert ok.status_code == 303
    states = await _states(gw, sid)
    assert "Sneaky" not in states and states["Honest"] == "pending"


@pytest.mark.parametrize(("fields", "message"), [
    ({"sender": "ThisIsTooLong", "kind": "alphanumeric"}, "1 to 11 letters"),
    ({"sender": "12345", "kind": "alphanumeric"}, "is all digits"),
    ({"sender": "12", "kind": "shortcode"}, "3 to 8 digits"),
    ({"sender": "0601020304", "kind": "numeric"}, "international number"),
    ({"sender": "Shop", "kind": "virtual"}, "Choose the kind"),
    ({"sender": "  ", "kind": "alphanumeric"}, "Give the sender"),
    ({"sender": "ovh123", "kind": "alphanumeric"}, "already has sender"),
    ({"sender": "Shop", "kind": "alphanumeric", "comment": "x" * 256}, "at most 255"),
    ({"sender": "Shop", "kind": "alphanumeric", "comment": "two\nlines"}, "control"),
])
async def test_a_bad_sender_request_is_refused_with_the_form_kept(panel, fields, message):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    me = await _customer(gw, "carol@example.test", sid)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "carol@example.test", me["password"])
        before = await _states(gw, sid)
        refused = await _request(client, sid, **fields)
        assert refused.status_code == 400
        error = re.search(r'<p class="error" role="alert">([^<]*)</p>', refused.text)
        assert error and message in error.group(1).replace("&#39;", "'")
        assert "Traceback" not in refused.text
        if fields["sender"].strip():
            assert f'name="sender" value="{fields["sender"]}"' in refused.text
        assert await _states(gw, sid) == before


async def test_an_operator_enables_and_refuses_from_the_queue(panel):
    gw, base = panel
    first, second = (await new_account(gw))["system_id"], (await new_account(gw))["system_id"]
    await admin(gw, "sender.add", system_id=first, sender="Alpha", kind="alphanumeric",
                comment="please")
    await admin(gw, "sender.add", system_id=second, sender="38069", kind="shortcode")
    await admin(gw, "sender.add", system_id=second, sender="Gamma", kind="alphanumeric")
    op = await _customer(gw, "ops@example.test", operator=True)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "ops@example.test", op["password"])
        # Operators see the link to the queue on the senders pages.
        tab = await client.get(f"/accounts/{first}/senders")
        assert 'href="/operator/senders">Sender approval queue (3 pending)' in tab.text
        queue = await client.get("/operator/senders")
        assert queue.status_code == 200 and "Pending senders (3)" in queue.text
        assert all(a in queue.text for a in (first, second, "Alpha", "38069", "Gamma"))
        assert "ovh123" not in queue.text  # enabled senders are not in the queue
        csrf = _csrf(queue.text)

        enabled = await client.post("/operator/senders", data={
            "csrf": csrf, "system_id": first, "sender": "Alpha", "state": "enabled"})
        assert enabled.status_code == 303
        done = await client.get(enabled.headers["location"])
        assert "is now <strong>enabled</strong>" in done.text
        assert "Pending senders (2)" in done.text

        # Refusing asks first, and keeps the reason typed in the row.
        asked = await client.post("/operator/senders", data={
            "csrf": csrf, "system_id": second, "sender": "Gamma", "state": "refused",
            "comment": "name belongs to someone else"})
        assert asked.status_code == 200 and "Refuse sender <code>Gamma</code>?" in asked.text
        assert 'value="name belongs to someone else"' in asked.text
        assert (await _states(gw, second))["Gamma"] == "pending"
        refused = await client.post("/operator/senders", data={
            "csrf": csrf, "system_id": second, "sender": "Gamma", "state": "refused",
            "confirmed": "yes", "comment": "name belongs to someone else"})
        assert refused.status_code == 303

        # What is not pending any more cannot be decided from the queue again.
        again = await client.post("/operator/senders", data={
            "csrf": csrf, "system_id": first, "sender": "Alpha", "state": "refused",
            "confirmed": "yes"})
        assert again.status_code == 400 and "not pending any more" in again.text
        for bad in ({"state": "disabled"}, {"state": ""}, {"state": "enabled", "sender": "x"},
                    {"state": "enabled", "system_id": "nope"}):
            data = {"csrf": csrf, "system_id": second, "sender": "38069", **bad}
            answer = await client.post("/operator/senders", data=data)
            assert answer.status_code == 400 and "Traceback" not in answer.text
        # A decision without the session's CSRF token is refused.
        forged = await client.post("/operator/senders", data={
            "system_id": second, "sender": "38069", "state": "enabled"})
        assert forged.status_code == 403
    assert (await _states(gw, first))["Alpha"] == "enabled"
    gamma = next(s for s in await admin(gw, "sender.list", system_id=second)
                 if s["address"] == "Gamma")
    assert gamma["state"] == "refused" and gamma["comment"] == "name belongs to someone else"
    assert (await _states(gw, second))["38069"] == "pending"
    assert "Alpha" in (await admin(gw, "account.show", system_id=first))["senders_enabled"]
    audit = await admin(gw, "audit.list", limit=10)
    decisions = [e for e in audit if e["action"] == "sender.set_state"]
    assert len(decisions) == 2
    assert all(e["actor"] == "customer:ops@example.test" for e in decisions)


async def test_the_queue_pages_when_it_grows(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    for n in range(55):
        await admin(gw, "sender.add", system_id=sid, sender=f"Shop{n:02d}", kind="alphanumeric")
    op = await _customer(gw, "pager@example.test", operator=True)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "pager@example.test", op["password"])
        first = await client.get("/operator/senders")
        assert "Page 1 of 2" in first.text and first.text.count("<tr>") == 51  # + header
        second = await client.get("/operator/senders?page=2")
        assert "Page 2 of 2" in second.text and second.text.count("<tr>") == 6
        assert (await client.get("/operator/senders?page=x")).status_code == 200
        tab = await client.get(f"/accounts/{sid}/senders?page=2")
        assert "Page 2 of 2" in tab.text and "Senders (58)" in tab.text


async def test_sender_routes_are_not_found_for_other_customers(panel):
    gw, base = panel
    theirs = await new_account(gw)
    sid = theirs["system_id"]
    await admin(gw, "sender.add", system_id=sid, sender="Theirs", kind="alphanumeric")
    mine = await new_account(gw)
    me = await _customer(gw, "mallory@example.test", mine["system_id"])
    await _customer(gw, "owner@example.test", sid)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "mallory@example.test", me["password"])
        csrf = _csrf((await client.get(f"/accounts/{mine['system_id']}/senders")).text)
        for target in (sid, "no-such-account"):
            seen = await client.get(f"/accounts/{target}/senders")
            assert seen.status_code == 404 and "Theirs" not in seen.text
            posted = await client.post(f"/accounts/{target}/senders", data={
                "csrf": csrf, "sender": "Stolen", "kind": "alphanumeric"})
            assert posted.status_code == 404
        # The operator queue does not exist for a customer, GET or POST.
        assert (await client.get("/operator/senders")).status_code == 404
        decided = await client.post("/operator/senders", data={
            "csrf": csrf, "system_id": sid, "sender": "Theirs", "state": "enabled"})
        assert decided.status_code == 404
    assert await _states(gw, sid) == {**{s["address"]: "enabled" for s in
                                          await admin(gw, "sender.list", system_id=sid)
                                          if s["address"] != "Theirs"}, "Theirs": "pending"}
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get(f"/accounts/{sid}/senders")).headers["location"] == "/login"
        assert (await anonymous.get("/operator/senders")).headers["location"] == "/login"

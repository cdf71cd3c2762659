"""The credits page over real HTTP: balance and paged ledger, transfers between two
accounts of the same customer (and never to anybody else's), automatic top-up and the
low-balance alert; every bad amount is an error on the page with nothing written, and
another customer finds none of these routes for an account it does not hold."""

from __future__ import annotations

import re

import httpx
import pytest
from gw_helpers import admin, new_account
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login

from gateway.web.credits import LEDGER_PAGE


@pytest.fixture
async def panel(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


async def _balance(gw, system_id: str) -> str:
    return (await admin(gw, "balance.show", system_id=system_id))["balance"]


async def _post(client: httpx.AsyncClient, system_id: str, action: str,
                **data: str) -> httpx.Response:
    page = await client.get(f"/accounts/{system_id}/credits")
    return await client.post(f"/accounts/{system_id}/credits/{action}",
                             data={"csrf": _csrf(page.text), **data})


@pytest.fixture
async def two_accounts(panel):
    """A logged-in client of a customer holding two accounts (100 and 5 credits)."""
    gw, base = panel
    first = await new_account(gw, credits="100")
    second = await new_account(gw, credits="5")
    me = await _customer(gw, "holder@example.test", first["system_id"], second["system_id"])
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await _login(client, "holder@example.test", me["password"])).status_code == 303
        yield gw, client, first["system_id"], second["system_id"]


async def test_the_credits_page_shows_the_balance_the_ledger_and_the_other_accounts(
        two_accounts):
    _, client, first, second = two_accounts
    page = await client.get(f"/accounts/{first}/credits")
    assert page.status_code == 200
    assert "100.00 credits" in page.text
    assert 'aria-current="page">Credits</a>' in page.text
    # The transfer goes to the customer's other account, never to the account itself.
    options = re.findall(r'<option value="([^"]+)"', page.text)
    assert options == [second]
    # The initial credit is the ledger's first row, with its time for the browser.
    assert "+100.00" in page.text and "<time datetime=" in page.text
    # Adding credits out of nothing is an operator's screen, not this one.
    assert "credits/add" not in page.text


async def test_a_transfer_moves_credits_between_two_accounts_of_the_customer(two_accounts):
    gw, client, first, second = two_accounts
    done = await _post(client, first, "transfer", to=second, amount="12.50")
    assert done.status_code == 303
    assert done.headers["location"] == f"/accounts/{first}/credits?done=transferred"
    assert await _balance(gw, first) == "87.50" and await _balance(gw, second) == "17.50"
    page = await client.get(done.headers["location"])
    assert "Credits transferred." in page.text and "87.50 credits" in page.text
    assert "Transfer out" in page.text and "-12.50" in page.text
    other = await client.get(f"/accounts/{second}/credits")
    assert "17.50 credits" in other.text and "Transfer in" in other.text
    assert (await admin(gw, "ledger.check"))["ok"]
    audit = await admin(gw, "audit.list", limit=5)
    assert any(e["action"] == "credits.transfer" and e["actor"] == "customer:holder@example.test"
               for e in audit)


@pytest.mark.parametrize(("amount", "message"), [
    ("-5", "must not be negative"),
    ("0", "positive number"),
    ("1.234", "more than 2 decimals"),
    ("100.01", "has 100.00, fewer than 100.01"),
    ("ten", "not a credit amount"),
    ("1e3", "exponent"),
    ("", "Enter the number of credits"),
])
async def test_a_bad_transfer_amount_is_an_error_on_the_page_and_writes_nothing(
        two_accounts, amount, message):
    gw, client, first, second = two_accounts
    before = await admin(gw, "ledger.list", system_id=first)
    refused = await _post(client, first, "transfer", to=second, amount=amount)
    assert refused.status_code == 400
    assert message in refused.text and 'role="alert"' in refused.text
    # The form is kept: the amount typed and the target chosen.
    assert f'value="{amount}"' in refused.text
    assert f'<option value="{second}" selected>' in refused.text
    assert await _balance(gw, first) == "100.00" and await _balance(gw, second) == "5.00"
    assert await admin(gw, "ledger.list", system_id=first) == before


async def test_the_whole_balance_may_be_transferred_but_not_a_cent_more(two_accounts):
    gw, client, first, second = two_accounts
    assert (await _post(client, second, "transfer", to=first,
                        amount="5.01")).status_code == 400
    assert (await _post(client, second, "transfer", to=first, amount="5")).status_code == 303
    assert await _balance(gw, second) == "0.00" and await _balance(gw, first) == "105.00"
    assert (await admin(gw, "ledger.check"))["ok"]


async def test_a_transfer_to_an_account_the_customer_does_not_hold_is_not_found(
        two_accounts):
    gw, client, first, _ = two_accounts
    stranger = await new_account(gw, credits="1")
    for target in (stranger["system_id"], "smpp-nosuchone"):
        refused = await _post(client, first, "transfer", to=target, amount="1")
        assert refused.status_code == 404 and "among yours" in refused.text
    assert await _balance(gw, first) == "100.00"
    assert await _balance(gw, stranger["system_id"]) == "1.00"
    to_itself = await _post(client, first, "transfer", to=first, amount="1")
    assert to_itself.status_code == 400 and "to itself" in to_itself.text
    assert await _balance(gw, first) == "100.00"


async def test_automatic_top_up_is_set_shown_refused_when_bad_and_turned_off(two_accounts):
    gw, client, first, _ = two_accounts
    saved = await _post(client, first, "auto-topup", threshold="10", amount="100",
                        monthly_cap="500")
    assert saved.status_code == 303
    shown = (await admin(gw, "account.show", system_id=first))
    assert (shown["auto_topup_threshold"], shown["auto_topup_amount"],
            shown["auto_topup_monthly_cap"]) == ("10.00", "100.00", "500.00")
    page = await client.get(saved.headers["location"])
    assert "Automatic top-up saved." in page.text
    assert "falls to 10.00 credits" in page.text and "100.00 credits are added" in page.text
    assert "at most 500.00 credits a month" in page.text

    for fields, message in (
        ({"threshold": "10", "amount": "0"}, "positive number"),
        ({"threshold": "-1", "amount": "50"}, "must not be negative"),
        ({"threshold": "10", "amount": "100", "monthly_cap": "50"}, "below the top-up"),
        ({"threshold": "10", "amount": "0.001"}, "more than 2 decimals"),
        ({"threshold": "10", "amount": ""}, "Enter an amount"),
    ):
        refused = await _post(client, first, "auto-topup", **fields)
        assert refused.status_code == 400 and message in refused.text, fields
        for value in fields.values():
            assert f'value="{value}"' in refused.text
    after = await admin(gw, "account.show", system_id=first)
    assert after["auto_topup_amount"] == "100.00"  # nothing written by the refusals

    no_cap = await _post(client, first, "auto-topup", threshold="20", amount="50",
                         monthly_cap="")
    assert no_cap.status_code == 303
    page = await client.get(no_cap.headers["location"])
    assert "with no monthly cap" in page.text
    off = await _post(client, first, "auto-topup", off="1")
    assert off.status_code == 303
    shown = await admin(gw, "account.show", system_id=first)
    assert shown["auto_topup_amount"] is None and shown["auto_topup_threshold"] is None
    page = await client.get(f"/accounts/{first}/credits")
    assert re.search(r'id="auto-topup-state">\s*Off\.', page.text)
    audit = await admin(gw, "audit.list", limit=10)
    assert any(e["action"] == "credits.auto_topup"
               and e["actor"] == "customer:holder@example.test" for e in audit)


async def test_the_low_balance_alert_is_set_refused_when_bad_and_turned_off(two_accounts):
    gw, client, first, _ = two_accounts
    saved = await _post(client, first, "alert", threshold="25.50")
    assert saved.status_code == 303
    assert (await admin(gw, "account.show", system_id=first))["low_balance_threshold"] == "25.50"
    page = await client.get(saved.headers["location"])
    assert "falls below 25.50 credits" in page.text
    for threshold, message in (("-3", "must not be negative"), ("2.555", "decimals"),
                               ("", "Enter a threshold")):
        refused = await _post(client, first, "alert", threshold=threshold)
        assert refused.status_code == 400 and message in refused.text
    assert (await admin(gw, "account.show", system_id=first))["low_balance_threshold"] == "25.50"
    assert (await _post(client, first, "alert", off="1")).status_code == 303
    assert (await admin(gw, "account.show", system_id=first))["low_balance_threshold"] is None


async def test_the_ledger_pages_from_the_newest_entry(panel):
    gw, base = panel
    account = await new_account(gw, credits="1")
    system_id = account["system_id"]
    for n in range(LEDGER_PAGE + 4):  # with the initial credit: a full page and 5 more
        await admin(gw, "credits.add", system_id=system_id, amount="1", note=f"pack {n}")
    me = await _customer(gw, "pages@example.test", system_id)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "pages@example.test", me["password"])
        first = await client.get(f"/accounts/{system_id}/credits")
        assert first.text.count('<time datetime=') == LEDGER_PAGE
        assert f"pack {LEDGER_PAGE + 3}" in first.text and "pack 0<" not in first.text
        assert 'href="?page=2"' in first.text and "Newer" not in first.text
        second = await client.get(f"/accounts/{system_id}/credits?page=2")
        assert second.text.count('<time datetime=') == 5
        assert "pack 0<" in second.text and 'href="?page=1"' in second.text
        assert "?page=3" not in second.text
        empty = await client.get(f"/accounts/{system_id}/credits?page=9")
        assert empty.status_code == 200 and "No entries on this page" in empty.text
        for bad in ("0", "-1", "abc", "99999", "1.5"):
            refused = await client.get(f"/accounts/{system_id}/credits?page={bad}")
            assert refused.status_code == 400 and "Traceback" not in refused.text


async def test_credit_forms_without_their_csrf_token_are_refused(two_accounts):
    gw, client, first, second = two_accounts
    for action, data in (("transfer", {"to": second, "amount": "1"}),
                         ("auto-topup", {"threshold": "1", "amount": "10"}),
                         ("alert", {"threshold": "1"})):
        refused = await client.post(f"/accounts/{first}/credits/{action}", data=data)
        assert refused.status_code == 403
    assert await _balance(gw, first) == "100.00"
    shown = await admin(gw, "account.show", system_id=first)
    assert shown["auto_topup_amount"] is None and shown["low_balance_threshold"] is None


async def test_another_customer_finds_none_of_the_credit_routes_of_an_account(panel):
    gw, base = panel
    mine, theirs = await new_account(gw, credits="50"), await new_account(gw, credits="50")
    await _customer(gw, "owner@example.test", mine["system_id"])
    intruder = await _customer(gw, "intruder@example.test", theirs["system_id"])
    victim = mine["system_id"]
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "intruder@example.test", intruder["password"])
        csrf = _csrf((await client.get(f"/accounts/{theirs['system_id']}/credits")).text)
        requests = [
            ("GET", f"/accounts/{victim}/credits", {}),
            ("GET", f"/accounts/{victim}/credits?page=2", {}),
            ("POST", f"/accounts/{victim}/credits/transfer",
             {"to": theirs["system_id"], "amount": "10"}),
            ("POST", f"/accounts/{victim}/credits/auto-topup",
             {"threshold": "10", "amount": "100"}),
            ("POST", f"/accounts/{victim}/credits/auto-topup", {"off": "1"}),
            ("POST", f"/accounts/{victim}/credits/alert", {"threshold": "10"}),
            ("POST", f"/accounts/{victim}/credits/alert", {"off": "1"}),
            # Its own account as the source, the other customer's as the target.
            ("POST", f"/accounts/{theirs['system_id']}/credits/transfer",
             {"to": victim, "amount": "10"}),
        ]
        for method, path, data in requests:
            for target in (path, path.replace(victim, "smpp-nosuchone")):
                answer = await client.request(method, target, data={"csrf": csrf, **data}
                                              if method == "POST" else None)
                assert answer.status_code == 404, (method, target)
                assert "among yours" in answer.text and "Traceback" not in answer.text
    assert await _balance(gw, victim) == "50.00"
    assert await _balance(gw, theirs["system_id"]) == "50.00"
    shown = await admin(gw, "account.show", system_id=victim)
    assert shown["auto_topup_amount"] is None and shown["low_balance_threshold"] is None


async def test_an_operator_transfers_between_the_accounts_of_the_customer_holding_them(
        panel):
    gw, base = panel
    first, second = await new_account(gw, credits="30"), await new_account(gw, credits="0")
    unrelated = await new_account(gw)
    await _customer(gw, "held@example.test", first["system_id"], second["system_id"])
    op = await _customer(gw, "ops@example.test", operator=True)
    async with httpx.AsyncClient(base_url=base) as client:
        await _login(client, "ops@example.test", op["password"])
        page = await client.get(f"/accounts/{first['system_id']}/credits")
        assert re.findall(r'<option value="([^"]+)"', page.text) == [second["system_id"]]
        assert unrelated["system_id"] not in page.text
        done = await _post(client, first["system_id"], "transfer", to=second["system_id"],
                           amount="0.50")
        assert done.status_code == 303
    assert await _balance(gw, second["system_id"]) == "0.50"
    assert (await admin(gw, "ledger.check"))["ok"]

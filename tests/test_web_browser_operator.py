"""The operator's screens in a real headless Chromium (Debian's `chromium`, driven by
Playwright with `executable_path`): an operator logs in, creates an account and a
customer owning it, suspends and resumes the account through the confirmations, sets
a rate, adds credits, and finds each of these in the audit log under its own name.
The accounts and audit screens are photographed at 1280x800 into tests/screenshots/."""

from __future__ import annotations

from gw_helpers import admin
from web_helpers import SCREENSHOTS, needs_chromium

pytestmark = needs_chromium


async def test_an_operator_runs_accounts_rates_and_credits_and_reads_the_audit_log(
        make_gateway, browser):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    op = await admin(gw, "customer.create", email="ops@example.test", operator=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base)
    page = await context.new_page()
    SCREENSHOTS.mkdir(exist_ok=True)

    await page.goto("/login")
    await page.fill("input[name=email]", "ops@example.test")
    await page.fill("input[name=password]", op["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")

    # An account, its password shown once.
    await page.goto("/operator/accounts")
    form = page.locator("#create-account")
    await form.locator("input[name=system_id]").fill("shop-sms")
    await form.locator("input[name=credits]").fill("10")
    await form.locator("textarea[name=allowed_ips]").fill("127.0.0.1")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector("#new-password")
    smpp_password = await page.inner_text("#new-password")
    assert len(smpp_password) >= 6
    assert "shop-sms" in await page.inner_text("table")

    # A customer owning it.
    await page.click('nav[aria-label=Operator] >> text=Customers')
    await page.wait_for_url(f"{base}/operator/customers")
    form = page.locator("#create-customer")
    await form.locator("input[name=email]").fill("shop@example.test")
    await form.locator("input[name=accounts]").fill("shop-sms")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector("#new-password")
    assert "shop-sms" in await page.inner_text("table")
    owners = await admin(gw, "customer.list")
    assert {"shop@example.test": ["shop-sms"]}.items() <= {
        c["email"]: c["accounts"] for c in owners}.items()

    # Suspend, confirmed, then resume, confirmed.
    await page.click('nav[aria-label=Operator] >> text=Accounts')
    await page.click("#account-shop-sms >> text=Suspend")
    await page.wait_for_url(f"{base}/operator/accounts/shop-sms/suspend")
    assert await page.is_checked("input[name=unbind]")
    await page.click("#confirm button[type=submit]")
    await page.wait_for_url(f"{base}/operator/accounts?done=suspended")
    assert await page.inner_text("#account-shop-sms .pill") == "suspended"
    await page.click("#account-shop-sms >> text=Resume")
    await page.click("#confirm button[type=submit]")
    await page.wait_for_url(f"{base}/operator/accounts?done=resumed")
    assert await page.inner_text("#account-shop-sms .pill") == "active"
    await page.screenshot(path=str(SCREENSHOTS / "operator_accounts.png"))

    # A rate, then credits.
    await page.click('nav[aria-label=Operator] >> text=Rates')
    form = page.locator("#set-rate")
    await form.locator("input[name=prefix]").fill("33")
    await form.locator("input[name=price]").fill("0.80")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector("[role=status]")
    assert "+33" in await page.inner_text("table")
    await page.click('nav[aria-label=Operator] >> text=Credits')
    form = page.locator("#add-credits")
    await form.locator("input[name=system_id]").fill("shop-sms")
    await form.locator("input[name=amount]").fill("abc")
    await form.locator("button[type=submit]").click()
    assert "not a credit amount" in await page.inner_text(".card:has(#add-credits) [role=alert]")
    await form.locator("input[name=amount]").fill("5.50")
    await form.locator("button[type=submit]").click()
    await page.wait_for_url(f"{base}/operator/credits?done=credits-added")
    assert "15.50" in await page.inner_text("table")

    # The audit log has each of them, by this operator.
    await page.click('nav[aria-label=Operator] >> text=Audit log')
    rows = page.locator("table tbody tr")
    found = {}
    for i in range(await rows.count()):
        cells = await rows.nth(i).locator("td").all_inner_texts()
        found.setdefault(cells[2], cells[1])
    for action in ("account.create", "customer.create", "account.suspend", "account.resume",
                   "rate.set", "credits.add"):
        assert found.get(action) == "customer:ops@example.test", action
    # Dates in the browser's time zone, with the ISO time on hover.
    assert await page.get_attribute("table time", "title")
    await page.screenshot(path=str(SCREENSHOTS / "operator_audit.png"))

    await page.fill("#audit-filters input[name=action]", "account.")
    await page.click("#audit-filters button[type=submit]")
    actions = await page.locator("table tbody tr td:nth-child(3)").all_inner_texts()
    assert actions and all(a.startswith("account.") for a in actions)
    await context.close()

"""The credits page in a real headless Chromium (Debian's `chromium` through Playwright):
a customer holding two accounts transfers credits from one to the other, sees both
balances change, and the books still balance (`ledger.check`); then it sets automatic
top-up and reads the settings back on the page. Screenshot: tests/screenshots/credits.png.
"""

from __future__ import annotations

from gw_helpers import admin, new_account
from web_helpers import SCREENSHOTS, needs_chromium

pytestmark = needs_chromium


async def test_a_customer_transfers_credits_between_its_accounts_and_sets_auto_top_up(
        make_gateway, browser):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    first = (await new_account(gw, credits="100"))["system_id"]
    second = (await new_account(gw, credits="5"))["system_id"]
    me = await admin(gw, "customer.create", email="credits@example.test",
                     accounts=[first, second])
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base)
    page = await context.new_page()
    SCREENSHOTS.mkdir(exist_ok=True)

    await page.goto("/login")
    await page.fill("input[name=email]", "credits@example.test")
    await page.fill("input[name=password]", me["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")

    await page.goto(f"/accounts/{first}")
    await page.click("nav.tabs >> text=Credits")
    await page.wait_for_url(f"{base}/accounts/{first}/credits")
    assert await page.inner_text("#balance") == "100.00 credits"

    # A bad amount is an error on the page, and nothing moves.
    await page.select_option("#transfer select[name=to]", second)
    await page.fill("#transfer input[name=amount]", "1.234")
    await page.click("#transfer button[type=submit]")
    assert "more than 2 decimals" in await page.inner_text("#transfer-title + [role=alert]")
    assert await page.input_value("#transfer input[name=amount]") == "1.234"
    assert await page.inner_text("#balance") == "100.00 credits"

    await page.fill("#transfer input[name=amount]", "12.50")
    await page.click("#transfer button[type=submit]")
    await page.wait_for_url(f"{base}/accounts/{first}/credits?done=transferred")
    assert await page.inner_text("[role=status]") == "Credits transferred."
    assert await page.inner_text("#balance") == "87.50 credits"
    assert "-12.50" in await page.inner_text("#ledger")

    # The other account's page shows the credit arrived.
    await page.goto(f"/accounts/{second}/credits")
    assert await page.inner_text("#balance") == "17.50 credits"
    assert "Transfer in" in await page.inner_text("#ledger")
    await page.goto("/")
    listing = await page.inner_text("table")
    assert "87.50 credits" in listing and "17.50 credits" in listing
    check = await admin(gw, "ledger.check")
    assert check == {"ok": True, "problems": []}

    await page.goto(f"/accounts/{first}/credits")
    await page.fill("#auto-topup input[name=threshold]", "10")
    await page.fill("#auto-topup input[name=amount]", "100")
    await page.fill("#auto-topup input[name=monthly_cap]", "300")
    await page.click("#auto-topup button[type=submit]:not([name=off])")
    await page.wait_for_url(f"{base}/accounts/{first}/credits?done=auto_topup")
    state = " ".join((await page.inner_text("#auto-topup-state")).split())
    assert state == ("On: when the balance falls to 10.00 credits, 100.00 credits are "
                     "added, at most 300.00 credits a month.")
    assert await page.input_value("#auto-topup input[name=threshold]") == "10.00"
    shown = await admin(gw, "account.show", system_id=first)
    assert (shown["auto_topup_threshold"], shown["auto_topup_amount"],
            shown["auto_topup_monthly_cap"]) == ("10.00", "100.00", "300.00")
    await page.screenshot(path=str(SCREENSHOTS / "credits.png"))

    # On a phone the page still fits, without a horizontal scroll.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()

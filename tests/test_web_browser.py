"""The web panel in a real headless Chromium (Debian's `chromium`, driven by Playwright
with `executable_path`; .ci/run installs the package when it is missing): a customer
logs in, copies the system_id with the copy button and reads it back from the
clipboard, and the main screens are photographed at 1280x800 into tests/screenshots/
(linked from the README, not committed)."""

from __future__ import annotations

from gw_helpers import admin, new_account
from web_helpers import SCREENSHOTS, needs_chromium

pytestmark = needs_chromium


async def test_a_customer_logs_in_and_copies_its_system_id(make_gateway, browser):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    account = await new_account(gw, credits="42")
    me = await admin(gw, "customer.create", email="browser@example.test",
                     accounts=[account["system_id"]])
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    SCREENSHOTS.mkdir(exist_ok=True)

    await page.goto("/")
    assert page.url.endswith("/login")
    await page.screenshot(path=str(SCREENSHOTS / "login.png"))
    await page.fill("input[name=email]", "browser@example.test")
    await page.fill("input[name=password]", "wrong password")
    await page.click("button[type=submit]")
    assert "Wrong e-mail or password" in await page.inner_text("[role=alert]")

    await page.fill("input[name=password]", me["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    assert account["system_id"] in await page.inner_text("table")
    assert await page.get_attribute('nav a[aria-current="page"]', "href") == "/"
    await page.screenshot(path=str(SCREENSHOTS / "accounts.png"))

    await page.click(f"text={account['system_id']}")
    await page.wait_for_url(f"{base}/accounts/{account['system_id']}")
    await page.click(f'button[data-copy="{account["system_id"]}"]')
    assert await page.evaluate("navigator.clipboard.readText()") == account["system_id"]
    assert "42.00 credits" in await page.inner_text("main")
    await page.screenshot(path=str(SCREENSHOTS / "account.png"))

    # On a phone the page still shows everything, without a horizontal scroll.
    await page.set_viewport_size({"width": 390, "height": 844})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await context.close()

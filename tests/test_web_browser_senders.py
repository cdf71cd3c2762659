"""Senders in a real headless Chromium: a customer requests a sender, which it cannot
send from while it is pending; an operator, in a second browser context, enables it in
the sender approval queue; the customer then submits from it over SMPP and gets status 0.
Screenshots senders.png and operator_senders.png go to tests/screenshots/."""

from __future__ import annotations

from gw_helpers import admin, new_account
from smpp_client import RawClient
from web_helpers import SCREENSHOTS, needs_chromium

from pdu.codec import SubmitSm

pytestmark = needs_chromium
SENDER = "MyBrand"


async def _logged_in(browser, base: str, email: str, password: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base)
    page = await context.new_page()
    await page.goto("/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    return context, page


async def _submit_from(gw, account: dict, source_addr: str) -> int:
    """The command_status of one submit_sm from `source_addr`, over a fresh bind."""
    client = await RawClient.connect(*gw.endpoints.smpp)
    try:
        bound = await client.bind(account["system_id"], account["password"])
        assert bound.command_status == 0, bound
        resp = await client.request(SubmitSm(
            source_addr=source_addr, source_addr_ton=5, source_addr_npi=0,
            destination_addr="33601020304", dest_addr_ton=1, dest_addr_npi=1,
            short_message=b"hello from the panel"))
        return resp.command_status
    finally:
        await client.close()


async def test_a_requested_sender_is_enabled_by_an_operator_then_used(make_gateway, browser):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    account = await new_account(gw)
    sid = account["system_id"]
    me = await admin(gw, "customer.create", email="shop@example.test", accounts=[sid])
    op = await admin(gw, "customer.create", email="ops@example.test", operator=True)
    SCREENSHOTS.mkdir(exist_ok=True)

    customer, page = await _logged_in(browser, base, "shop@example.test", me["password"])
    await page.click(f"text={sid}")
    await page.click('nav.tabs a:text("Senders")')
    await page.wait_for_url(f"{base}/accounts/{sid}/senders")
    assert await page.get_attribute('nav.tabs a[aria-current="page"]', "href") == (
        f"/accounts/{sid}/senders")
    assert await page.locator("a.operator-link").count() == 0

    # A bad address first: the error is on the page and the form keeps what was typed.
    await page.fill("input[name=sender]", "1234")
    await page.select_option("select[name=kind]", "alphanumeric")
    await page.fill("input[name=comment]", "Our brand name")
    await page.click("text=Request this sender")
    assert "all digits" in await page.inner_text("[role=alert]")
    assert await page.input_value("input[name=comment]") == "Our brand name"

    await page.fill("input[name=sender]", SENDER)
    await page.click("text=Request this sender")
    await page.wait_for_url(f"{base}/accounts/{sid}/senders?requested={SENDER}")
    row = page.locator("#senders tr", has_text=SENDER)
    assert "pending" in await row.inner_text() and "Our brand name" in await row.inner_text()
    await page.screenshot(path=str(SCREENSHOTS / "senders.png"))
    assert await _submit_from(gw, account, SENDER) != 0  # pending: not usable yet

    # The operator, in a browser of its own, finds the queue from the senders tab.
    operator, desk = await _logged_in(browser, base, "ops@example.test", op["password"])
    await desk.goto(f"/accounts/{sid}/senders")
    await desk.click("a.operator-link")
    await desk.wait_for_url(f"{base}/operator/senders")
    pending = desk.locator("#queue tr", has_text=SENDER)
    assert sid in await pending.inner_text()
    await desk.screenshot(path=str(SCREENSHOTS / "operator_senders.png"))
    await pending.locator("button", has_text="Enable").click()
    await desk.wait_for_url(f"{base}/operator/senders?*")
    assert "is now enabled" in await desk.inner_text("[role=status]")
    assert await desk.locator("#queue tr", has_text=SENDER).count() == 0
    await operator.close()

    await page.reload()
    assert "enabled" in await page.locator("#senders tr", has_text=SENDER).inner_text()
    assert await _submit_from(gw, account, SENDER) == 0
    await customer.close()

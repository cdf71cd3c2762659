"""The password and allowed-IP pages in a real headless Chromium (Debian's `chromium`
driven by Playwright with `executable_path`): a customer generates a new password,
copies it, binds over SMPP with it while the old one is refused; adds an IP, removes it
after the confirmation, and is told why the eleventh is refused. Screenshots at
1280x800 go to tests/screenshots/ (password.png, ips.png)."""

from __future__ import annotations

from gw_helpers import admin, new_account
from smpp_client import RawClient
from web_helpers import SCREENSHOTS, needs_chromium

from pdu.status import CommandStatus as S

pytestmark = needs_chromium


async def _bind_status(gw, system_id: str, password: str) -> int:
    client = await RawClient.connect(*gw.endpoints.smpp)
    try:
        return (await client.bind(system_id, password)).command_status
    finally:
        await client.close()


async def _logged_in_page(gw, browser, email: str, *accounts: str):
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    me = await admin(gw, "customer.create", email=email, accounts=list(accounts))
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    await page.goto("/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", me["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    return context, page, base


async def test_a_customer_generates_a_new_password_and_binds_with_it(make_gateway, browser):
    gw = await make_gateway()
    account = await new_account(gw)  # 127.0.0.1 allowed
    sid = account["system_id"]
    context, page, base = await _logged_in_page(gw, browser, "rotate@example.test", sid)
    SCREENSHOTS.mkdir(exist_ok=True)

    await page.click(f"text={sid}")
    await page.click("nav.tabs >> text=Password")
    await page.wait_for_url(f"{base}/accounts/{sid}/password")
    assert await page.get_attribute('nav.tabs a[aria-current="page"]', "href") == \
        f"/accounts/{sid}/password"
    await page.check("input[name=unbind]")
    await page.click("button:has-text('Generate a new password')")
    await page.wait_for_selector("#new-password")
    # The password is in the page, not in its address.
    password = await page.inner_text("#new-password")
    assert password and password != account["password"] and password not in page.url
    await page.click(f'button[data-copy="{password}"]')
    assert await page.evaluate("navigator.clipboard.readText()") == password
    assert "not e-mailed" in await page.inner_text("#password-mail")
    await page.screenshot(path=str(SCREENSHOTS / "password.png"))

    assert await _bind_status(gw, sid, account["password"]) == S.ESME_RINVPASWD
    assert await _bind_status(gw, sid, password) == S.ESME_ROK
    await context.close()


async def test_a_customer_adds_and_removes_an_ip_and_the_eleventh_is_refused(
    make_gateway, browser
):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    context, page, base = await _logged_in_page(gw, browser, "ips@example.test", sid)
    SCREENSHOTS.mkdir(exist_ok=True)

    await page.goto(f"/accounts/{sid}")
    await page.click("nav.tabs >> text=IPs")
    await page.wait_for_url(f"{base}/accounts/{sid}/ips")
    assert await page.inner_text("#ip-count") == "(1/10)"

    await page.fill("input[name=ip]", "2001:db8:42::/48")
    await page.click("button:has-text('Add')")
    await page.wait_for_url(f"{base}/accounts/{sid}/ips?done=added")
    assert "2001:db8:42::/48" in await page.inner_text("table")
    assert await page.inner_text("#ip-count") == "(2/10)"

    await page.click("tr:has-text('2001:db8:42::/48') >> a.remove")
    await page.wait_for_url(f"{base}/accounts/{sid}/ips/remove?**")
    assert "2001:db8:42::/48" in await page.inner_text("h2")
    await page.click("button:has-text('Remove')")
    await page.wait_for_url(f"{base}/accounts/{sid}/ips?done=removed")
    assert "2001:db8:42::/48" not in await page.inner_text("table")
    assert await page.inner_text("#ip-count") == "(1/10)"

    for n in range(1, 10):
        await page.fill("input[name=ip]", f"192.0.2.{n}")
        await page.click("button:has-text('Add')")
        await page.wait_for_url(f"{base}/accounts/{sid}/ips?done=added")
    assert await page.inner_text("#ip-count") == "(10/10)"
    await page.fill("input[name=ip]", "198.51.100.0/24")
    await page.click("button:has-text('Add')")
    alert = await page.inner_text("[role=alert]")
    assert "maximum of 10 allowed IP entries" in alert
    assert await page.input_value("input[name=ip]") == "198.51.100.0/24"
    await page.screenshot(path=str(SCREENSHOTS / "ips.png"), full_page=False)
    listed = await admin(gw, "ip.list", system_id=sid)
    assert len(listed["allowed_ips"]) == 10 and "198.51.100.0/24" not in listed["allowed_ips"]

    # On a phone the list still fits without a horizontal scroll.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()

"""The history and STOP list pages in a real headless Chromium (Debian's `chromium`
driven by Playwright): a customer with some history filters it, downloads the CSV of
what the filter selects, deletes a message after a confirmation and removes a number
from its STOP list; history.png and stop.png go to tests/screenshots/."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

from gw_helpers import admin, new_account
from test_web_history_stop import insert_messages
from web_helpers import SCREENSHOTS, needs_chromium

pytestmark = needs_chromium


async def test_a_customer_filters_its_history_and_downloads_the_csv(
        make_gateway, browser, tmp_path):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    base = f"http://{host}:{port}"
    sid = (await new_account(gw))["system_id"]
    start = datetime.now(UTC) - timedelta(days=2)
    bodies = ["Your code is 4711", "Meeting at 10", "Parcel on its way", "See you soon"]
    ids = await insert_messages(gw, sid, *(
        {"created_at": start + timedelta(minutes=7 * i),
         "source_addr": "ACME" if i % 3 else "ovh123", "dest_addr": f"3361234{i:04d}",
         "status": "UNDELIVERABLE" if i == 4 else "DELIVERED",
         "body": bodies[i % len(bodies)].encode()} for i in range(12)))
    await insert_messages(gw, sid, {"direction": "MO", "source_addr": "33698765432",
                                    "dest_addr": "ACME", "body": b"STOP", "cost": 0,
                                    "created_at": start + timedelta(hours=3)})
    for number in ("33698765432", "33611223344", "447700900123"):
        await admin(gw, "stop.add", system_id=sid, destination=number, note="STOP reply")
    me = await admin(gw, "customer.create", email="history@example.test", accounts=[sid])

    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        base_url=base, accept_downloads=True)
    page = await context.new_page()
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.goto("/login")
    await page.fill("input[name=email]", "history@example.test")
    await page.fill("input[name=password]", me["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    await page.goto(f"/accounts/{sid}")
    await page.click("nav.tabs >> text=History")
    await page.wait_for_url(f"{base}/accounts/{sid}/history")
    assert await page.locator("tbody tr").count() == 13

    # Filter: outgoing messages from ACME that were delivered.
    await page.fill("input[name=sender]", "ACME")
    await page.select_option("select[name=direction]", "MT")
    await page.select_option("select[name=status]", "DELIVERED")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/history?*sender=ACME*")
    assert "status=DELIVERED" in page.url and "direction=MT" in page.url
    expected = [ids[i] for i in range(12) if i % 3 and i != 4]
    shown = await page.locator("tbody tr").count()
    assert shown == len(expected)
    assert await page.input_value("input[name=sender]") == "ACME"  # the form keeps it
    first_time = page.locator("tbody tr").first.locator("time")
    # Shown in the browser's time zone, the ISO time on hover.
    assert await first_time.get_attribute("title") == await first_time.get_attribute(
        "datetime")
    await page.screenshot(path=str(SCREENSHOTS / "history.png"))

    async with page.expect_download() as download_info:
        await page.click("#history-csv")
    download = await download_info.value
    assert download.suggested_filename == f"history-{sid}.csv"
    saved = tmp_path / "history.csv"
    await download.save_as(saved)
    with saved.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == expected
    assert all(r["source_addr"] == "ACME" and r["status"] == "DELIVERED"
               and r["direction"] == "MT" and r["system_id"] == sid for r in rows)
    assert rows[0]["body"] == bodies[1] and rows[0]["dest_addr"] == "33612340001"

    # Delete one message of the filtered view, after the confirmation; the view stays.
    await page.locator("tbody tr").first.locator("text=Delete").click()
    await page.wait_for_url(f"**/history/{expected[0]}/delete?*")
    assert "Delete this message" in await page.inner_text("main")
    await page.click("text=Delete the message")
    await page.wait_for_url("**/history?*done=deleted*")
    assert "sender=ACME" in page.url
    assert await page.locator("tbody tr").count() == len(expected) - 1
    assert await page.input_value("input[name=sender]") == "ACME"

    # The STOP list: view it, remove a number after the confirmation.
    await page.click("nav.tabs >> text=STOP list")
    await page.wait_for_url(f"{base}/accounts/{sid}/stop")
    assert await page.locator("tbody tr").count() == 3
    await page.screenshot(path=str(SCREENSHOTS / "stop.png"))
    await page.locator("tr", has_text="33611223344").locator("text=Remove").click()
    assert "consent" in await page.inner_text("main")
    await page.click("text=Remove the number")
    await page.wait_for_url(f"{base}/accounts/{sid}/stop?done=removed")
    assert "33611223344" not in await page.inner_text("table")
    assert await page.locator("tbody tr").count() == 2

    # On a phone the pages still fit, the wide tables scroll inside their card.
    await page.set_viewport_size({"width": 390, "height": 844})
    for path in (f"/accounts/{sid}/history", f"/accounts/{sid}/stop"):
        await page.goto(path)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()
    assert [e["destination"] for e in await admin(gw, "stop.list", system_id=sid)] == [
        "33698765432", "447700900123"]

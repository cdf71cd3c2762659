"""What the web panel's tests share: reading a form's CSRF token, logging in over HTTP,
making a customer through the admin socket; where the browser tests find Chromium
(the `browser` fixture is in conftest.py) and put their screenshots."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from gw_helpers import admin

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable (Debian package `chromium`)")
SCREENSHOTS = Path(__file__).parent / "screenshots"


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf": csrf(form.text)})


async def customer(gw, email: str, *accounts: str, operator: bool = False) -> dict:
    return await admin(gw, "customer.create", email=email, accounts=list(accounts),
                       operator=operator)

"""The password and allowed-IP pages of the web panel over real HTTP (httpx against the
gateway's own port): a new password is shown once on the answer to a confirmed POST
(never in a URL, never cached), e-mailed when the gateway mails, and binds while the
old one is refused; IPs are listed n/10, added, refused when bad or one too many, and
removed after a confirmation; nobody touches another customer's account."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope
from gw_helpers import admin, new_account
from smpp_client import RawClient
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login

from pdu.codec import CommandId
from pdu.status import CommandStatus as S


async def _bind_status(gw, system_id: str, password: str) -> int:
    client = await RawClient.connect(*gw.endpoints.smpp)
    try:
        return (await client.bind(system_id, password)).command_status
    finally:
        await client.close()


@asynccontextmanager
async def _logged_in(gw, base: str, email: str, *accounts: str
                     ) -> AsyncIterator[httpx.AsyncClient]:
    """A client logged in as a new customer owning `accounts`."""
    me = await _customer(gw, email, *accounts)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await _login(client, email, me["password"])).status_code == 303
        yield client


class Mailbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def bodies(self) -> list[str]:
        return [message_from_bytes(m.content).get_payload(decode=True).decode()
                for m in self.messages]


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """An SMTP server on loopback; named before `make_gateway` so it outlives it."""
    box = Mailbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(box), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


def _web(gw) -> str:
    host, port = gw.endpoints.web
    return f"http://{host}:{port}"


# --- a new password ------------------------------------------------------------------


async def test_a_new_password_is_shown_once_mailed_and_replaces_the_old_one(
    mailbox, make_gateway
):
    gw = await make_gateway(smtp_host="127.0.0.1", smtp_port=mailbox.port,
                            smtp_from="noc@gw.test", smtp_starttls=False)
    account = await new_account(gw, contact_email="ops@acme.test")
    sid = account["system_id"]
    async with _logged_in(gw, _web(gw), "pw@example.test", sid) as client:
        general = await client.get(f"/accounts/{sid}")
        assert f'href="/accounts/{sid}/password"' in general.text
        confirm = await client.get(f"/accounts/{sid}/password")
        assert confirm.status_code == 200
        assert "ops@acme.test" in confirm.text and 'name="unbind"' in confirm.text
        assert 'aria-current="page">Password' in confirm.text
        # Nothing changed by looking at the page.
        assert await _bind_status(gw, sid, account["password"]) == S.ESME_ROK

        done = await client.post(f"/accounts/{sid}/password",
                                 data={"csrf": _csrf(confirm.text)})
        assert done.status_code == 200  # the answer itself, no redirect to a URL
        assert done.headers["cache-control"] == "no-store"
        shown = re.search(r'<code id="new-password">([^<]+)</code>', done.text)
        assert shown, done.text
        password = shown.group(1)
        assert password != account["password"]
        assert f'data-copy="{password}"' in done.text
        assert "e-mailed to ops@acme.test" in done.text
        [body] = mailbox.bodies()
        assert password in body and mailbox.messages[0].rcpt_tos == ["ops@acme.test"]

        assert await _bind_status(gw, sid, account["password"]) == S.ESME_RINVPASWD
        assert await _bind_status(gw, sid, password) == S.ESME_ROK
        # Shown once: the form page never holds it again.
        again = await client.get(f"/accounts/{sid}/password")
        assert password not in again.text
    audit = await admin(gw, "audit.list", limit=20)
    rotation = [e for e in audit if e["action"] == "password.rotate"]
    assert [e["actor"] for e in rotation] == ["customer:pw@example.test"]
    assert password not in str(audit)


async def test_a_new_password_can_disconnect_the_sessions_bound_now(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    bound = await RawClient.connect(*gw.endpoints.smpp)
    try:
        assert (await bound.bind(sid, account["password"])).command_status == S.ESME_ROK
        async with _logged_in(gw, _web(gw), "unbind@example.test", sid) as client:
            confirm = await client.get(f"/accounts/{sid}/password")
            assert "has 1 bound now" in confirm.text
            assert "This gateway sends no e-mail" in confirm.text
            done = await client.post(f"/accounts/{sid}/password",
                                     data={"csrf": _csrf(confirm.text), "unbind": "on"})
            assert done.status_code == 200
            assert "1 bound session was disconnected" in done.text
            assert "not e-mailed" in done.text
        await bound.wait_received(CommandId.UNBIND)
    finally:
        await bound.close()


async def test_a_new_password_without_the_csrf_token_is_refused(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    async with _logged_in(gw, _web(gw), "csrf@example.test", sid) as client:
        refused = await client.post(f"/accounts/{sid}/password", data={"unbind": "on"})
        assert refused.status_code == 403 and "expired" in refused.text
    assert await _bind_status(gw, sid, account["password"]) == S.ESME_ROK
    assert not [e for e in await admin(gw, "audit.list", limit=20)
                if e["action"] == "password.rotate"]


# --- allowed IPs ---------------------------------------------------------------------


async def test_ips_are_listed_added_and_removed_after_a_confirmation(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    async with _logged_in(gw, _web(gw), "ips@example.test", sid) as client:
        page = await client.get(f"/accounts/{sid}/ips")
        assert page.status_code == 200
        assert "127.0.0.1/32" in page.text and "(1/10)" in page.text
        for typed, stored in (("192.0.2.7", "192.0.2.7/32"),
                              ("2001:DB8::/48", "2001:db8::/48"),
                              (" 198.51.100.0/24 ", "198.51.100.0/24")):
            added = await client.post(f"/accounts/{sid}/ips",
                                      data={"csrf": _csrf(page.text), "ip": typed})
            assert added.status_code == 303
            assert added.headers["location"] == f"/accounts/{sid}/ips?done=added"
            page = await client.get(added.headers["location"])
            assert f"<code>{stored}</code>" in page.text
        assert "(4/10)" in page.text and "The IP was added" in page.text
        listed = await admin(gw, "ip.list", system_id=sid)
        assert "2001:db8::/48" in listed["allowed_ips"]

        # Removing asks first; the GET changes nothing.
        link = f"/accounts/{sid}/ips/remove?ip=2001%3Adb8%3A%3A/48"
        assert f'href="{link}"' in page.text
        confirm = await client.get(link)
        assert confirm.status_code == 200 and "Remove <code>2001:db8::/48</code>?" in confirm.text
        assert "2001:db8::/48" in (await admin(gw, "ip.list", system_id=sid))["allowed_ips"]
        removed = await client.post(f"/accounts/{sid}/ips/remove",
                                    data={"csrf": _csrf(confirm.text), "ip": "2001:db8::/48"})
        assert removed.status_code == 303
        page = await client.get(removed.headers["location"])
        assert "<code>2001:db8::/48</code>" not in page.text and "(3/10)" in page.text
        assert "The IP was removed" in page.text
        # An entry that is not listed: no confirmation, no removal.
        assert (await client.get(f"/accounts/{sid}/ips/remove?ip=10.0.0.0/8")).status_code == 404
        gone = await client.post(f"/accounts/{sid}/ips/remove",
                                 data={"csrf": _csrf(page.text), "ip": "2001:db8::/48"})
        assert gone.status_code == 404
    actions = [(e["action"], e["actor"]) for e in await admin(gw, "audit.list", limit=20)]
    assert actions.count(("ip.add", "customer:ips@example.test")) == 3
    assert actions.count(("ip.remove", "customer:ips@example.test")) == 1


async def test_bad_and_one_too_many_ips_are_refused_with_the_form_kept(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    async with _logged_in(gw, _web(gw), "bad@example.test", sid) as client:
        page = await client.get(f"/accounts/{sid}/ips")
        csrf = _csrf(page.text)
        for typed, message in (("", "Enter an IPv4 or IPv6 address"),
                               ("not-an-ip", "is not an IPv4/IPv6 address or CIDR block"),
                               ("10.0.0.1/8", "has host bits set; did you mean 10.0.0.0/8?"),
                               ("127.0.0.1", "already allows network 127.0.0.1/32"),
                               ("<script>x</script>", "is not an IPv4/IPv6")):
            refused = await client.post(f"/accounts/{sid}/ips", data={"csrf": csrf,
                                                                       "ip": typed})
            assert refused.status_code == 400, typed
            assert message in refused.text and 'role="alert"' in refused.text
            assert "Traceback" not in refused.text and "<script>x" not in refused.text
            if typed:
                assert 'value="' + typed.replace("<", "&lt;").replace(">", "&gt;") in \
                    refused.text
        for n in range(2, 11):
            added = await client.post(f"/accounts/{sid}/ips",
                                      data={"csrf": csrf, "ip": f"192.0.2.{n}"})
            assert added.status_code == 303
        full = await client.get(f"/accounts/{sid}/ips")
        assert "(10/10)" in full.text and "The list is full" in full.text
        eleventh = await client.post(f"/accounts/{sid}/ips",
                                     data={"csrf": csrf, "ip": "192.0.2.11"})
        assert eleventh.status_code == 400
        assert "already has the maximum of 10 allowed IP entries" in eleventh.text
        assert 'value="192.0.2.11"' in eleventh.text
        # Without the token: refused, nothing added or removed.
        assert (await client.post(f"/accounts/{sid}/ips",
                                  data={"ip": "192.0.2.99"})).status_code == 403
        assert (await client.post(f"/accounts/{sid}/ips/remove",
                                  data={"ip": "192.0.2.2/32"})).status_code == 403
    assert len((await admin(gw, "ip.list", system_id=sid))["allowed_ips"]) == 10


# --- ownership -----------------------------------------------------------------------


async def test_another_customers_account_is_not_found_on_every_route(make_gateway):
    gw = await make_gateway()
    theirs = await new_account(gw, contact_email="them@acme.test")
    sid = theirs["system_id"]
    await _customer(gw, "owner@example.test", sid)
    mine = await new_account(gw)
    async with _logged_in(gw, _web(gw), "intruder@example.test",
                                mine["system_id"]) as client:
        csrf = _csrf((await client.get(f"/accounts/{mine['system_id']}/ips")).text)
        for target in (sid, "smpp-nosuchone"):
            for method, path, data in (
                ("GET", f"/accounts/{target}/password", None),
                ("POST", f"/accounts/{target}/password", {"csrf": csrf, "unbind": "on"}),
                ("GET", f"/accounts/{target}/ips", None),
                ("POST", f"/accounts/{target}/ips", {"csrf": csrf, "ip": "192.0.2.1"}),
                ("GET", f"/accounts/{target}/ips/remove?ip=127.0.0.1/32", None),
                ("POST", f"/accounts/{target}/ips/remove", {"csrf": csrf,
                                                             "ip": "127.0.0.1/32"}),
            ):
                answer = await client.request(method, path, data=data)
                assert answer.status_code == 404, (method, path)
                assert "among yours" in answer.text and "them@acme.test" not in answer.text
    # Nothing happened to the account.
    assert await _bind_status(gw, sid, theirs["password"]) == S.ESME_ROK
    assert (await admin(gw, "ip.list", system_id=sid))["allowed_ips"] == ["127.0.0.1/32"]
    assert not [e for e in await admin(gw, "audit.list", limit=50)
                if e["actor"].startswith("customer:")]


async def test_an_operator_may_use_both_pages_for_any_account(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    sid = account["system_id"]
    op = await _customer(gw, "ops@example.test", operator=True)
    async with httpx.AsyncClient(base_url=_web(gw)) as client:
        await _login(client, "ops@example.test", op["password"])
        page = await client.get(f"/accounts/{sid}/ips")
        added = await client.post(f"/accounts/{sid}/ips",
                                  data={"csrf": _csrf(page.text), "ip": "203.0.113.0/24"})
        assert added.status_code == 303
        done = await client.post(f"/accounts/{sid}/password",
                                 data={"csrf": _csrf(page.text)})
        assert done.status_code == 200 and "new-password" in done.text

"""gateway.mail against a real SMTP server (aiosmtpd) on 127.0.0.1: STARTTLS with a
certificate made for the test (trustme), login after STARTTLS, and the refusals that
keep a password from going out in clear text."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope

from config.settings import Settings
from gateway.mail import Mailer, MailRefused, password_mail


class Mailbox:
    """aiosmtpd handler and authenticator: keeps every message and every login."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.logins: list[tuple[str, str, bool]] = []  # (user, password, over TLS?)
        self.port = 0
        self.offer_auth = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        session.host_name = hostname
        if self.offer_auth:
            return responses
        return [r for r in responses if not r.startswith("250-AUTH")]

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        tls = session.ssl is not None
        self.logins.append((auth_data.login.decode(), auth_data.password.decode(), tls))
        ok = (auth_data.login, auth_data.password) == (b"gw", b"mail-s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    def bodies(self) -> list[str]:
        return [message_from_bytes(m.content).get_payload(decode=True).decode()
                for m in self.messages]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """What the gateway's default context would be if the test CA were a system CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def start_server(ca: trustme.CA) -> AsyncIterator[Callable]:
    """`await start_server(starttls=..., auth=..., auth_require_tls=...)`: a Mailbox
    served on a free loopback port, closed at the end of the test."""
    servers: list[asyncio.AbstractServer] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def start(*, starttls: bool = True, auth: bool = True,
                    auth_require_tls: bool = True) -> Mailbox:
        box = Mailbox()
        box.offer_auth = auth
        options = {"tls_context": server_context} if starttls else {}
        options |= {"authenticator": box.authenticate, "auth_require_tls": auth_require_tls}
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(box, **options), "127.0.0.1", 0)
        servers.append(server)
        box.port = server.sockets[0].getsockname()[1]
        return box

    try:
        yield start
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def mail_settings(tmp_path, box: Mailbox, **overrides) -> Settings:
    values = {"state_dir": tmp_path, "smtp_host": "127.0.0.1", "smtp_port": box.port,
              "smtp_from": "noc@gw.test", "smtp_timeout": 5.0, **overrides}
    return Settings(**values)


async def test_mail_goes_over_starttls_with_a_login(tmp_path, start_server, client_context):
    box = await start_server()
    mailer = Mailer(mail_settings(tmp_path, box, smtp_user="gw", smtp_password="mail-s3cret"),
                    tls_context=client_context)
    assert await mailer.send("ops@acme.test", *password_mail("smpp-acme", "Xy7pQ2zr"))
    assert box.logins == [("gw", "mail-s3cret", True)]
    [body] = box.bodies()
    assert "Xy7pQ2zr" in body and box.messages[0].rcpt_tos == ["ops@acme.test"]


async def test_mail_goes_over_starttls_without_a_login_when_no_user_is_set(
    tmp_path, start_server, client_context
):
    box = await start_server(auth=False)
    mailer = Mailer(mail_settings(tmp_path, box), tls_context=client_context)
    assert await mailer.send("ops@acme.test", "subject", "body")
    assert len(box.messages) == 1 and box.logins == []


async def test_server_without_starttls_is_refused_and_nothing_is_sent(
    tmp_path, start_server, caplog
):
    box = await start_server(starttls=False, auth=False)
    mailer = Mailer(mail_settings(tmp_path, box, smtp_user="gw", smtp_password="mail-s3cret"))
    with (caplog.at_level(logging.ERROR, logger="gateway.mail"),
          pytest.raises(MailRefused, match="does not offer STARTTLS")):
        await mailer.send("ops@acme.test", *password_mail("smpp-acme", "Xy7pQ2zr"))
    assert box.messages == [] and box.logins == []
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "smtp_starttls" in record.getMessage()


async def test_untrusted_certificate_is_refused_before_anything_is_sent(
    tmp_path, start_server
):
    box = await start_server()
    # The default context: the test CA is no system CA.
    mailer = Mailer(mail_settings(tmp_path, box, smtp_user="gw", smtp_password="mail-s3cret"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await mailer.send("ops@acme.test", "subject", "body")
    assert box.messages == [] and box.logins == []


async def test_login_is_refused_when_the_server_offers_no_auth(
    tmp_path, start_server, client_context
):
    box = await start_server(auth=False)
    mailer = Mailer(mail_settings(tmp_path, box, smtp_user="gw", smtp_password="mail-s3cret"),
                    tls_context=client_context)
    with pytest.raises(MailRefused, match="AUTH"):
        await mailer.send("ops@acme.test", "subject", "body")
    assert box.messages == []


async def test_clear_text_login_only_when_the_operator_turned_starttls_off(
    tmp_path, start_server, caplog
):
    box = await start_server(starttls=False, auth_require_tls=False)
    with caplog.at_level(logging.WARNING, logger="gateway.mail"):
        mailer = Mailer(mail_settings(tmp_path, box, smtp_starttls=False, smtp_user="gw",
                                      smtp_password="mail-s3cret"))
    assert "unencrypted" in caplog.text and "mail-s3cret" not in caplog.text
    assert await mailer.send("ops@acme.test", "subject", "body")
    assert box.logins == [("gw", "mail-s3cret", False)] and len(box.messages) == 1


async def test_wrong_login_sends_nothing(tmp_path, start_server, client_context):
    box = await start_server()
    mailer = Mailer(mail_settings(tmp_path, box, smtp_user="gw", smtp_password="wrong"),
                    tls_context=client_context)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await mailer.send("ops@acme.test", "subject", "body")
    assert box.messages == []

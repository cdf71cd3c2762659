"""Outgoing e-mail to account contacts: new passwords and low-balance alerts.

SMTP through smtplib in a worker thread, so a slow mail server never blocks the event
loop. Off (every send is a no-op that says so) while `smtp_host` is not set.

A mail may carry a password, so by default (`smtp_starttls`) nothing is sent until the
connection is encrypted with STARTTLS, the server's certificate checked against the
system's CAs (or $SSL_CERT_FILE) and its name; a server that does not offer STARTTLS is
refused. `smtp_user` / `smtp_password` log in after STARTTLS. With `smtp_starttls` false
the operator chose clear text: mail, and the login if set, go unencrypted (warned once).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage

from config.settings import Settings

log = logging.getLogger(__name__)


class MailRefused(smtplib.SMTPException):
    """The mail server does not meet the settings (no STARTTLS offered, no AUTH)."""


class Mailer:
    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> None:
        """``tls_context`` verifies the server after STARTTLS (default: the system's CAs
        and a host name check)."""
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._from = settings.smtp_from
        self._timeout = settings.smtp_timeout
        self._starttls = settings.smtp_starttls
        self._user = settings.smtp_user
        self._password = settings.smtp_password or ""
        self._tls_context = tls_context
        if self.enabled and self._starttls and tls_context is None:
            self._tls_context = ssl.create_default_context()
        if self.enabled and not self._starttls:
            log.warning(
                "smtp_starttls is false: mail to %s:%s (new passwords included)%s goes "
                "unencrypted", self._host, self._port,
                " and the SMTP login" if self._user else "",
            )
        if self.enabled and self._user is None and settings.smtp_password:
            log.warning("smtp_password is set but smtp_user is not: sending without a login")

    @property
    def enabled(self) -> bool:
        return self._host is not None

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Send one message; False (not an exception) when SMTP is not configured.

        Raises OSError or smtplib.SMTPException when the server refuses or is down;
        MailRefused (logged as an error) when it offers no STARTTLS while smtp_starttls
        is set, or no login while smtp_user is.
        """
        if not self.enabled:
            return False
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._send_sync, message)
        return True

    def _send_sync(self, message: EmailMessage) -> None:
        assert self._host is not None
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.ehlo()
            if self._starttls:
                self._require(smtp, "starttls", "does not offer STARTTLS",
                              "set smtp_starttls = false to send in clear text")
                smtp.starttls(context=self._tls_context)
                smtp.ehlo()  # the server's extensions again, now over TLS
            if self._user is not None:
                self._require(smtp, "auth", "offers no login (AUTH)",
                              "unset smtp_user to send without one")
                smtp.login(self._user, self._password)
            smtp.send_message(message)

    def _require(self, smtp: smtplib.SMTP, extension: str, lack: str, fix: str) -> None:
        if smtp.has_extn(extension):
            return
        reason = f"mail server {self._host}:{self._port} {lack}; not sending ({fix})"
        log.error("%s", reason)
        raise MailRefused(reason)


def password_mail(system_id: str, password: str) -> tuple[str, str]:
    """(subject, body) of the mail that carries a new SMPP password."""
    body = (
        f"A new password was generated for the SMPP account {system_id}.\n\n"
        f"  system_id: {system_id}\n  password:  {password}\n\n"
        "The previous password no longer works for new binds. Keep this password secret;\n"
        "it is not stored in clear anywhere.\n"
    )
    return f"New SMPP password for {system_id}", body


def low_balance_mail(system_id: str, balance: str, threshold: str) -> tuple[str, str]:
    body = (
        f"The SMPP account {system_id} has {balance} credits left, below the alert\n"
        f"threshold of {threshold}. Sending stops when the balance reaches zero.\n"
    )
    return f"Low SMS credit on {system_id}: {balance}", body

"""Outgoing e-mail to account contacts: new passwords and low-balance alerts.

Plain SMTP through smtplib in a worker thread, so a slow mail server never blocks the
event loop. Off (every send is a no-op that says so) while `smtp_host` is not set.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

from config.settings import Settings

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._from = settings.smtp_from
        self._timeout = settings.smtp_timeout

    @property
    def enabled(self) -> bool:
        return self._host is not None

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Send one message; False (not an exception) when SMTP is not configured.

        Raises OSError or smtplib.SMTPException when the server refuses or is down.
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
            smtp.send_message(message)


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

"""Password rotation: a new password shown once, optionally mailed to the contact and
the account's sessions unbound. The audit log records that it changed, never what to."""

from __future__ import annotations

import logging
import smtplib

from auth.passwords import generate_password, hash_password
from gateway.admin.context import AdminContext
from gateway.admin.parsing import as_flag
from gateway.mail import password_mail

log = logging.getLogger(__name__)


async def rotate(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    system_id = row["system_id"]
    password = generate_password()
    await ctx.accounts.set_password_hash(system_id, hash_password(password))
    await ctx.changed(
        actor, "password.rotate", system_id, {"password": "old"}, {"password": "new"}
    )
    unbound = 0
    if as_flag(args.get("unbind", False)):
        unbound = await ctx.sessions.kick(system_id)
    result = {"system_id": system_id, "password": password, "sessions_unbound": unbound}
    result["emailed_to"] = await _mail_password(ctx, row, password)
    return result


async def _mail_password(ctx: AdminContext, row: dict, password: str) -> str | None:
    """Mail the new password to the contact; what happened, for the operator."""
    to = row.get("contact_email")
    if not ctx.mailer.enabled:
        return None
    if not to:
        return "not sent: the account has no contact e-mail"
    subject, body = password_mail(row["system_id"], password)
    try:
        await ctx.mailer.send(to, subject, body)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("password mail for %s to %s failed: %r", row["system_id"], to, exc)
        return f"not sent: {exc.__class__.__name__}: {exc}"
    return to

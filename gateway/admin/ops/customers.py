"""Customers of the web panel: the people (an e-mail, an Argon2id password) who own SMPP
accounts, and operators. A password is generated, shown once and stored as a hash; the
audit log records the change, never the password."""

from __future__ import annotations

from datetime import UTC, datetime

from auth.passwords import generate_password, hash_password
from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, as_flag, required, str_list
from store.errors import AccountNotFound, CustomerExists


async def create(ctx: AdminContext, args: dict, actor: str) -> dict:
    email = required(args, "email")
    role = "operator" if as_flag(args.get("operator", False)) else "customer"
    systems = str_list(args, "accounts")
    for system_id in systems:
        await ctx.account({"system_id": system_id})  # every one exists, before anything
    password = generate_password()
    now = datetime.now(UTC)
    try:
        row = await ctx.customers.create(email, hash_password(password), role=role,
                                         contact_email=args.get("contact_email"), now=now)
    except CustomerExists as exc:
        raise AdminError(str(exc)) from exc
    except ValueError as exc:
        raise AdminError(f"email: {exc}") from exc
    for system_id in systems:
        await ctx.customers.add_account(row["id"], system_id)
    await ctx.audit.record(actor, "customer.create", row["email"], None,
                           {"role": role, "accounts": systems})
    return {"email": row["email"], "role": role, "accounts": systems, "password": password}


async def add_account(ctx: AdminContext, args: dict, actor: str) -> dict:
    customer = await _customer(ctx, args)
    system_id = (await ctx.account(args))["system_id"]
    try:
        added = await ctx.customers.add_account(customer["id"], system_id)
    except AccountNotFound as exc:
        raise AdminError(f"unknown account {system_id!r}") from exc
    if added:
        await ctx.audit.record(actor, "customer.add_account", customer["email"], None,
                               {"account": system_id})
    owned = [a["system_id"] for a in await ctx.customers.accounts(customer["id"])]
    return {"email": customer["email"], "accounts": owned, "added": added}


async def reset_password(ctx: AdminContext, args: dict, actor: str) -> dict:
    customer = await _customer(ctx, args)
    password = generate_password()
    await ctx.customers.set_password_hash(customer["id"], hash_password(password),
                                          datetime.now(UTC))
    # Whoever knew the old password is logged out everywhere.
    closed = await ctx.customers.close_sessions_of(customer["id"])
    await ctx.audit.record(actor, "customer.password_reset", customer["email"],
                           {"password": "old"}, {"password": "new"})
    return {"email": customer["email"], "password": password, "sessions_closed": closed}


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return [
        {"email": c["email"], "role": c["role"], "accounts": c["accounts"],
         "created_at": c["created_at"].isoformat() if c.get("created_at") else None}
        for c in await ctx.customers.list_all()
    ]


async def _customer(ctx: AdminContext, args: dict) -> dict:
    email = required(args, "email")
    found = await ctx.customers.by_email(email)
    if found is None:
        raise AdminError(f"unknown customer {email.strip().lower()!r}")
    return found

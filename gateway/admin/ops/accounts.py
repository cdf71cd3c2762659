"""Account operations: create, show, list, change settings, suspend, resume, delete.

`apply_settings` is the one way a settings change is written, audited (only what
changed) and made live; the credit automation operations use it too.
"""

from __future__ import annotations

from typing import Any

from auth.identifiers import generate_system_id, validate_system_id
from auth.ipacl import canonical
from auth.passwords import generate_password, hash_password
from config.settings import Settings
from gateway.admin.context import AdminContext
from gateway.admin.parsing import (
    SETTINGS,
    AdminError,
    AdminUsageError,
    as_flag,
    parse_settings,
    raw_list,
    sender_arg,
    str_list,
)
from gateway.admin.views import account_view
from store.accounts import in_flight_reason
from store.errors import AccountNotEmpty
from store.money import format_credits, parse_credits


def account_defaults(s: Settings) -> dict[str, Any]:
    """The configured defaults a new account starts with (store column names)."""
    return {
        "window_size": s.default_window,
        "throughput": s.default_throughput,
        "bind_limit": s.default_bind_limit,
        "gsm_packed": s.default_gsm_packed,
        "max_segments": s.default_max_segments,
        "keep_bodies": s.default_keep_bodies,
        "vendor_tlvs": s.vendor_tlvs,
        "dlr_retention_days": s.default_dlr_retention_days,
        "stop_mode": s.default_stop_mode,
        "addressing": s.default_addressing,
    }


async def create(ctx: AdminContext, args: dict, actor: str) -> dict:
    system_id = args.get("system_id")
    system_id = validate_system_id(system_id) if system_id else generate_system_id()
    credits = parse_credits(args.get("credits", 0))
    ips = [canonical(ip) for ip in str_list(args, "allowed_ips")]
    limit = ctx.settings.max_allowed_ips
    if len(set(ips)) > limit:
        raise AdminError(f"at most {limit} allowed IP entries per account, got {len(ips)}")
    settings = account_defaults(ctx.settings)
    settings.update(parse_settings(args.get("settings") or {}))
    sender_rows = [sender_arg(entry) for entry in raw_list(args, "senders")]
    password = generate_password()
    await ctx.accounts.create(
        system_id,
        hash_password(password),
        credits=credits,
        allowed_ips=ips,
        contact_email=args.get("contact_email") or None,
        settings=settings,
        sender_list=sender_rows,
    )
    row = await ctx.accounts.get(system_id)
    assert row is not None
    await ctx.changed(actor, "account.create", system_id, None, account_view(row))
    result = account_view(row)
    result["password"] = password  # shown once, here, and stored nowhere in clear
    return result


async def show(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    return account_view(row, bound=await ctx.bound_count(row["system_id"]))


async def list_all(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    rows = await ctx.accounts.load_all()
    counts = await ctx.sessions.bound_counts()
    return [account_view(r, bound=counts.get(r["system_id"], 0)) for r in rows]


async def set_settings(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    values = parse_settings({k: v for k, v in args.items() if k != "system_id"})
    if not values:
        raise AdminUsageError(f"nothing to change; settings: {', '.join(SETTINGS)}")
    return await apply_settings(ctx, row, values, actor, "account.set")


async def apply_settings(
    ctx: AdminContext, row: dict, values: dict[str, Any], actor: str, action: str
) -> dict:
    """Store new settings (store columns) for the account `row`; audit what changed."""
    system_id = row["system_id"]
    await ctx.accounts.update_settings(system_id, values)
    after = await ctx.accounts.get(system_id)
    assert after is not None
    before_view, after_view = account_view(row), account_view(after)
    changed = [k for k in after_view if before_view.get(k) != after_view.get(k)]
    await ctx.changed(
        actor, action, system_id,
        {k: before_view.get(k) for k in changed}, {k: after_view.get(k) for k in changed},
    )
    return account_view(after, bound=await ctx.bound_count(system_id))


async def suspend(ctx: AdminContext, args: dict, actor: str) -> dict:
    return await _set_status(ctx, args, actor, "suspended")


async def resume(ctx: AdminContext, args: dict, actor: str) -> dict:
    return await _set_status(ctx, args, actor, "active")


async def _set_status(ctx: AdminContext, args: dict, actor: str, status: str) -> dict:
    row = await ctx.account(args)
    system_id = row["system_id"]
    await ctx.accounts.set_status(system_id, status)
    await ctx.changed(
        actor, f"account.{'suspend' if status == 'suspended' else 'resume'}", system_id,
        {"status": row["status"]}, {"status": status},
    )
    unbound = 0
    if status == "suspended" and as_flag(args.get("unbind", False)):
        unbound = await ctx.sessions.kick(system_id)
    after = await ctx.accounts.get(system_id)
    assert after is not None
    result = account_view(after, bound=await ctx.bound_count(system_id))
    result["sessions_unbound"] = unbound
    return result


async def delete(ctx: AdminContext, args: dict, actor: str) -> dict:
    """A soft delete: the account can never bind again and its system_id is not given
    again; its history, ledger and audit rows stay. Refused while messages are in
    flight (MT not final, receipts or MOs waiting for the customer), and while the
    balance is not zero unless forfeit_balance (an 'adjust' ledger row writes it off)."""
    row = await ctx.account(args)
    system_id = row["system_id"]
    forfeit = as_flag(args.get("forfeit_balance", False))
    # Checked before the kick, so that a refusal leaves the customer bound; the store
    # checks again in the transaction that deletes.
    mt, waiting = await ctx.accounts.in_flight(system_id)
    if mt or waiting:
        raise AccountNotEmpty(system_id, in_flight_reason(mt, waiting))
    if row["balance"] and not forfeit:
        raise AccountNotEmpty(
            system_id, f"its balance is {format_credits(row['balance'])} credits; transfer "
            "them to another account first, or add --forfeit-balance")
    unbound = await ctx.sessions.kick(system_id)
    forfeited = await ctx.accounts.delete(system_id, forfeit_balance=forfeit)
    await ctx.changed(actor, "account.delete", system_id, account_view(row),
                      {"deleted": True, "balance_forfeited": format_credits(forfeited),
                       "sessions_unbound": unbound})
    # A client that bound again between the kick and the directory's refresh (those
    # already unbinding are left as they are: not counted twice).
    await ctx.sessions.kick(system_id)
    return {"system_id": system_id, "deleted": True, "sessions_unbound": unbound,
            "balance_forfeited": format_credits(forfeited)}
